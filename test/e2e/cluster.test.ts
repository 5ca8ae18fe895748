/**
 * The cluster, for real, on loopback: redis-server, the GCS emulator, two
 * gateways (apps/gateway) behind nginx, two workers (apps/worker), each its
 * own process configured only through the environment. Shows one build for
 * 30 concurrent pulls, work spread over both workers with layers shared
 * through storage, a worker SIGKILLed mid-build (its job finishes elsewhere,
 * nothing partial is ever visible under a digest), a worker SIGTERMed
 * mid-build (it hands the job back), a gateway killed behind the load
 * balancer, skopeo and a Docker engine pulling with blobs redirected to the
 * emulator, per-system queues (arm64), and clean exits on SIGTERM.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { skopeoCopyToOci, umociUnpack, verifyOciLayout } from '../helpers/clients';
import { type AppProcess, type Cluster, type LogLine, sha256Hex, startCluster, watchDigestObjects } from '../helpers/cluster';
import { type Dockerd, startDockerd } from '../helpers/dockerd';
import { MANIFEST_ACCEPT, metric } from '../helpers/nixery';
import { makeScratchDir, processesMentioning, removeScratchDir, sleep, waitFor } from '../helpers/proc';

type ManifestAnswer = { status: number; digest: string | null; body: string };

/** GET or HEAD a manifest through `base`. */
async function manifest(base: string, name: string, method: 'GET' | 'HEAD' = 'GET', tag = 'latest'): Promise<ManifestAnswer> {
  const res = await fetch(`${base}/v2/${name}/manifests/${tag}`, { method, headers: { Accept: MANIFEST_ACCEPT } });
  return { status: res.status, digest: res.headers.get('docker-content-digest'), body: method === 'GET' ? await res.text() : '' };
}

