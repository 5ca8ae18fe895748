/**
 * Warm manifest latency and throughput: a cached image served by Nixery,
 * side by side in the same run with Debian's docker-registry (CNCF
 * distribution 2.8) serving the same manifest (copied there with skopeo).
 *
 *   npm run bench:manifest                      # 3 rounds of 10 s per target
 *   BENCH_SECONDS=5 BENCH_ROUNDS=1 BENCH_CONNECTIONS=32 npm run bench:manifest
 *
 * Load: wrk (Debian), 32 connections, 2 threads, GET by tag and by digest
 * with the Accept header Docker sends. Targets run interleaved, round after
 * round, so background load on the machine hits both alike; the median round
 * is reported. Nixery runs with LOG_LEVEL=info (its production default: one
 * log line per manifest, naming the revision) and the registry with its
 * access log on.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startDistributionRegistry } from '../test/helpers/clients';
import { MANIFEST_ACCEPT, REPO, startNixery } from '../test/helpers/nixery';
import { runChecked } from '../test/helpers/proc';
import { type WrkResult, median, wrk } from './lib';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const IMAGE = 'hello';

/** Runs wrk against `url` the way this benchmark loads manifests. */
const load = (url: string): Promise<WrkResult> =>
  wrk(url, { connections: CONNECTIONS, seconds: SECONDS, threads: 2, headers: { Accept: MANIFEST_ACCEPT } });

async function main(): Promise<void> {
  await mkdir(path.join(REPO, 'test-artifacts'), { recursive: true });
  const nx = await startNixery({ LOG_LEVEL: 'info' });
  const reg = await startDistributionRegistry();
  try {
    const built = await fetch(`${nx.url}/v2/${IMAGE}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
    if (built.status !== 200) throw new Error(`build failed: ${built.status} ${await built.text()}`);
    const digest = built.headers.get('docker-content-digest')!;
    await runChecked('skopeo', [
      '--insecure-policy', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--preserve-digests',
      `docker://${nx.host}/${IMAGE}:latest`, `docker://${reg.host}/${IMAGE}:latest`,
    ], { timeoutMs: 300_000 });
    const regDigest = (await fetch(`http://${reg.host}/v2/${IMAGE}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } }))
      .headers.get('docker-content-digest');
    if (regDigest !== digest) throw new Error(`registry serves ${regDigest}, Nixery ${digest}`);

    const targets = [
      { name: 'nixery   tag   ', url: `${nx.url}/v2/${IMAGE}/manifests/latest` },
      { name: 'registry tag   ', url: `http://${reg.host}/v2/${IMAGE}/manifests/latest` },
      { name: 'nixery   digest', url: `${nx.url}/v2/${IMAGE}/manifests/${digest}` },
      { name: 'registry digest', url: `http://${reg.host}/v2/${IMAGE}/manifests/${digest}` },
    ];
    for (const t of targets) await load(t.url).catch(() => undefined); // warm-up (JIT, caches)
    const results = new Map<string, WrkResult[]>(targets.map((t) => [t.name, []]));
    for (let r = 1; r <= ROUNDS; r++) {
      for (const t of targets) {
        const res = await load(t.url);
        results.get(t.name)!.push(res);
        console.log(`round ${r} ${t.name}: ${res.rps.toFixed(0)} req/s, p50 ${res.p50ms.toFixed(2)} ms, p99 ${res.p99ms.toFixed(2)} ms, errors ${res.errors}`);
      }
    }
    console.log(`\nwarm manifest GET, ${CONNECTIONS} connections, ${SECONDS} s x ${ROUNDS} rounds (median), manifest ${digest}`);
    console.log('target            req/s      p50 ms   p99 ms   errors');
    const summary: Record<string, { rps: number; p50ms: number; p99ms: number }> = {};
    for (const t of targets) {
      const rs = results.get(t.name)!;
      const s = { rps: median(rs.map((x) => x.rps)), p50ms: median(rs.map((x) => x.p50ms)), p99ms: median(rs.map((x) => x.p99ms)) };
      summary[t.name.replace(/\s+/g, ' ').trim()] = s;
      const errs = rs.reduce((n, x) => n + x.errors, 0);
      console.log(`${t.name}   ${s.rps.toFixed(0).padStart(8)}   ${s.p50ms.toFixed(2).padStart(6)}   ${s.p99ms.toFixed(2).padStart(6)}   ${errs}`);
    }
    for (const kind of ['tag', 'digest']) {
      const n = summary[`nixery ${kind}`]!.rps;
      const d = summary[`registry ${kind}`]!.rps;
      console.log(`by ${kind}: Nixery / distribution = ${(n / d).toFixed(2)}x`);
    }
  } finally {
    await reg.stop();
    await nx.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
