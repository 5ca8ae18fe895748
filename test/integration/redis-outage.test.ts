/**
 * Redis goes away and comes back (issue 11, point 1, and point 2's "also
 * with Redis gone"), against real processes and a real redis-server:
 *
 * 1. `npm start` (embedded Redis): the redis-server is SIGKILLed while a cold
 *    pull waits on its build. The waiting client gets an HTTP answer within
 *    NIXERY_BUILD_WAIT plus a few seconds (200, or 503 with Retry-After); a
 *    warm pull is answered from memory meanwhile; the server is restarted on
 *    the same socket (a new pid) with its data (a key written before, the
 *    earlier image's manifest); a cold pull builds again without restarting
 *    Nixery; /healthz and /readyz are 200. When restarts keep failing,
 *    /healthz turns 503 naming the embedded redis-server, and 200 again once
 *    a restart succeeds. With Redis gone for good, a cold pull is a fast 503
 *    and SIGTERM still exits 0 within the grace plus a few seconds.
 * 2. `REDIS_URL` (gateway, worker and popcount-job each alone on an
 *    external redis-server this test kills and restarts on the same port):
 *    a pull waiting on its build when Redis goes is answered 503 when its
 *    wait ends (it waited forever before); cold pulls answer 503 at once
 *    while it is gone, warm pulls 200; after it
 *    is back a cold pull builds without restarting any process; SIGTERM with
 *    Redis gone: every process exits 0 within its grace plus a few seconds.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { MANIFEST_ACCEPT, type NixeryInstance, REPO, metric, readLogLines, startNixery } from '../helpers/nixery';
import { startRedisServer } from '../helpers/redis';
import { copyPackageSet, type PackageSetCopy } from '../helpers/pkgset';
import {
  type LongProcess,
  freePort,
  isAlive,
  makeScratchDir,
  processesMentioning,
  removeScratchDir,
  sleep,
  startProcess,
  waitFor,
} from '../helpers/proc';

const BUILD_WAIT_S = 15;
const GRACE_S = 5;

type Answer = { status: number; retryAfter: string | null; code?: string; ms: number };

/** A manifest request, timed; its outcome as data (an error when no HTTP answer came). */
async function pull(url: string, name: string): Promise<Answer> {
  const t0 = Date.now();
  const r = await fetch(`${url}/v2/${name}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });
  const body = (await r.json().catch(() => ({}))) as { errors?: { code: string }[] };
  const code = body.errors?.[0]?.code;
  return { status: r.status, retryAfter: r.headers.get('retry-after'), ...(code ? { code } : {}), ms: Date.now() - t0 };
}

/** Asserts a 503 UNAVAILABLE with a positive Retry-After. */
function assertUnavailable(a: Answer, what: string): void {
  assert.equal(a.status, 503, `${what}: ${JSON.stringify(a)}`);
  assert.equal(a.code, 'UNAVAILABLE', `${what}: ${JSON.stringify(a)}`);
  assert.ok(Number(a.retryAfter) > 0, `${what}: Retry-After: ${JSON.stringify(a)}`);
}

async function status(url: string): Promise<number> {
  return (await fetch(url)).status;
}

/** SIGTERMs `child` and resolves its exit code and how long it took. */
async function sigterm(child: { pid?: number | undefined; once: (e: 'exit', f: (code: number | null) => void) => unknown; kill: (s: NodeJS.Signals) => unknown }): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const code = await exited;
  return { code, ms: Date.now() - t0 };
}

/** The pid of the redis-server serving `socket`, if one runs. */
function redisServerOn(socket: string): number | undefined {
  return processesMentioning(socket).find((pid) => isAlive(pid));
}

const logLines = (file: string) => readLogLines(file);

describe('npm start: the embedded redis-server killed mid-build', () => {
  let pkgs: PackageSetCopy;
  let nx: NixeryInstance;
  let bin: string;
  let socket: string;
  /** While this file exists, the redis-server wrapper on nixery's PATH exits 1 at once (a crash loop). */
  let broken: string;

  before(async () => {
    pkgs = await copyPackageSet({ slowSeconds: 8 });
    bin = await makeScratchDir('nixery-redis-bin-');
    broken = path.join(bin, 'broken');
    const realRedis = execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
    await writeFile(path.join(bin, 'redis-server'), `#!/bin/sh\n[ -e '${broken}' ] && exit 1\nexec '${realRedis}' "$@"\n`);
    await chmod(path.join(bin, 'redis-server'), 0o755);
    nx = await startNixery({
      ...pkgs.env,
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      NIXERY_BUILD_WAIT: String(BUILD_WAIT_S),
      NIXERY_WORKER_GRACE: String(GRACE_S),
      NIXERY_POPCOUNT_SCHEDULE: 'off',
    });
    socket = path.join(nx.storagePath, 'redis', 'redis.sock');
  });
  after(async () => {
    await rm(broken, { force: true });
    await nx?.stop();
    await pkgs?.remove();
    if (bin) await removeScratchDir(bin);
  });

  it('answers the waiting pull in time, serves warm pulls, restarts Redis with its data, builds again', async (t) => {
    const warm = await pull(nx.url, 'hello');
    assert.equal(warm.status, 200, JSON.stringify(warm));
    const r = new Redis({ path: socket });
    await r.set('nixery-test:marker', 'kept');
    await sleep(1500); // appendfsync everysec: the marker is in the append-only file
    r.disconnect();

    const before = redisServerOn(socket);
    assert.ok(before, `a redis-server on ${socket}`);
    const waiting = pull(nx.url, 'slow/jq');
    assert.ok(
      await waitFor(async () => (await metric(nx.url, 'nixery_queue_active_jobs', { queue: 'build-x86_64-linux' })) >= 1, { timeoutMs: 60_000, intervalMs: 200 }),
      'the slow build starts',
    );
    await sleep(1000);
    process.kill(before, 'SIGKILL');

    const during = await pull(nx.url, 'hello');
    assert.equal(during.status, 200, `a warm pull is answered from memory: ${JSON.stringify(during)}`);

    assert.ok(await waitFor(() => (redisServerOn(socket) ?? before) !== before, { timeoutMs: 10_000 }), 'a new redis-server on the same socket');
    const answer = await waiting;
    t.diagnostic(`the pull waiting while Redis was killed: ${JSON.stringify(answer)}`);
    assert.ok(answer.ms < (BUILD_WAIT_S + 5) * 1000, `the waiting pull is answered within the build wait + 5 s: ${JSON.stringify(answer)}`);
    if (answer.status !== 200) assertUnavailable(answer, 'the waiting pull');

    const again = new Redis({ path: socket });
    try {
      assert.equal(await again.get('nixery-test:marker'), 'kept', 'data kept across the restart');
      assert.ok((await again.keys('nixery:manifest:build:*')).length >= 1, "the earlier image's manifest is still in Redis");
    } finally {
      again.disconnect();
    }
    const cold = await pull(nx.url, 'hello/zlib');
    assert.equal(cold.status, 200, `a cold pull builds again without restarting Nixery: ${JSON.stringify(cold)}`);
    assert.equal(await status(`${nx.url}/healthz`), 200);
    assert.equal(await status(`${nx.url}/readyz`), 200);
    assert.equal(await metric(nx.url, 'nixery_embedded_redis_restarts_total', { outcome: 'ok' }), 1);
    const exits = (await logLines(nx.logFile)).filter((l) => l.msg === 'embedded redis-server exited; restarting it');
    assert.equal(exits.length, 1);
    assert.equal(exits[0]!.level, 40, 'a warn line');
    assert.equal(exits[0]!.signal, 'SIGKILL');
  });

  it('restarts that keep failing turn /healthz 503 (naming the embedded redis-server); a successful one turns it 200', async () => {
    await writeFile(broken, '');
    process.kill(redisServerOn(socket)!, 'SIGKILL');
    assert.ok(await waitFor(async () => (await status(`${nx.url}/healthz`)) === 503, { timeoutMs: 30_000, intervalMs: 250 }), '/healthz 503 after repeated failures');
    const body = (await (await fetch(`${nx.url}/healthz`)).json()) as { broken: { part: string }[] };
    assert.deepEqual(body.broken.map((b) => b.part), ['embedded-redis']);
    assert.equal(await status(`${nx.url}/readyz`), 503, '/readyz 503 while Redis is unreachable');
    await rm(broken);
    assert.ok(await waitFor(async () => (await status(`${nx.url}/healthz`)) === 200, { timeoutMs: 30_000, intervalMs: 250 }), '/healthz 200 once a restart succeeds');
    assert.ok(await waitFor(async () => (await status(`${nx.url}/readyz`)) === 200, { timeoutMs: 10_000, intervalMs: 250 }), '/readyz 200 again');
    assert.ok((await metric(nx.url, 'nixery_embedded_redis_restarts_total', { outcome: 'failed' })) >= 1);
    assert.ok((await logLines(nx.logFile)).some((l) => l.msg.startsWith('embedded redis-server keeps failing to start') && l.level === 50), 'an error line says so');
  });

  it('with Redis gone for good: a cold pull is a fast 503, SIGTERM exits 0 within the grace plus a few seconds', async (t) => {
    await writeFile(broken, '');
    process.kill(redisServerOn(socket)!, 'SIGKILL');
    assert.ok(await waitFor(async () => (await status(`${nx.url}/readyz`)) === 503, { timeoutMs: 10_000, intervalMs: 100 }));
    const cold = await pull(nx.url, 'hello/nano');
    assertUnavailable(cold, 'a cold pull while Redis is gone');
    assert.ok(cold.ms < 5000, `answered at once: ${cold.ms} ms`);
    const { code, ms } = await sigterm(nx.child);
    t.diagnostic(`cold pull ${cold.ms} ms; npm start exit ${code} after ${ms} ms`);
    assert.equal(code, 0, 'exit 0');
    assert.ok(ms < (GRACE_S + 5) * 1000, `exits within the grace plus a few seconds: ${ms} ms`);
  });
});