/** Layer digests of a manifest body. */
function layerDigests(body: string): string[] {
  return (JSON.parse(body) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
}

/** Log lines of `app` about builds of image `name` with message `msg`. */
async function buildLines(app: AppProcess, name: string, msg: string): Promise<LogLine[]> {
  return (await app.logLines()).filter((l) => l.msg === msg && l.image === name);
}

/** Sum of one counter over the gateways' own /metrics (gateways that are down count 0). */
async function sumOverGateways(gws: AppProcess[], name: string, labels: Record<string, string>): Promise<number> {
  const values = await Promise.all(gws.map((g) => metric(g.url!, name, labels).catch(() => 0)));
  return values.reduce((a, b) => a + b, 0);
}

/** Build keys of every 'build started' line for `name` the workers have logged so far. */
async function startedKeys(workers: AppProcess[], name: string): Promise<Set<string>> {
  const lines = (await Promise.all(workers.map((w) => buildLines(w, name, 'build started')))).flat();
  return new Set(lines.map((l) => String(l.buildKey)));
}

/**
 * Waits until some worker logs 'build started' for `name` with a build key
 * not in `before` (a new build, whichever worker logged earlier lines),
 * returns that worker and the line.
 */
async function waitForBuildStart(workers: AppProcess[], name: string, before = new Set<string>()): Promise<{ worker: AppProcess; line: LogLine }> {
  let found: { worker: AppProcess; line: LogLine } | undefined;
  const ok = await waitFor(
    async () => {
      for (const w of workers) {
        const line = (await buildLines(w, name, 'build started')).find((l) => !before.has(String(l.buildKey)));
        if (line) {
          found = { worker: w, line };
          return true;
        }
      }
      return false;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  assert.ok(ok && found, `no worker started building ${name}`);
  return found;
}

describe('cluster: 2 gateways behind nginx, 2 workers, Redis, GCS emulator', () => {
  let c: Cluster & { pkgsDir: string };
  let dockerd: Dockerd | undefined;
  let scratch: string;
  const knownLayers = new Set<string>();

  before(async () => {
    scratch = await makeScratchDir('nixery-cluster-e2e-');
    const [cluster, d] = await Promise.all([
      startCluster({
        gateways: 2,
        workers: 2,
        env: {
          NIXERY_BUILD_WAIT: '120',
          WORKER_CONCURRENCY: '1',
          // Quick failure detection for the test: a dead worker's job is retaken within ~6 s.
          NIXERY_JOB_LOCK_TTL: '4',
          NIXERY_STALLED_INTERVAL: '2',
          NIXERY_LAYER_LOCK_TTL: '5',
          NIXERY_WORKER_GRACE: '2',
        },
      }),
      startDockerd(),
    ]);
    c = cluster;
    dockerd = d;
  });

  after(async () => {
    await dockerd?.stop();
    await c?.stop();
    if (scratch) await removeScratchDir(scratch);
  });

  it('30 concurrent pulls of a new image through the load balancer: one build in the cluster, one digest, both gateways serve', async () => {
    const started = await c.clusterStat('builds_started');
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => manifest(c.lb.url, 'jq/hello', i % 3 === 0 ? 'HEAD' : 'GET')),
    );
    assert.deepEqual(answers.map((a) => a.status), Array(30).fill(200));
    const digests = new Set(answers.map((a) => a.digest));
    assert.equal(digests.size, 1, `digests: ${[...digests].join(', ')}`);
    assert.equal((await c.clusterStat('builds_started')) - started, 1, 'exactly one Nix build in the whole cluster');
    // Every gateway reports the same cluster-wide counter.
    for (const g of c.gateways) {
      assert.equal(await metric(g.url!, 'nixery_cluster_total', { counter: 'builds_started' }), await c.clusterStat('builds_started'));
    }
    const perGateway = await Promise.all(c.gateways.map((g) => metric(g.url!, 'nixery_http_requests_total', { route: 'manifest' })));
    assert.ok(perGateway.every((n) => n > 0), `manifest requests per gateway: ${perGateway.join(', ')}`);
    for (const d of layerDigests(answers.find((a) => a.body)!.body)) knownLayers.add(d);
  });

  it('different images spread over both workers; images sharing packages share layer blobs, each packed once', async () => {
    const images = ['curl', 'git', 'htop', 'nano'];
    const packedBefore = await c.clusterStat('layers_packed');
    const answers = await Promise.all(images.map((n) => manifest(c.lb.url, n)));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200], answers.map((a) => a.body.slice(0, 300)).join('\n'));
    const byWorker = await Promise.all(
      c.workers.map(async (w) => (await Promise.all(images.map((n) => buildLines(w, n, 'build finished')))).flat().length),
    );
    assert.ok(byWorker.every((n) => n > 0), `builds per worker: ${byWorker.join(', ')}`);
    assert.equal(byWorker.reduce((a, b) => a + b, 0), images.length, 'one build per image');
    // The same from each worker's own /metrics.
    const succeeded = await Promise.all(c.workers.map((w) => metric(w.url, 'nixery_builds_succeeded_total')));
    assert.ok(succeeded.every((n) => n > 0), `builds per worker (metrics): ${succeeded.join(', ')}`);

    const layers = answers.map((a) => layerDigests(a.body));
    const curl = new Set(layers[0]);
    const shared = layers[1]!.filter((d) => curl.has(d));
    assert.ok(shared.length >= 1, 'curl and git share layers (glibc, openssl, zlib, ...)');
    const fresh = new Set(layers.flat().filter((d) => !knownLayers.has(d)));
    assert.equal((await c.clusterStat('layers_packed')) - packedBefore, fresh.size, 'every new layer packed exactly once in the cluster');
    for (const d of layers.flat()) knownLayers.add(d);
  });

  it('a worker SIGKILLed mid-build: the other worker takes the job, the client gets a correct image, nothing partial is visible', async (t) => {
    const watcher = watchDigestObjects(c);
    t.after(() => watcher.stop().catch(() => undefined));
    await writeFile(path.join(c.pkgsDir, 'slow-seconds'), `8 kill-${Date.now()}\n`);
    await sleep(1200); // the gateways re-fingerprint a path source at most once a second
    const pull = manifest(c.lb.url, 'slow');
    const { worker: victim, line } = await waitForBuildStart(c.workers, 'slow');
    await sleep(2000); // well inside the 8 s Nix build
    await victim.kill();
    c.workers.splice(c.workers.indexOf(victim), 1);
    const replacement = c.startWorker(); // scale back to two, for the next test
    const answer = await pull;
    assert.equal(answer.status, 200, answer.body);
    // Another worker (the survivor, or the replacement if it was up first) finished the job.
    const others = new Set([...c.workers, await replacement]);
    const finished = (await Promise.all([...others].map((w) => w.logLines())))
      .flat()
      .filter((l) => l.msg === 'build finished' && l.buildKey === line.buildKey);
    assert.equal(finished.length, 1, 'another worker finished the job');

    // The image is whole: every blob, fetched through the load balancer (307 to the emulator), hashes to its digest.
    const m = JSON.parse(answer.body) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
      const res = await fetch(`${c.lb.url}/v2/slow/blobs/${d}`);
      assert.equal(res.status, 200);
      assert.equal(`sha256:${sha256Hex(Buffer.from(await res.arrayBuffer()))}`, d);
    }
    const { bad, checked } = await watcher.stop();
    assert.deepEqual(bad, []);
    assert.ok(checked >= knownLayers.size, `checked ${checked} objects`);
  });

  it('a worker SIGTERMed mid-build hands the job back; another worker finishes it; it exits 0', async () => {
    const failedBefore = await c.clusterStat('builds_failed');
    const nonce = `term-${Date.now()}`;
    await writeFile(path.join(c.pkgsDir, 'slow-seconds'), `8 ${nonce}\n`);
    await sleep(1200);
    const before = await startedKeys(c.workers, 'slow');
    const pull = manifest(c.lb.url, 'slow');
    const { worker, line } = await waitForBuildStart(c.workers, 'slow', before);
    // Not a guess at timing: the signal goes when this build's Nix builder (its script carries the
    // nonce) is running, so the 2 s grace always ends inside the 8 s build and the job is handed back.
    assert.ok(await waitFor(async () => processesMentioning(nonce).length > 0, { timeoutMs: 60_000, intervalMs: 100 }), 'the slow builder started');
    const t0 = Date.now();
    const exit = await worker.terminate();
    assert.equal(exit.code, 0, 'clean exit');
    assert.ok(Date.now() - t0 < 15_000, `stopped in ${Date.now() - t0} ms`);
    c.workers.splice(c.workers.indexOf(worker), 1);
    assert.ok((await worker.logLines()).some((l) => l.msg === 'build handed back to the queue'));
    const answer = await pull;
    assert.deepEqual(processesMentioning(nonce), [], 'no builder is left running');
    assert.equal(answer.status, 200, answer.body);
    const finishedBy = await Promise.all(c.workers.map(async (w) => (await w.logLines()).some((l) => l.msg === 'build finished' && l.buildKey === line.buildKey)));
    assert.ok(finishedBy.includes(true), 'another worker finished the handed-back build');
    assert.equal(await c.clusterStat('builds_failed'), failedBefore, 'a hand-back is not a failure');
  });

  it('skopeo and a Docker engine pull through the load balancer; blobs arrive by 307 redirect from the emulator', async () => {
    const gws = c.gateways;
    const redirectsBefore = await sumOverGateways(gws, 'nixery_http_requests_total', { route: 'blob', status: '307' });
    const oci = path.join(scratch, 'oci');
    await skopeoCopyToOci(`${c.lb.host}/shell/hello:latest`, oci);
    const report = await verifyOciLayout(oci);
    assert.deepEqual(report.problems, []);
    const { rootfs } = await umociUnpack(oci, 'latest', path.join(scratch, 'bundle'));
    assert.ok(rootfs);

    const pull = await dockerd!.docker(['pull', `${c.lb.host}/shell/hello`], { timeoutMs: 300_000 });
    assert.equal(pull.code, 0, pull.stderr);
    const ran = await dockerd!.docker(['run', '--rm', '--network', 'none', `${c.lb.host}/shell/hello`, 'hello']);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout.trim(), 'Hello, world!');

    // The redirect itself: a V4 signed URL (the gateways have a service-account key) on the emulator.
    const m = JSON.parse((await manifest(c.lb.url, 'shell/hello')).body) as { layers: { digest: string }[] };
    const res = await fetch(`${c.lb.url}/v2/shell/hello/blobs/${m.layers[0]!.digest}`, { redirect: 'manual' });
    assert.equal(res.status, 307);
    const location = new URL(res.headers.get('location')!);
    assert.equal(location.origin, c.emulator.host);
    assert.equal(location.pathname, `/${c.bucket}/layers/${m.layers[0]!.digest.slice('sha256:'.length)}`);
    assert.equal(location.searchParams.get('X-Goog-Algorithm'), 'GOOG4-RSA-SHA256');

    const redirects = (await sumOverGateways(gws, 'nixery_http_requests_total', { route: 'blob', status: '307' })) - redirectsBefore;
    assert.ok(redirects >= 2 * report.blobCount - 2, `blob redirects: ${redirects}`);
    assert.equal(await sumOverGateways(gws, 'nixery_http_requests_total', { route: 'blob', status: '200', method: 'GET' }), 0, 'no blob streamed by a gateway');
  });

  it('a gateway SIGKILLed: pulls through the load balancer keep succeeding', async () => {
    const [dead, alive] = c.gateways as [AppProcess, AppProcess];
    await dead.kill();
    const servedBefore = await metric(alive.url!, 'nixery_http_requests_total', { route: 'manifest' });
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => manifest(c.lb.url, i % 2 ? 'jq/hello' : 'curl', i % 3 ? 'GET' : 'HEAD')),
    );
    assert.deepEqual(answers.map((a) => a.status), Array(12).fill(200));
    const fresh = await manifest(c.lb.url, 'hello/htop');
    assert.equal(fresh.status, 200, fresh.body);
    assert.equal((await metric(alive.url!, 'nixery_http_requests_total', { route: 'manifest' })) - servedBefore, 13);
    c.gateways.splice(0, 1);
  });

  it('an arm64 image with no aarch64 worker: 503 UNAVAILABLE naming aarch64-linux, no job left; an aarch64 worker then takes the next pull', async () => {
    // A gateway outside the load balancer with a short build wait, and public (unsigned) redirects
    // under another name for the storage (GCS_PUBLIC_URL, as docker-compose uses it).
    const publicBase = c.emulator.host.replace('127.0.0.1', 'localhost');
    const quick = await c.startGateway({ NIXERY_BUILD_WAIT: '2', GCS_SIGNED_URLS: 'false', GCS_PUBLIC_URL: publicBase });
    c.gateways.push(quick);
    const hello = JSON.parse((await manifest(quick.url, 'jq/hello')).body) as { layers: { digest: string }[] };
    const digest = hello.layers[0]!.digest;
    const redirect = await fetch(`${quick.url}/v2/jq/hello/blobs/${digest}`, { redirect: 'manual' });
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers.get('location'), `${publicBase}/${c.bucket}/layers/${digest.slice('sha256:'.length)}`);
    const blob = Buffer.from(await (await fetch(redirect.headers.get('location')!)).arrayBuffer());
    assert.equal(`sha256:${sha256Hex(blob)}`, digest);

    const t0 = Date.now();
    const res = await manifest(quick.url!, 'arm64/hello');
    assert.equal(res.status, 503);
    assert.ok(Date.now() - t0 < 10_000);
    const err = (JSON.parse(res.body) as { errors: { code: string; message: string }[] }).errors[0]!;
    assert.equal(err.code, 'UNAVAILABLE');
    assert.match(err.message, /aarch64-linux/);

    // Its job is removed once its client was answered (issue 12): nothing waits for a worker nobody runs.
    const gone = await waitFor(async () => (await metric(quick.url!, 'nixery_queue_depth', { queue: 'build-aarch64-linux' })) === 0, { timeoutMs: 10_000 });
    assert.ok(gone, 'no arm64 job left queued after its client was answered');

    const arm = await c.startWorker({ NIXERY_WORKER_SYSTEMS: 'aarch64-linux' });
    // The next pull's job reaches the new worker, which builds it for aarch64-linux through qemu (issue 13).
    const again = manifest(quick.url!, 'arm64/hello');
    const ok = await waitFor(async () => (await buildLines(arm, 'arm64/hello', 'build started')).length > 0, { timeoutMs: 60_000 });
    await again;
    assert.ok(ok, 'the aarch64 worker took the job');
    const done = await waitFor(
      async () => (await buildLines(arm, 'arm64/hello', 'build finished')).length + (await buildLines(arm, 'arm64/hello', 'build failed')).length > 0,
      { timeoutMs: 600_000 },
    );
    assert.ok(done, 'the aarch64 build ended');
    assert.deepEqual(await buildLines(arm, 'arm64/hello', 'build failed'), [], 'the aarch64 build succeeded');
    // The x86_64 workers never saw it.
    for (const w of c.workers.filter((w) => w !== arm)) assert.equal((await buildLines(w, 'arm64/hello', 'build started')).length, 0);
  });

  it('SIGTERM: gateways and workers close HTTP and Redis and exit 0', async () => {
    const apps = [...c.gateways, ...c.workers];
    const exits = await Promise.all(apps.map((a) => a.terminate()));
    assert.deepEqual(
      exits.map((e, i) => `${apps[i]!.name}:${e.code}`),
      apps.map((a) => `${a.name}:0`),
    );
    for (const a of apps) {
      const lines = await a.logLines();
      assert.ok(lines.some((l) => l.msg === 'shutting down'), `${a.name} logged its shutdown`);
      assert.ok(!lines.some((l) => l.level === 50 && /redis|connection/i.test(JSON.stringify(l))), `${a.name}: no Redis errors`);
    }
  });
});
