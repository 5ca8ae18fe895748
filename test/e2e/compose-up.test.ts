/**
 * `docker-compose up` for real: docker-compose.yml with deploy/compose.local.yml
 * (every image built here: scripts/base-image.sh makes the base, no registry
 * is reachable) and deploy/compose.host-network.yml (containers use the
 * host's loopback: this machine must not carry traffic over Docker's bridge
 * networks), started by Debian's docker-compose 1.29 on a private Docker
 * engine (test/helpers/compose.ts, whose data root caches the images).
 *
 * Redis, the GCS emulator, two gateways behind nginx, two workers and the
 * popularity job; the engine pulls shell/hello through the load balancer
 * (blobs by 307 redirect to the emulator) and runs it; `--scale worker=3`
 * adds a worker that takes a build; a worker container killed mid-build
 * (the package set's `slow` package) does not stop the image from arriving;
 * `docker-compose down` leaves no container, network or volume.
 *
 * A test-only override (written to the scratch directory) mounts a copy of
 * the bundled package set at /pkgs, so the test can change `slow-seconds`,
 * and shortens the job lock so a dead worker's job moves within seconds.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ComposeEngine, startComposeEngine } from '../helpers/compose';
import { MANIFEST_ACCEPT, REPO, metric } from '../helpers/nixery';
import { type RunResult, freePort, makeScratchDir, removeScratchDir, sleep, waitFor } from '../helpers/proc';

const FILES = ['docker-compose.yml', 'deploy/compose.local.yml', 'deploy/compose.host-network.yml'];
const SERVICES = { redis: 1, gcs: 1, gateway: 1, 'gateway-2': 1, lb: 1, worker: 2, 'popcount-job': 1 } as const;

type LogLine = { msg?: string; [k: string]: unknown };
type Container = { id: string; name: string; service: string; number: number; running: boolean; networkMode: string };

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

function ok(r: RunResult, what: string): RunResult {
  assert.equal(r.code, 0, `${what} failed (${r.timedOut ? 'timed out' : `exit ${r.code}`}):\n${r.stderr.slice(-6000)}\n${r.stdout.slice(-2000)}`);
  return r;
}

describe('docker-compose up: the cluster from local images on host networking', () => {
  let engine: ComposeEngine;
  let scratch: string;
  let pkgsDir: string;
  let override: string;
  let lb: string;
  let lbHost: string;
  let gcsUrl: string;
  let gatewayUrls: string[];
  let env: Record<string, string>;
  let downDone = false;
  const project = `nixery${process.pid}`;

  const compose = (args: string[], timeoutMs = 300_000) =>
    engine.exec(
      'docker-compose',
      ['-p', project, ...FILES.flatMap((f) => ['-f', path.join(REPO, f)]), '-f', override, '--project-directory', REPO, ...args],
      { cwd: REPO, env, timeoutMs },
    );

  /** The project's containers, as Docker sees them. */
  const containers = async (all = true): Promise<Container[]> => {
    const ids = ok(await engine.docker(['ps', ...(all ? ['-a'] : []), '-q', '--filter', `label=com.docker.compose.project=${project}`]), 'docker ps')
      .stdout.split('\n')
      .filter(Boolean);
    if (!ids.length) return [];
    const info = JSON.parse(ok(await engine.docker(['inspect', ...ids]), 'docker inspect').stdout) as {
      Id: string;
      Name: string;
      State: { Running: boolean };
      Config: { Labels: Record<string, string> };
      HostConfig: { NetworkMode: string };
    }[];
    return info.map((c) => ({
      id: c.Id,
      name: c.Name.replace(/^\//, ''),
      service: c.Config.Labels['com.docker.compose.service']!,
      number: Number(c.Config.Labels['com.docker.compose.container-number']),
      running: c.State.Running,
      networkMode: c.HostConfig.NetworkMode,
    }));
  };
  const service = async (name: string) => (await containers()).filter((c) => c.service === name).sort((a, b) => a.number - b.number);

  /** JSON log lines of one container (pino writes them to stdout). */
  const logLines = async (c: Container): Promise<LogLine[]> => {
    const r = await engine.docker(['logs', c.id], { timeoutMs: 60_000 });
    const out: LogLine[] = [];
    for (const line of `${r.stdout}\n${r.stderr}`.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as LogLine);
      } catch {
        /* partial line */
      }
    }
    return out;
  };
  const linesOf = async (c: Container, msg: string, image?: string) =>
    (await logLines(c)).filter((l) => l.msg === msg && (image === undefined || l.image === image));

  const manifest = async (name: string, method: 'GET' | 'HEAD' = 'GET') => {
    const res = await fetch(`${lb}/v2/${name}/manifests/latest`, { method, headers: { Accept: MANIFEST_ACCEPT } });
    return { status: res.status, digest: res.headers.get('docker-content-digest'), body: method === 'GET' ? await res.text() : '' };
  };

  /** Every blob of an image, fetched through the load balancer (redirects followed), hashes to its digest. */
  const checkBlobs = async (name: string, body: string) => {
    const m = JSON.parse(body) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
      const res = await fetch(`${lb}/v2/${name}/blobs/${d}`);
      assert.equal(res.status, 200, `blob ${d}`);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), d);
    }
    return m;
  };

  before(async () => {
    scratch = await makeScratchDir('nixery-compose-up-');
    await chmod(scratch, 0o755);
    engine = await startComposeEngine();

    let t = Date.now();
    ok(await engine.exec('bash', [path.join(REPO, 'scripts/base-image.sh')], { cwd: REPO, timeoutMs: 1_200_000 }), 'scripts/base-image.sh');
    const baseSeconds = (Date.now() - t) / 1000;

    // The package set, a copy the test may change (slow-seconds), read-only in the containers.
    pkgsDir = path.join(scratch, 'pkgs');
    await cp(path.join(REPO, 'nix/pkgs'), pkgsDir, { recursive: true });
    await writeFile(path.join(pkgsDir, 'slow-seconds'), '1 start\n');
    await chmod(pkgsDir, 0o755);

    const ports = new Set<number>();
    while (ports.size < 5) ports.add(await freePort());
    const [lbPort, gw1, gw2, redisPort, gcsPort] = [...ports] as [number, number, number, number, number];
    env = {
      NIXERY_LB_PORT: String(lbPort),
      NIXERY_GATEWAY1_PORT: String(gw1),
      NIXERY_GATEWAY2_PORT: String(gw2),
      NIXERY_REDIS_PORT: String(redisPort),
      NIXERY_GCS_PORT: String(gcsPort),
      // docker-compose builds through the engine API (not whichever docker CLI is on PATH).
      COMPOSE_DOCKER_CLI_BUILD: '0',
      COMPOSE_HTTP_TIMEOUT: '600',
    };
    lb = `http://127.0.0.1:${lbPort}`;
    lbHost = `127.0.0.1:${lbPort}`;
    gcsUrl = `http://127.0.0.1:${gcsPort}`;
    gatewayUrls = [gw1, gw2].map((p) => `http://127.0.0.1:${p}`);

    const testEnv = {
      NIXERY_PKGS_PATH: '/pkgs',
      // A copied package set is not "the bundled set": no binary cache, said explicitly.
      NIXERY_NIX_OPTIONS: '--option substitute false',
      NIXERY_JOB_LOCK_TTL: '4',
      NIXERY_STALLED_INTERVAL: '2',
      NIXERY_LAYER_LOCK_TTL: '5',
      NIXERY_WORKER_GRACE: '2',
    };
    const apps = { environment: testEnv, volumes: [`${pkgsDir}:/pkgs:ro`] };
    override = path.join(scratch, 'compose.test.yml');
    await writeFile(
      override,
      JSON.stringify({ services: { gateway: apps, 'gateway-2': apps, worker: { ...apps, stop_grace_period: '20s' }, 'popcount-job': apps } }, null, 2),
    );

    t = Date.now();
    ok(await compose(['up', '-d', '--build'], 1_800_000), 'docker-compose up -d --build');
    const upSeconds = (Date.now() - t) / 1000;

    // Ready: the registry answers through nginx, both gateways are ready, both workers listen.
    assert.ok(await waitFor(() => fetch(`${lb}/v2/`).then((r) => r.ok, () => false), { timeoutMs: 120_000, intervalMs: 500 }), 'lb answers /v2/');
    for (const g of gatewayUrls) {
      assert.ok(await waitFor(() => fetch(`${g}/readyz`).then((r) => r.ok, () => false), { timeoutMs: 120_000, intervalMs: 500 }), `${g}/readyz`);
    }
    for (const w of await service('worker')) {
      assert.ok(await waitFor(async () => (await linesOf(w, 'build worker started')).length > 0, { timeoutMs: 120_000, intervalMs: 500 }), `${w.name} started`);
    }
    process.stdout.write(
      `# compose-up: engine ${engine.storageDriver}${engine.persistent ? ' (cached data root)' : ' (throw-away data root)'}, ` +
        `base image ${baseSeconds.toFixed(1)} s, up --build ${upSeconds.toFixed(1)} s, ready ${((Date.now() - t) / 1000).toFixed(1)} s\n`,
    );
  });

  after(async () => {
    if (engine && override) {
      const logs = await compose(['logs', '--no-color', '--timestamps'], 120_000).catch(() => null);
      if (logs) await writeFile(path.join(REPO, 'test-artifacts', `compose-up-${project}.log`), logs.stdout + logs.stderr).catch(() => undefined);
      if (!downDone) await compose(['down', '--volumes', '--remove-orphans', '--timeout', '5'], 300_000).catch(() => undefined);
    }
    await engine?.stop();
    if (scratch) await removeScratchDir(scratch);
  });

  it('runs redis, the GCS emulator, two gateways behind nginx, two workers and the popularity job, all on the host network', async () => {
    const cs = await containers();
    const count: Record<string, number> = {};
    for (const c of cs) {
      assert.ok(c.running, `${c.name} runs`);
      assert.equal(c.networkMode, 'host', `${c.name} uses the host network`);
      count[c.service] = (count[c.service] ?? 0) + 1;
    }
    assert.deepEqual(count, SERVICES);
    // No bridge network was made for the project (nor any other).
    const nets = ok(await engine.docker(['network', 'ls', '--format', '{{.Name}}']), 'docker network ls').stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(nets, ['host', 'none']);
  });

  it('a Docker engine pulls shell/hello through the load balancer (blobs by 307 redirect to the emulator) and runs it', async (t) => {
    // The engine holds none of its layers yet (the engine helper removes images pulled by earlier runs).
    const known = ok(await engine.docker(['images', '--format', '{{.Repository}}']), 'docker images').stdout;
    assert.doesNotMatch(known, /^127\./m, `an image pulled earlier is still there:\n${known}`);
    const t0 = Date.now();
    ok(await engine.docker(['pull', `${lbHost}/shell/hello`], { timeoutMs: 600_000 }), 'docker pull');
    t.diagnostic(`cold pull of shell/hello through the compose cluster: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const ran = ok(await engine.docker(['run', '--rm', '--network', 'none', `${lbHost}/shell/hello`, 'hello']), 'docker run');
    assert.equal(ran.stdout.trim(), 'Hello, world!');

    // The engine's blob requests were answered by 307s (nginx's access log, via docker-compose logs).
    const lbLog = ok(await compose(['logs', '--no-color', 'lb']), 'logs lb').stdout;
    const blobLines = lbLog.split('\n').filter((l) => /"GET \/v2\/shell\/hello\/blobs\/sha256:[0-9a-f]{64} HTTP\/1\.1" 307 /.test(l) && /docker\//.test(l));
    assert.ok(blobLines.length >= 2, `docker's blob GETs answered 307 by the gateways:\n${lbLog.slice(-3000)}`);

    // One redirect looked at: a public URL on the emulator, serving the blob.
    const m = await manifest('shell/hello');
    assert.equal(m.status, 200, m.body);
    const layer = (JSON.parse(m.body) as { layers: { digest: string }[] }).layers[0]!.digest;
    const res = await fetch(`${lb}/v2/shell/hello/blobs/${layer}`, { redirect: 'manual' });
    assert.equal(res.status, 307);
    const location = res.headers.get('location')!;
    assert.equal(location, `${gcsUrl}/nixery/layers/${layer.slice('sha256:'.length)}`);
    assert.equal(sha256(Buffer.from(await (await fetch(location)).arrayBuffer())), layer);
    await checkBlobs('shell/hello', m.body);

    // Both gateways served through nginx.
    for (let i = 0; i < 4; i++) assert.equal((await manifest('shell/hello', 'HEAD')).status, 200);
    const perGateway = await Promise.all(gatewayUrls.map((g) => metric(g, 'nixery_http_requests_total', { route: 'manifest' })));
    assert.ok(perGateway.every((n) => n > 0), `manifest requests per gateway: ${perGateway.join(', ')}`);
  });

  it('docker-compose up -d --scale worker=3 adds a worker that takes a build', async (t) => {
    ok(await compose(['up', '-d', '--scale', 'worker=3']), 'docker-compose up -d --scale worker=3');
    const workers = await service('worker');
    assert.equal(workers.length, 3);
    assert.ok(workers.every((w) => w.running));
    const added = workers.find((w) => w.number === 3)!;
    assert.ok(await waitFor(async () => (await linesOf(added, 'build worker started')).length > 0, { timeoutMs: 120_000, intervalMs: 500 }), 'the new worker started');
    // The first two still run untouched (not recreated): the same containers as before.
    assert.deepEqual(workers.filter((w) => w.number !== 3).map((w) => w.number), [1, 2]);

    // With the first two paused, only the new one can take the next build.
    const old = workers.filter((w) => w !== added);
    ok(await engine.docker(['pause', ...old.map((w) => w.id)]), 'docker pause');
    try {
      const answer = await manifest('jq');
      assert.equal(answer.status, 200, answer.body);
      await checkBlobs('jq', answer.body);
    } finally {
      ok(await engine.docker(['unpause', ...old.map((w) => w.id)]), 'docker unpause');
    }
    const finished = await linesOf(added, 'build finished', 'jq');
    assert.equal(finished.length, 1, 'the added worker built jq');
    // Its own /metrics (any free port, as its log says) counts the build.
    const port = (await linesOf(added, 'worker metrics on /metrics, /healthz, /readyz'))[0]?.port;
    assert.ok(typeof port === 'number' && port > 0, 'the new worker logged its metrics port');
    const built = await metric(`http://127.0.0.1:${port}`, 'nixery_builds_succeeded_total');
    assert.ok(built >= 1, `nixery_builds_succeeded_total of the new worker: ${built}`);
    t.diagnostic(`${added.name} built jq in ${String(finished[0]!.durationMs)} ms`);
  });

  it('a worker container killed mid-build: another worker takes the job and the image arrives whole', async () => {
    await writeFile(path.join(pkgsDir, 'slow-seconds'), `8 kill-${Date.now()}\n`);
    await sleep(1500); // gateways re-fingerprint a path source at most once a second
    const workers = await service('worker');
    const seen = new Map<string, number>();
    for (const w of workers) seen.set(w.id, (await linesOf(w, 'build started', 'slow')).length);
    const pull = manifest('slow');
    let victim: Container | undefined;
    let buildKey: unknown;
    assert.ok(
      await waitFor(
        async () => {
          for (const w of workers) {
            const lines = await linesOf(w, 'build started', 'slow');
            if (lines.length > seen.get(w.id)!) {
              victim = w;
              buildKey = lines.at(-1)!.buildKey;
              return true;
            }
          }
          return false;
        },
        { timeoutMs: 120_000, intervalMs: 250 },
      ),
      'a worker started building slow',
    );
    await sleep(2000); // inside the 8 s Nix build
    ok(await engine.docker(['kill', victim!.id]), 'docker kill');

    const answer = await pull;
    assert.equal(answer.status, 200, answer.body);
    await checkBlobs('slow', answer.body);
    const others = (await service('worker')).filter((w) => w.id !== victim!.id);
    const finishedBy = [];
    for (const w of others) {
      if ((await logLines(w)).some((l) => l.msg === 'build finished' && l.buildKey === buildKey)) finishedBy.push(w.name);
    }
    assert.equal(finishedBy.length, 1, `another worker finished the killed worker's job (${finishedBy.join(', ')})`);
  });

  it('docker-compose down leaves no containers, networks or volumes', async () => {
    ok(await compose(['down', '--volumes', '--remove-orphans'], 300_000), 'docker-compose down');
    downDone = true;
    assert.deepEqual(await containers(), []);
    const left = async (kind: 'network' | 'volume') =>
      ok(await engine.docker([kind, 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`]), `${kind} ls`).stdout.trim();
    assert.equal(await left('network'), '');
    assert.equal(await left('volume'), '');
    const nets = ok(await engine.docker(['network', 'ls', '--format', '{{.Name}}']), 'docker network ls').stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(nets, ['host', 'none']);
    // Nothing listens on the cluster's ports any more.
    assert.equal(await fetch(`${lb}/v2/`).then(() => 'answered', () => 'refused'), 'refused');
  });
});
