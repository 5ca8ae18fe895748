/**
 * The popularity job (apps/popcount-job) against real components: a Nix
 * binary cache and channel made from the bundled package set and served on
 * loopback, a real redis-server, real Nix builds and real BullMQ schedulers.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPopcountScheduler } from '@nixery/popcount-job';
import {
  type BuildJobData,
  LayerCache,
  POPCOUNT_QUEUE,
  type Popularity,
  PopularityReader,
  type PopularityMeta,
  type Runtime,
  buildImage,
  createRuntime,
  listPopcountRuns,
  loadConfig,
  nixPreparation,
  parseImage,
  popcountKeys,
  publishPopularity,
  readPopularityMeta,
  redisKeys,
  storePathName,
} from '@nixery/shared';
import { Queue } from 'bullmq';
import { type LoopbackChannel, closureOf, referrersOf, serveStatic, startLoopbackChannel } from '../helpers/binary-cache';
import { REPO } from '../helpers/nixery';
import { type LongProcess, freePort, sleep, startProcess, waitFor } from '../helpers/proc';

/** A schedule that does not fire during the tests: runs come from start-up and manual jobs. */
const YEARLY = '0 0 1 1 *';
const ATTRS = ['hello', 'curl', 'git', 'jq', 'python3', 'htop', 'coreutils', 'nano', 'bashInteractive', 'openssl', 'zlib', 'ncurses', 'glibc', 'cacert'];

let scratch: string;
let redisProc: LongProcess;
let redisUrl: string;
let channel: LoopbackChannel;
let prefixN = 0;
const runtimes: Runtime[] = [];

/** A runtime for a config made from `env`, on the test Redis under a fresh prefix (unless given). */
function runtime(env: Record<string, string>, prefix = `pc${process.pid}x${++prefixN}`): Runtime {
  const config = loadConfig({ REDIS_URL: redisUrl, NIXERY_REDIS_PREFIX: prefix, STORAGE_PATH: path.join(scratch, 'storage', prefix), LOG_LEVEL: 'fatal', NIXERY_POPCOUNT_SCHEDULE: YEARLY, ...env });
  const rt = createRuntime(config, { url: redisUrl }, 'popcount-test');
  runtimes.push(rt);
  return rt;
}

/** Env of a channel source served by the loopback channel. */
function channelEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { NIXERY_CHANNEL: 'test', NIXERY_CHANNEL_URL: channel.channelUrl, NIXERY_POPCOUNT_CACHE_URL: channel.cacheUrl, ...extra };
}

async function table(rt: Runtime): Promise<Popularity | null> {
  const raw = await rt.redis.get(redisKeys(rt.config.redisPrefix).popularity);
  return raw ? (JSON.parse(raw) as Popularity) : null;
}

/** Starts the job in-process; waits for its start-up run; returns the finished job's state and reason. */
async function startupRun(rt: Runtime): Promise<{ state: string; failedReason?: string; progress?: unknown }> {
  const sched = await startPopcountScheduler(rt);
  try {
    const startupJobId = await sched.startup;
    assert.ok(startupJobId, 'a start-up run is asked for');
    const queue = new Queue(POPCOUNT_QUEUE, { connection: rt.connect(), prefix: rt.config.redisPrefix });
    try {
      let state = '';
      assert.ok(
        await waitFor(async () => {
          state = (await queue.getJobState(startupJobId)) as string;
          return state === 'completed' || state === 'failed';
        }, { timeoutMs: 120_000, intervalMs: 100 }),
        `start-up job finished (state ${state})`,
      );
      const job = (await queue.getJob(startupJobId))!;
      return { state, ...(job.failedReason ? { failedReason: job.failedReason } : {}), progress: job.progress };
    } finally {
      await queue.close();
    }
  } finally {
    await sched.close();
  }
}