describe('REDIS_URL: an external redis-server killed and restarted on the same port', () => {
  let scratch: string;
  let redisPort: number;
  let redisProc: LongProcess;
  let gateway: NixeryInstance;
  let worker: LongProcess;
  let popcount: LongProcess;
  let workerPort: number;
  /** A copy of the bundled set whose `slow` nobody has built: the build of slow/hello surely takes its seconds. */
  let pkgs: PackageSetCopy;

  const startRedis = () =>
    startRedisServer(redisPort, path.join(scratch, 'redis'), { logName: 'outage-redis', appendonly: true });

  /** Starts an app's main.ts alone; ready when `ready` holds. */
  const startApp = (name: string, env: Record<string, string>, ready: (log: string) => Promise<boolean>) => {
    const logFile = path.join(REPO, 'test-artifacts', `outage-${name}-${redisPort}.log`);
    return startProcess({
      name,
      cmd: process.execPath,
      args: ['--import', 'tsx', path.join(REPO, `apps/${name}/src/main.ts`)],
      cwd: REPO,
      logFile,
      env: { TSX_TSCONFIG_PATH: path.join(REPO, 'test/tsconfig.json'), ...commonEnv(), ...env },
      ready: () => ready(logFile),
    });
  };
  const commonEnv = () => ({
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    STORAGE_PATH: path.join(scratch, 'storage'),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    NIXERY_BUILD_WAIT: String(BUILD_WAIT_S),
    NIXERY_WORKER_GRACE: String(GRACE_S),
    ...pkgs.env,
  });

  before(async () => {
    scratch = await makeScratchDir('nixery-outage-');
    pkgs = await copyPackageSet({ slowSeconds: 8 });
    await mkdir(path.join(scratch, 'redis'));
    await mkdir(path.join(scratch, 'storage'));
    redisPort = await freePort();
    redisProc = await startRedis();
    workerPort = await freePort();
    worker = await startApp('worker', { NIXERY_WORKER_METRICS_PORT: String(workerPort), NIXERY_POPCOUNT_SCHEDULE: 'off' }, async () =>
      fetch(`http://127.0.0.1:${workerPort}/healthz`).then((r) => r.ok, () => false),
    );
    popcount = await startApp('popcount-job', { NIXERY_POPCOUNT_SCHEDULE: '0 3 * * *', NIXERY_POPCOUNT_REALISE: 'false' }, async (log) =>
      (await readFile(log, 'utf8').catch(() => '')).includes('popularity job scheduled'),
    );
    gateway = await startNixery(commonEnv(), { entry: path.join(REPO, 'apps/gateway/src/main.ts'), storagePath: path.join(scratch, 'storage') });
  });
  after(async () => {
    await gateway?.stop();
    await worker?.stop();
    await popcount?.stop();
    await redisProc?.stop();
    await pkgs?.remove();
    if (scratch) await removeScratchDir(scratch);
  });

  it('a pull waiting on its build when Redis goes for good is answered 503 when its wait ends', async (t) => {
    const warm = await pull(gateway.url, 'hello');
    assert.equal(warm.status, 200, JSON.stringify(warm));
    const waiting = pull(gateway.url, 'slow/hello');
    assert.ok(
      await waitFor(async () => (await metric(gateway.url, 'nixery_queue_active_jobs', { queue: 'build-x86_64-linux' })) >= 1, { timeoutMs: 60_000, intervalMs: 100 }),
      'the build starts',
    );
    process.kill(redisProc.pid, 'SIGKILL');
    await redisProc.exited;
    const answer = await waiting;
    t.diagnostic(`the waiting pull: ${JSON.stringify(answer)}`);
    assertUnavailable(answer, 'the waiting pull');
    assert.ok(answer.ms < (BUILD_WAIT_S + 5) * 1000, `answered within the build wait + 5 s: ${answer.ms} ms`);
  });

  it('503 at once while it is gone, warm pulls 200; builds again once it is back, no process restarted', async () => {
    assert.ok(await waitFor(async () => (await status(`${gateway.url}/readyz`)) === 503, { timeoutMs: 10_000 }), 'gateway /readyz 503');

    const cold = await pull(gateway.url, 'hello/zlib');
    assertUnavailable(cold, 'a cold pull while Redis is gone');
    assert.ok(cold.ms < 5000, `answered at once: ${cold.ms} ms`);
    const during = await pull(gateway.url, 'hello');
    assert.equal(during.status, 200, `a warm pull is answered from memory: ${JSON.stringify(during)}`);
    assert.equal(await status(`${gateway.url}/healthz`), 200, 'gateway /healthz stays 200: a restart would not bring Redis back');
    assert.equal(await status(`http://127.0.0.1:${workerPort}/healthz`), 200, 'worker /healthz stays 200');
    assert.equal(await status(`http://127.0.0.1:${workerPort}/readyz`), 503, 'worker /readyz 503');

    await sleep(3000);
    redisProc = await startRedis();
    assert.ok(await waitFor(async () => (await status(`${gateway.url}/readyz`)) === 200, { timeoutMs: 30_000 }), 'gateway /readyz 200 again');
    await sleep(1000); // every connection retries at least every 500 ms
    const built = await pull(gateway.url, 'hello/zlib');
    assert.equal(built.status, 200, `a cold pull builds again: ${JSON.stringify(built)}`);
    for (const p of [worker, popcount]) assert.ok(!p.hasExited(), 'no process restarted');
    assert.equal(gateway.child.exitCode, null, 'the gateway still runs');
  });

  it('SIGTERM with Redis gone: every process exits 0 within its grace plus a few seconds', async (t) => {
    process.kill(redisProc.pid, 'SIGKILL');
    await redisProc.exited;
    await sleep(500);
    const t0 = Date.now();
    const keepAlive = setInterval(() => undefined, 1000); // the apps' child handles are unref'd
    const gatewayExit = sigterm(gateway.child);
    for (const p of [worker, popcount]) process.kill(p.pid, 'SIGTERM');
    const others = await Promise.all([worker, popcount].map(async (p) => ({ ...(await p.exited), ms: Date.now() - t0 })));
    const g = await gatewayExit;
    clearInterval(keepAlive);
    t.diagnostic(`exits: gateway ${JSON.stringify(g)}, worker and popcount-job ${JSON.stringify(others)}`);
    assert.equal(g.code, 0, 'gateway exit 0');
    assert.ok(g.ms < (GRACE_S + 5) * 1000, `gateway exits in time: ${g.ms} ms`);
    for (const [i, o] of others.entries()) {
      assert.equal(o.code, 0, `${['worker', 'popcount-job'][i]} exit 0: ${JSON.stringify(o)}`);
      assert.ok(o.ms < (GRACE_S + 5) * 1000, `${['worker', 'popcount-job'][i]} exits in time: ${o.ms} ms`);
    }
  });
});
