/**
 * Fairness under a flood (issue 12): how long one client's cold pull takes
 * while another client floods the registry with distinct names, against the
 * same pull on an idle registry.
 *
 * Each run has its own fresh single-node Nixery (storage, embedded Redis,
 * a copy of the bundled package set; popularity off) with the default
 * admission settings unless the run says otherwise:
 *
 * - `idle`: a warm-up pull (htop), then the timed cold pull of `hello`
 *   from 127.0.0.3;
 * - `flood`: the same, while 127.0.0.2 asks for FLOOD distinct unknown
 *   names (RATE per second, each client hanging up after 2 s, as the
 *   issue's abusive client did); the timed pull starts 2 s into the flood;
 * - `flood, NIXERY_BUILD_RATE=off`: the same flood with no token bucket, so
 *   only the per-client priority and the abandoned-build removal stand
 *   between the flood and the other client.
 *
 * Prints each run's cold pull time and its ratio to the idle time (the
 * target: at most about 2), the builds that ran (the two timed pulls
 * included) and those removed unstarted because nobody waited for them
 * (abandoned), how long after the flood the queue was empty, and the
 * flood's answers by status.
 *
 *   npm run bench:flood
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { getFrom } from '../test/helpers/from-address';
import { type NixeryInstance, metric, startNixery } from '../test/helpers/nixery';
import { copyPackageSet } from '../test/helpers/pkgset';

const FLOOD = 300;
const RATE = 40;

interface RunResult {
  name: string;
  coldMs: number;
  statuses: Record<string, number>;
  /** Builds run (the two timed pulls included) and builds removed unstarted, once the queue is empty. */
  started: number;
  abandoned: number;
  drainMs: number;
}

async function timedPull(nx: NixeryInstance, image: string, from: string): Promise<number> {
  const t0 = performance.now();
  const a = await getFrom(`${nx.url}/v2/${image}/manifests/latest`, from);
  if (a.status !== 200) throw new Error(`${image} from ${from}: ${a.status} ${a.body}`);
  return performance.now() - t0;
}

/** 127.0.0.2 asks for FLOOD distinct unknown names at RATE per second, hanging up after 2 s each. */
async function flood(nx: NixeryInstance, statuses: Record<string, number>): Promise<void> {
  const tag = Date.now().toString(36);
  const pulls: Promise<void>[] = [];
  for (let i = 0; i < FLOOD; i++) {
    pulls.push(
      getFrom(`${nx.url}/v2/flood${tag}n${i}/manifests/latest`, '127.0.0.2', { hangUpAfterMs: 2000 }).then((a) => {
        const k = a.status === 0 ? 'hung up' : String(a.status);
        statuses[k] = (statuses[k] ?? 0) + 1;
      }),
    );
    await sleep(1000 / RATE);
  }
  await Promise.all(pulls);
}

async function run(name: string, env: Record<string, string>, withFlood: boolean): Promise<RunResult> {
  const pkgs = await copyPackageSet();
  const nx = await startNixery({ ...pkgs.env, NIXERY_POPCOUNT_SCHEDULE: 'off', ...env });
  try {
    await timedPull(nx, 'htop', '127.0.0.3');
    const statuses: Record<string, number> = {};
    let flooding: Promise<void> = Promise.resolve();
    if (withFlood) {
      flooding = flood(nx, statuses);
      await sleep(2000);
    }
    const coldMs = await timedPull(nx, 'hello', '127.0.0.3');
    await flooding;
    const t0 = performance.now();
    while ((await metric(nx.url, 'nixery_queue_depth')) + (await metric(nx.url, 'nixery_queue_active_jobs')) > 0) await sleep(100);
    const drainMs = performance.now() - t0;
    return { name, coldMs, statuses, drainMs, started: await metric(nx.url, 'nixery_builds_started_total'), abandoned: await metric(nx.url, 'nixery_builds_abandoned_total') };
  } finally {
    await nx.stop();
    await pkgs.remove();
  }
}

async function main(): Promise<void> {
  const idle = await run('idle', {}, false);
  const runs = [idle, await run('flood', {}, true), await run('flood, NIXERY_BUILD_RATE=off', { NIXERY_BUILD_RATE: 'off' }, true)];
  console.log(`cold pull of hello from 127.0.0.3; flood: ${FLOOD} distinct unknown names from 127.0.0.2 at ${RATE}/s, each hanging up after 2 s`);
  console.log(['run'.padEnd(32), 'cold pull'.padStart(10), 'ratio'.padStart(7), 'builds'.padStart(8), 'removed'.padStart(8), 'queue empty'.padStart(12), '  flood answers'].join(''));
  for (const r of runs) {
    const answers = Object.entries(r.statuses).map(([k, n]) => `${k}: ${n}`).join(', ') || '-';
    const cells = [`${(r.coldMs / 1000).toFixed(2)} s`.padStart(10), (r.coldMs / idle.coldMs).toFixed(2).padStart(7), String(r.started).padStart(8), String(r.abandoned).padStart(8)];
    console.log([r.name.padEnd(32), ...cells, `${(r.drainMs / 1000).toFixed(1)} s`.padStart(12), `  ${answers}`].join(''));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