/** Nixery's counts computed independently: for each path of the closure, its referrers among the listed paths. */
async function expectedCounts(listed: readonly string[]): Promise<Popularity> {
  const listedSet = new Set(listed);
  const counts: Popularity = {};
  for (const p of await closureOf(listed)) {
    const n = (await referrersOf(p)).filter((r) => listedSet.has(r)).length;
    if (n > 1) counts[storePathName(p)] = (counts[storePathName(p)] ?? 0) + n;
  }
  return counts;
}

before(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'popcount-test-'));
  const port = await freePort();
  redisUrl = `redis://127.0.0.1:${port}`;
  redisProc = await startProcess({
    name: 'redis-server',
    cmd: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', scratch],
    logFile: path.join(REPO, 'test-artifacts', 'popcount-redis.log'),
    ready: async () => {
      const { connectRedis } = await import('@nixery/shared');
      const c = connectRedis({ url: redisUrl }, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        await c.connect();
        return (await c.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        c.disconnect();
      }
    },
  });
  channel = await startLoopbackChannel(path.join(scratch, 'channel'), ATTRS);
});

after(async () => {
  for (const rt of runtimes) await rt.close().catch(() => undefined);
  await channel?.server.close();
  await redisProc?.stop();
  await rm(scratch, { recursive: true, force: true });
});

