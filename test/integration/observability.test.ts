/**
 * Operator signals against a real Nixery (single node, real Nix) on a Redis
 * server this test starts and stops, plus a separate worker process
 * (apps/worker/src/main.ts) with its own metrics endpoint:
 * - /metrics of gateway and worker parse as strict Prometheus text;
 * - counters move as builds and pulls happen; queue gauges show a running build;
 * - /readyz fails while Redis is down and recovers after; /healthz and /metrics still answer;
 * - child loggers carry image, tag, buildKey, jobId; LOG_FORMAT=pretty prints for a terminal;
 * - the queue dashboard is 404 without NIXERY_ADMIN_PASSWORD, 401 without credentials.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MANIFEST_ACCEPT, type NixeryInstance, REPO, readLogLines, startNixery } from '../helpers/nixery';
import { type PackageSetCopy, copyPackageSet } from '../helpers/pkgset';
import { type LongProcess, freePort, makeScratchDir, removeScratchDir, startProcess, waitFor } from '../helpers/proc';
import { type Family, scrape, sumOf } from '../helpers/prometheus';
import { startRedisServer } from '../helpers/redis';

const QUEUE = 'build-x86_64-linux';

const pull = (base: string, name: string) => fetch(`${base}/v2/${name}/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT } });

describe('observability: metrics, health, logs, admin', () => {
  let scratch: string;
  let redisPort: number;
  let redis: LongProcess | undefined;
  let nx: NixeryInstance;
  let worker: LongProcess | undefined;
  let workerUrl: string;
  let pkgs: PackageSetCopy;

  const startRedis = () =>
    startRedisServer(redisPort, scratch, { logName: 'observability-redis' });

  before(async () => {
    scratch = await makeScratchDir('nixery-obs-');
    redisPort = await freePort();
    redis = await startRedis();
    pkgs = await copyPackageSet({ slowSeconds: 4 });
    const env = { REDIS_URL: `redis://127.0.0.1:${redisPort}`, ...pkgs.env };
    nx = await startNixery(env);
    // A worker process of its own, building only for aarch64 so every x86_64 build stays in the
    // single node (its counters are then exact); it serves /metrics for the shared queues.
    const metricsPort = await freePort();
    workerUrl = `http://127.0.0.1:${metricsPort}`;
    worker = await startProcess({
      name: 'worker',
      cmd: process.execPath,
      args: ['--import', 'tsx', path.join(REPO, 'apps/worker/src/main.ts')],
      cwd: REPO,
      env: {
        TSX_TSCONFIG_PATH: path.join(REPO, 'test/tsconfig.json'),
        ...env,
        HOST: '127.0.0.1',
        STORAGE_PATH: nx.storagePath,
        NIXERY_WORKER_SYSTEMS: 'aarch64-linux',
        NIXERY_WORKER_METRICS_PORT: String(metricsPort),
        LOG_FORMAT: 'pretty',
        LOG_LEVEL: 'info',
        NIXERY_WORKER_GRACE: '1',
      },
      logFile: path.join(REPO, 'test-artifacts', `observability-worker-${metricsPort}.log`),
      ready: () => fetch(`${workerUrl}/healthz`).then((r) => r.ok, () => false),
      stopGraceMs: 10_000,
    });
  });

  after(async () => {
    await worker?.stop();
    await nx?.stop();
    await redis?.stop();
    await pkgs?.remove();
    if (scratch) await removeScratchDir(scratch);
  });

  it('gateway and worker /metrics parse as Prometheus text with the operator metrics', async () => {
    const gw = await scrape(nx.url);
    for (const [name, type] of [
      ['nixery_http_requests_total', 'counter'],
      ['nixery_http_request_duration_seconds', 'histogram'],
      ['nixery_builds_started_total', 'counter'],
      ['nixery_builds_succeeded_total', 'counter'],
      ['nixery_builds_failed_total', 'counter'],
      ['nixery_build_duration_seconds', 'histogram'],
      ['nixery_manifest_cache_hits_total', 'counter'],
      ['nixery_manifest_cache_misses_total', 'counter'],
      ['nixery_layer_cache_hits_total', 'counter'],
      ['nixery_layer_cache_misses_total', 'counter'],
      ['nixery_layer_bytes_packed_total', 'counter'],
      ['nixery_blob_bytes_served_total', 'counter'],
      ['nixery_queue_depth', 'gauge'],
      ['nixery_queue_active_jobs', 'gauge'],
      ['nixery_queue_jobs', 'gauge'],
    ] as const) {
      assert.equal(gw.get(name)?.type, type, `gateway ${name}`);
    }
    assert.ok(gw.get('nixery_queue_depth')!.samples.some((s) => s.labels.queue === QUEUE));
    const wk = await scrape(workerUrl);
    assert.equal(wk.get('nixery_builds_started_total')?.type, 'counter');
    assert.equal(wk.get('nixery_queue_active_jobs')?.type, 'gauge');
    assert.ok(wk.get('nixery_queue_workers')!.samples.some((s) => s.labels.queue === 'build-aarch64-linux' && s.value >= 1));
    assert.equal((await fetch(`${workerUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${workerUrl}/readyz`)).status, 200);
  });

  it('counters move as builds and pulls happen; queue gauges show the running build', async () => {
    const before = await scrape(nx.url);
    const v = (f: Map<string, Family>, n: string, l: Record<string, string> = {}) => sumOf(f, n, l);

    // A slow build (the copied set's `slow` sleeps 4 s): while it runs, the gauges see it.
    const building = pull(nx.url, 'slow');
    let sawActive = false;
    await waitFor(async () => {
      const m = await scrape(nx.url);
      sawActive = v(m, 'nixery_queue_active_jobs', { queue: QUEUE }) === 1;
      return sawActive;
    }, { timeoutMs: 20_000, intervalMs: 200 });
    assert.ok(sawActive, 'nixery_queue_active_jobs was never 1 during the build');
    const res = await building;
    assert.equal(res.status, 200, await res.clone().text());
    const manifest = (await res.json()) as { layers: { digest: string; size: number }[] };

    const mid = await scrape(nx.url);
    assert.equal(v(mid, 'nixery_queue_active_jobs', { queue: QUEUE }), 0);
    assert.equal(v(mid, 'nixery_builds_started_total') - v(before, 'nixery_builds_started_total'), 1);
    assert.equal(v(mid, 'nixery_builds_succeeded_total') - v(before, 'nixery_builds_succeeded_total'), 1);
    assert.equal(v(mid, 'nixery_cluster_total', { counter: 'builds_succeeded' }) - v(before, 'nixery_cluster_total', { counter: 'builds_succeeded' }), 1);
    assert.equal(v(mid, 'nixery_manifest_cache_misses_total') - v(before, 'nixery_manifest_cache_misses_total'), 1);
    assert.ok(v(mid, 'nixery_layer_bytes_packed_total') > v(before, 'nixery_layer_bytes_packed_total'));
    assert.ok(v(mid, 'nixery_layers_packed_total') > v(before, 'nixery_layers_packed_total'));
    const delta = (n: string) => v(mid, n) - v(before, n);
    assert.equal(delta('nixery_layer_cache_misses_total'), delta('nixery_layers_packed_total'));
    assert.equal(delta('nixery_layer_cache_hits_total') + delta('nixery_layer_cache_misses_total'), manifest.layers.length, 'every layer is a hit or a miss');
    const bStage = (f: Map<string, Family>) => v(f, 'nixery_build_duration_seconds_count', { stage: 'building' });
    assert.equal(bStage(mid) - bStage(before), 1);
    // The building stage took at least the package's sleep.
    const bSum = (f: Map<string, Family>) => v(f, 'nixery_build_duration_seconds_sum', { stage: 'building' });
    assert.ok(bSum(mid) - bSum(before) >= 3.5, `building took ${bSum(mid) - bSum(before)} s`);
    const manifests200 = (f: Map<string, Family>) => v(f, 'nixery_http_requests_total', { route: 'manifest', status: '200' });
    assert.equal(manifests200(mid) - manifests200(before), 1);

    // A warm pull is a cache hit; a blob download counts its bytes; an unknown package is a failed build and a 404.
    assert.equal((await pull(nx.url, 'slow')).status, 200);
    const layer = manifest.layers[0]!;
    const blob = await fetch(`${nx.url}/v2/slow/blobs/${layer.digest}`);
    assert.equal(blob.status, 200);
    assert.equal((await blob.arrayBuffer()).byteLength, layer.size);
    assert.equal((await pull(nx.url, 'no-such-package-obs')).status, 404);
    const end = await scrape(nx.url);
    assert.equal(v(end, 'nixery_manifest_cache_hits_total') - v(mid, 'nixery_manifest_cache_hits_total'), 1);
    assert.equal(v(end, 'nixery_blob_bytes_served_total') - v(mid, 'nixery_blob_bytes_served_total'), layer.size);
    assert.equal(v(end, 'nixery_builds_failed_total', { reason: 'unknown_packages' }) - v(mid, 'nixery_builds_failed_total', { reason: 'unknown_packages' }), 1);
    assert.equal(v(end, 'nixery_http_requests_total', { route: 'manifest', status: '404' }) - v(mid, 'nixery_http_requests_total', { route: 'manifest', status: '404' }), 1);
    const latency = (f: Map<string, Family>) => v(f, 'nixery_http_request_duration_seconds_count', { route: 'manifest' });
    assert.equal(latency(end) - latency(before), 3);
  });

  it('logs: request and job child loggers carry image, tag, buildKey and jobId; LOG_FORMAT=pretty is readable text', async () => {
    const lines = await readLogLines(nx.logFile);
    const started = lines.find((l) => l.msg === 'build started' && l.image === 'slow');
    assert.ok(started, 'no "build started" line for slow');
    const served = lines.find((l) => l.msg === 'manifest' && l.image === 'slow');
    assert.ok(served, 'no "manifest" line for slow');
    for (const l of [started, served]) {
      assert.equal(l.tag, 'latest');
      assert.match(String(l.buildKey), /^[0-9a-f]{64}$/);
      assert.equal(l.jobId, l.buildKey);
    }
    assert.equal(served.buildKey, started.buildKey);
    assert.ok(typeof served.reqId === 'string', 'the manifest line comes from the request logger');
    const pretty = await readFile(worker!.logFile, 'utf8');
    assert.match(pretty, /INFO.*worker metrics on \/metrics/);
    assert.ok(!pretty.split('\n').some((l) => l.startsWith('{"level"')), 'pretty format printed JSON');
  });

  it('/readyz fails while Redis is down and recovers after; /healthz and /metrics keep answering', async () => {
    assert.equal((await fetch(`${nx.url}/readyz`)).status, 200);
    const warm = await pull(nx.url, 'hello');
    assert.equal(warm.status, 200);
    await redis!.stop();
    redis = undefined;
    const t0 = Date.now();
    const down = await fetch(`${nx.url}/readyz`);
    assert.equal(down.status, 503);
    assert.deepEqual(await down.json(), { redis: false, storage: true, nix: { ok: true } });
    assert.ok(Date.now() - t0 < 5000, 'readyz took too long while Redis was down');
    assert.equal((await fetch(`${workerUrl}/readyz`)).status, 503);
    assert.equal((await fetch(`${nx.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${workerUrl}/healthz`)).status, 200);
    const t1 = Date.now();
    await scrape(nx.url); // still parses; queue gauges are just left out
    assert.ok(Date.now() - t1 < 6000, '/metrics hung while Redis was down');
    const page = await fetch(`${nx.url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /cannot be read right now/);
    // Pulls: a warm image is still served from the gateway's memory; a cold one fails fast with 503.
    const again = await pull(nx.url, 'hello');
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('docker-content-digest'), warm.headers.get('docker-content-digest'));
    const t2 = Date.now();
    const cold = await fetch(`${nx.url}/v2/hello/jq/nano/manifests/latest`, { headers: { Accept: MANIFEST_ACCEPT }, signal: AbortSignal.timeout(10_000) });
    assert.equal(cold.status, 503);
    assert.equal(((await cold.json()) as { errors: { code: string }[] }).errors[0]?.code, 'UNAVAILABLE');
    assert.ok(Date.now() - t2 < 3000, 'a cold pull hung while Redis was down');

    redis = await startRedis();
    assert.ok(await waitFor(async () => (await fetch(`${nx.url}/readyz`)).status === 200, { timeoutMs: 30_000, intervalMs: 250 }), 'gateway readyz did not recover');
    assert.ok(await waitFor(async () => (await fetch(`${workerUrl}/readyz`)).status === 200, { timeoutMs: 30_000, intervalMs: 250 }), 'worker readyz did not recover');
  });

  it('the queue dashboard is off without NIXERY_ADMIN_PASSWORD', async () => {
    assert.equal((await fetch(`${nx.url}/admin/queues`)).status, 404);
    assert.equal((await fetch(`${nx.url}/admin/queues/api/queues`)).status, 404);
  });
});

describe('queue dashboard with NIXERY_ADMIN_PASSWORD', () => {
  let nx: NixeryInstance;
  before(async () => {
    nx = await startNixery({ NIXERY_ADMIN_PASSWORD: 'correct horse', NIXERY_ADMIN_USER: 'ops' });
  });
  after(async () => {
    await nx?.stop();
  });

  it('answers 401 without or with wrong credentials and serves bull-board with them', async () => {
    const auth = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    const none = await fetch(`${nx.url}/admin/queues`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    assert.equal((await fetch(`${nx.url}/admin/queues/api/queues`)).status, 401);
    assert.equal((await fetch(`${nx.url}/admin/queues`, { headers: auth('ops', 'wrong') })).status, 401);
    assert.equal((await fetch(`${nx.url}/admin/queues`, { headers: auth('admin', 'correct horse') })).status, 401);
    const ok = await fetch(`${nx.url}/admin/queues`, { headers: auth('ops', 'correct horse') });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /<title>Nixery queues<\/title>/);
    const api = await fetch(`${nx.url}/admin/queues/api/queues`, { headers: auth('ops', 'correct horse') });
    assert.equal(api.status, 200);
    const names = ((await api.json()) as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    assert.deepEqual(names, ['build-aarch64-linux', 'build-x86_64-linux', 'popcount']);
  });
});