describe('popularity job', () => {
  it('channel method: counts equal reference counts from the Nix store; missing paths skipped; narinfo cache reused', async () => {
    const rt = runtime(channelEnv());
    const narinfosBefore = channel.server.count('.narinfo');
    const run = await startupRun(rt);
    assert.equal(run.state, 'completed', run.failedReason);
    assert.deepEqual(run.progress, { stage: 'done' });

    const expected = await expectedCounts(channel.listed);
    const got = await table(rt);
    assert.deepEqual(got, expected);
    // The bundled set's shared libraries are there, glibc most of all.
    const glibc = Object.entries(expected).find(([n]) => n.startsWith('glibc-'))!;
    assert.ok(glibc[1] >= 10, `glibc count ${glibc[1]}`);

    const meta = (await readPopularityMeta(rt.redis, popcountKeys(redisKeys(rt.config.redisPrefix))))!;
    assert.equal(meta.source, `nixpkgs:${channel.revision}`);
    assert.equal(meta.method, 'narinfo');
    assert.equal(meta.packages, channel.listed.length);
    assert.equal(meta.skipped, 1, 'the path missing from the cache is skipped and counted');
    assert.equal(meta.paths, Object.keys(expected).length);
    assert.equal(meta.threshold, 2);
    assert.ok(!Number.isNaN(Date.parse(meta.computedAt)));
    // One narinfo request per listed path (the missing one included).
    assert.equal(channel.server.count('.narinfo') - narinfosBefore, channel.listed.length + 1);

    // A second run reads references from the narinfo cache: only the missing path is asked for again.
    const again = await startupRunForced(rt);
    assert.equal(again, 'completed');
    assert.equal(channel.server.count('.narinfo') - narinfosBefore, channel.listed.length + 2);
    const meta2 = (await readPopularityMeta(rt.redis, popcountKeys(redisKeys(rt.config.redisPrefix))))!;
    assert.equal(meta2.version, meta.version + 1);
    assert.deepEqual(await table(rt), expected);
  });

  it('unreachable or garbage URLs fail the job with a clear error and keep the previous table', async () => {
    const garbage = await serveStatic({ fallback: { status: 200, body: '<html><body>Welcome to nginx!</body></html>' } });
    const closedPort = await freePort();
    try {
      const cases: { env: Record<string, string>; reason: RegExp }[] = [
        { env: channelEnv({ NIXERY_POPCOUNT_CACHE_URL: `http://127.0.0.1:${closedPort}/cache` }), reason: /cannot reach the binary cache http:\/\/127\.0\.0\.1:\d+\/cache: ECONNREFUSED/ },
        { env: channelEnv({ NIXERY_POPCOUNT_CACHE_URL: `${garbage.url}/cache` }), reason: /no narinfo of the \d+ listed store paths could be read from http:\/\/127\.0\.0\.1:\d+\/cache .*no StorePath line/ },
        { env: channelEnv({ NIXERY_POPCOUNT_STORE_PATHS_URL: `${garbage.url}/store-paths.xz` }), reason: /store-paths list http:\/\/127\.0\.0\.1:\d+\/store-paths\.xz holds no store paths/ },
        { env: channelEnv({ NIXERY_CHANNEL_URL: `http://127.0.0.1:${closedPort}` }), reason: /cannot pin the package source \(nixpkgs channel test\)/ },
      ];
      for (const c of cases) {
        const rt = runtime(c.env);
        const keys = popcountKeys(redisKeys(rt.config.redisPrefix));
        const previous = { 'glibc-2.36': 40, 'openssl-3.0': 7 };
        const prevMeta: Omit<PopularityMeta, 'version'> = {
          source: 'nixpkgs:previous', method: 'narinfo', computedAt: new Date(0).toISOString(), packages: 50, paths: 2, skipped: 0, threshold: 2, durationMs: 1,
        };
        const v = await publishPopularity(rt.redis, keys, previous, prevMeta);
        const run = await startupRun(rt);
        assert.equal(run.state, 'failed');
        assert.match(run.failedReason ?? '', c.reason);
        assert.deepEqual(await table(rt), previous, 'previous table kept');
        assert.equal((await readPopularityMeta(rt.redis, keys))!.version, v, 'previous metadata kept');
        const [last] = await listPopcountRuns(rt.redis, keys, 1);
        assert.equal(last!.ok, false);
        assert.match(last!.error!, c.reason);
      }
    } finally {
      await garbage.close();
    }
  });

  it('a path that becomes popular after a refresh gets its own layer in the next build', async () => {
    const rt = runtime({});
    const keys = redisKeys(rt.config.redisPrefix);
    const reader = new PopularityReader(rt.redis, keys, { log: rt.log });
    const parsed = parseImage('curl', 'latest');
    assert.ok(parsed.ok);
    const job: BuildJobData = {
      buildKey: 'popcount-test',
      image: parsed.spec,
      source: { identity: 'test', revision: 'test', nix: { type: 'path', path: path.join(REPO, 'nix/pkgs') } },
    };
    const build = async () => {
      const out = await buildImage(
        {
          storage: rt.storage,
          layerCache: new LayerCache(rt.redis, keys, 30_000),
          popularity: () => reader.get(),
          prepare: nixPreparation({ nixDir: rt.config.nixDir, nix: rt.config.nix, timeoutMs: 120_000 }),
          layerBudget: rt.config.layerBudget,
          packConcurrency: 2,
          log: rt.log,
        },
        job,
        () => undefined,
        new AbortController().signal,
      );
      assert.ok(out.ok && 'image' in out, JSON.stringify(!out.ok && out.failure));
      return out.image.layers.map((l) => l.paths.map(storePathName));
    };
    const isGlibc = (n: string) => n.startsWith('glibc-');

    const before = await build();
    const glibcLayerBefore = before.find((l) => l.some(isGlibc))!;
    assert.ok(glibcLayerBefore.length > 1, `before the refresh glibc travels with curl: ${glibcLayerBefore.join(' ')}`);

    const run = await startupRun(rt); // the bundled set, counted with Nix
    assert.equal(run.state, 'completed', run.failedReason);
    const counts = (await table(rt))!;
    assert.ok(Object.entries(counts).some(([n, c]) => isGlibc(n) && c >= 10), JSON.stringify(counts));

    const afterRefresh = await build();
    const glibcLayerAfter = afterRefresh.find((l) => l.some(isGlibc))!;
    assert.equal(glibcLayerAfter.length, 1, `after the refresh glibc has its own layer: ${glibcLayerAfter.join(' ')}`);
    for (const lib of ['openssl-', 'zlib-']) {
      assert.ok(afterRefresh.some((l) => l.length === 1 && l[0]!.startsWith(lib)), `${lib} alone`);
    }
  });

  it('two popcount-job processes: the scheduler fires exactly once per tick', async () => {
    const prefix = `pc${process.pid}sched`;
    const every = 1500;
    const env = {
      REDIS_URL: redisUrl,
      NIXERY_REDIS_PREFIX: prefix,
      NIXERY_POPCOUNT_SCHEDULE: String(every),
      LOG_LEVEL: 'info',
      TSX_TSCONFIG_PATH: path.join(REPO, 'test/tsconfig.json'),
      ...channelEnv(),
    };
    const rt = runtime({}, prefix);
    const keys = popcountKeys(redisKeys(prefix));
    const procs: LongProcess[] = [];
    try {
      for (const i of [1, 2]) {
        procs.push(
          await startProcess({
            name: `popcount-job-${i}`,
            cmd: process.execPath,
            args: ['--import', 'tsx', path.join(REPO, 'apps/popcount-job/src/main.ts')],
            cwd: REPO,
            env,
            logFile: path.join(REPO, 'test-artifacts', `popcount-job-${i}.log`),
            ready: async () => (await rt.redis.exists(`${prefix}:${POPCOUNT_QUEUE}:repeat:popcount`)) === 1 || (await rt.redis.exists(`${prefix}:${POPCOUNT_QUEUE}:repeat`)) === 1,
          }),
        );
      }
      const t0 = Date.now();
      await sleep(every * 6);
      // Stop ticking, let the running job finish, then stop the processes.
      const queue = new Queue(POPCOUNT_QUEUE, { connection: rt.connect(), prefix });
      await queue.removeJobScheduler('popcount');
      const elapsed = Date.now() - t0;
      await waitFor(async () => (await queue.getActiveCount()) === 0, { timeoutMs: 10_000 });
      await queue.close();
      for (const p of procs) await p.stop();
      const runs = await listPopcountRuns(rt.redis, keys);
      const ticks = runs.filter((r) => r.jobId.startsWith('repeat:'));
      assert.ok(runs.every((r) => r.ok), JSON.stringify(runs.filter((r) => !r.ok)));
      // Each tick ran once: job ids (one per tick) are unique, and ticks are one interval apart.
      const millis = ticks.map((r) => Number(r.jobId.split(':').pop())).sort((a, b) => a - b);
      assert.equal(new Set(millis).size, millis.length, `a tick ran twice: ${JSON.stringify(ticks)}`);
      for (let i = 1; i < millis.length; i++) assert.equal(millis[i]! - millis[i - 1]!, every, `ticks ${millis.join(', ')}`);
      const expected = Math.floor(elapsed / every);
      assert.ok(millis.length >= expected - 1 && millis.length <= expected + 1, `${millis.length} runs in ${elapsed} ms (interval ${every})`);
      // Start-up runs (no table at first) are shared too: one per start-up minute, not one per process.
      const startups = runs.filter((r) => r.jobId.startsWith('startup-'));
      assert.equal(new Set(startups.map((r) => r.jobId)).size, startups.length);
      assert.ok(startups.length <= 2);
      console.log(`scheduler: ${millis.length} tick runs in ${elapsed} ms by ${new Set(ticks.map((r) => r.runner)).size} process(es), ${startups.length} start-up run(s)`);
    } finally {
      for (const p of procs) await p.stop();
    }
  });
});

/** Adds a manual job and waits for it (used for a second run on the same prefix). */
async function startupRunForced(rt: Runtime): Promise<string> {
  const queue = new Queue(POPCOUNT_QUEUE, { connection: rt.connect(), prefix: rt.config.redisPrefix });
  const sched = await startPopcountScheduler(rt);
  try {
    const job = await queue.add('popcount', { reason: 'manual' }, { jobId: `manual-${Date.now()}` });
    let state = '';
    await waitFor(async () => {
      state = (await queue.getJobState(job.id!)) as string;
      return state === 'completed' || state === 'failed';
    }, { timeoutMs: 60_000 });
    return state;
  } finally {
    await sched.close();
    await queue.close();
  }
}
