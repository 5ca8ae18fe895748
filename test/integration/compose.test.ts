/**
 * The compose files, checked statically: validated by docker-compose itself
 * (Debian's 1.29, offline), then their normalised form is checked for the
 * cluster's shape, in the three ways they are combined:
 *
 * - default: docker-compose.yml + docker-compose.override.yml (what a plain
 *   `docker-compose up` reads): public images, bridge network, published ports;
 * - local: + deploy/compose.local.yml: every image built from deploy/Dockerfile
 *   on the local base (scripts/base-image.sh), nothing to pull;
 * - host: docker-compose.yml + deploy/compose.local.yml +
 *   deploy/compose.host-network.yml: host networking, every service on its own
 *   127.0.0.1 port (what test/e2e/compose-up.test.ts starts for real).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { REPO } from '../helpers/nixery';
import { run } from '../helpers/proc';

type Service = {
  image?: string;
  build?: { context: string; dockerfile: string; target?: string; network?: string; args?: Record<string, string> };
  command?: string[] | string;
  environment?: Record<string, string>;
  ports?: unknown[];
  container_name?: string;
  volumes?: unknown[];
  scale?: number;
  depends_on?: Record<string, unknown>;
  network_mode?: string;
  healthcheck?: { test?: string[] };
};
type ComposeFile = { services: Record<string, Service>; volumes?: Record<string, unknown>; networks?: Record<string, unknown> };

const DEFAULT = ['docker-compose.yml', 'docker-compose.override.yml'];
const LOCAL = [...DEFAULT, 'deploy/compose.local.yml'];
const HOST = ['docker-compose.yml', 'deploy/compose.local.yml', 'deploy/compose.host-network.yml'];
const DOCKERFILE = readFileSync(path.join(REPO, 'deploy/Dockerfile'), 'utf8');
const APPS = ['gateway', 'worker', 'popcount-job'];

const fileArgs = (files: string[]) => files.flatMap((f) => ['-f', path.join(REPO, f)]);

/** `docker-compose config` (normalised, interpolated), parsed with the PyYAML that docker-compose itself runs on. */
async function normalised(files: string[], env: Record<string, string> = {}): Promise<ComposeFile> {
  const cfg = await run('docker-compose', [...fileArgs(files), 'config'], { cwd: REPO, timeoutMs: 60_000, env });
  assert.equal(cfg.code, 0, cfg.stderr);
  const json = await run('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    input: cfg.stdout,
  });
  assert.equal(json.code, 0, json.stderr);
  return JSON.parse(json.stdout) as ComposeFile;
}

/** Dockerfile targets (`FROM x AS target`). */
function targets(): Set<string> {
  return new Set([...DOCKERFILE.matchAll(/^FROM \S+ AS (\S+)$/gm)].map((m) => m[1]!));
}

describe('compose files', () => {
  for (const [name, files] of [['default', DEFAULT], ['local', LOCAL], ['host', HOST]] as const) {
    it(`docker-compose config -q accepts the ${name} combination (${files.join(' + ')})`, async () => {
      const r = await run('docker-compose', [...fileArgs(files), 'config', '-q'], { cwd: REPO, timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
    });
  }

  it('default: redis with persistence, fake-gcs-server, gateways behind nginx, scalable workers and the popularity job', async () => {
    const { services, volumes } = await normalised(DEFAULT);
    for (const s of ['redis', 'gcs', 'gateway', 'lb', 'worker', 'popcount-job']) assert.ok(services[s], `service ${s}`);

    const redis = services.redis!;
    assert.match(redis.image ?? '', /^redis:/);
    assert.match(JSON.stringify(redis.command), /--appendonly","yes/);
    assert.ok(redis.volumes?.length, 'redis data on a volume');
    assert.ok(volumes && 'redis-data' in volumes);

    assert.match(services.gcs!.image ?? '', /^fsouza\/fake-gcs-server:/);

    // Apps are built from deploy/Dockerfile, one target each, on the public node image by default.
    assert.match(DOCKERFILE, /^ARG BASE_IMAGE=node:20-bookworm-slim$/m);
    assert.ok(DOCKERFILE.indexOf('ARG BASE_IMAGE') < DOCKERFILE.indexOf('FROM '), 'BASE_IMAGE is declared before the first FROM');
    assert.match(DOCKERFILE, /^FROM \$\{BASE_IMAGE\} AS base$/m);
    for (const svc of APPS) {
      const b = services[svc]!.build!;
      assert.equal(b.dockerfile, 'deploy/Dockerfile');
      assert.equal(b.target, svc);
      assert.ok(targets().has(svc), `deploy/Dockerfile has target ${svc}`);
      assert.equal(b.args?.BASE_IMAGE, undefined, 'the default build uses the Dockerfile default base');
    }

    // Gateways, workers and the job find Redis and the bucket through the environment.
    for (const svc of APPS) {
      const env = services[svc]!.environment!;
      assert.equal(env.REDIS_URL, 'redis://redis:6379', `${svc} REDIS_URL`);
      assert.equal(env.NIXERY_STORAGE_BACKEND, 'gcs', `${svc} storage`);
      assert.equal(env.GCS_BUCKET, 'nixery');
      assert.equal(env.STORAGE_EMULATOR_HOST, 'http://gcs:4443');
    }
    // The bucket exists: fake-gcs-server makes one per directory of its -data folder.
    assert.ok(existsSync(path.join(REPO, 'deploy/fake-gcs', services.gateway!.environment!.GCS_BUCKET!)));
    // Redirects point where a client on the host reaches the emulator (published by docker-compose.override.yml).
    assert.equal(services.gateway!.environment!.GCS_PUBLIC_URL, 'http://localhost:4443');
    assert.ok(JSON.stringify(services.gcs!.ports).includes('4443'));

    // `--scale worker=3` and more gateways: no fixed names, no host ports.
    for (const svc of ['worker', 'gateway']) {
      assert.equal(services[svc]!.container_name, undefined, `${svc} has no container_name`);
      assert.equal(services[svc]!.ports, undefined, `${svc} publishes no host ports`);
      assert.ok((services[svc]!.scale ?? 1) >= 2, `${svc} runs replicas`);
    }

    // The load balancer publishes the registry and proxies to the gateway service.
    const lb = services.lb!;
    assert.match(lb.image ?? '', /^nginx:/);
    assert.ok(JSON.stringify(lb.ports).includes('8080'));
    const nginx = readFileSync(path.join(REPO, 'deploy/nginx/nginx.conf'), 'utf8');
    assert.match(nginx, /server gateway:8080 .*max_fails=/);
    assert.match(nginx, /include \/etc\/nginx\/nixery-proxy\.conf;/);
    assert.ok(JSON.stringify(lb.volumes).includes('nixery-proxy.conf'));
  });

  it('docker-compose.yml alone publishes no ports (host networking forbids them; the override file adds them)', async () => {
    const { services } = await normalised(['docker-compose.yml']);
    for (const [name, s] of Object.entries(services)) assert.equal(s.ports, undefined, `${name} publishes no ports`);
  });

  it('local: every image is built from deploy/Dockerfile on the local base, none is pulled', async () => {
    const { services } = await normalised(LOCAL);
    const built = new Set<string>();
    for (const [name, s] of Object.entries(services)) {
      assert.ok(s.build, `${name} is built`);
      assert.equal(s.build.dockerfile, 'deploy/Dockerfile');
      assert.ok(targets().has(s.build.target!), `${name}: deploy/Dockerfile has target ${s.build.target}`);
      assert.equal(s.build.args?.BASE_IMAGE, 'nixery-ts/base:bookworm', `${name} builds on the local base`);
      assert.equal(s.build.network, 'host', `${name}'s build reaches the package mirrors`);
      assert.match(s.image ?? '', /^nixery-ts\//, `${name} gets a local image name`);
      built.add(s.image!);
    }
    assert.equal(built.size, Object.keys(services).length, 'one image per service');
    assert.equal(services.gcs!.build!.target, 'gcs-emulator');
    assert.equal(services.redis!.build!.target, 'redis');
    assert.equal(services.lb!.build!.target, 'lb');
    // Debian's nginx (1.22) has no `resolve` on upstream servers: the lb gets a config without it.
    assert.ok(JSON.stringify(services.lb!.volumes).includes('nginx.local.conf:/etc/nginx/nginx.conf'));
    const localConf = readFileSync(path.join(REPO, 'deploy/nginx/nginx.local.conf'), 'utf8');
    assert.doesNotMatch(localConf.replace(/#.*$/gm, ''), /\bresolve\b/);
    assert.match(localConf, /include \/etc\/nginx\/nixery-proxy\.conf;/);
    // The emulator is the firebase-tools one the lockfile pins, reused from the deps stage.
    assert.match(DOCKERFILE, /^FROM deps AS gcs-emulator$/m);
    const lock = JSON.parse(readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> };
    assert.ok(lock.packages['node_modules/firebase-tools']?.version, 'firebase-tools is in package-lock.json');
    assert.ok(existsSync(path.join(REPO, 'deploy/gcs-emulator/launcher.js')));
    // Redis keeps its persistence.
    assert.match(JSON.stringify(services.redis!.command), /--appendonly","yes/);
  });

  it('host: every service on the host network, each on its own 127.0.0.1 port, nginx in front of both gateways', async () => {
    const ports = { NIXERY_LB_PORT: '18080', NIXERY_GATEWAY1_PORT: '18081', NIXERY_GATEWAY2_PORT: '18082', NIXERY_REDIS_PORT: '16379', NIXERY_GCS_PORT: '14443' };
    const { services, networks } = await normalised(HOST, ports);
    assert.deepEqual(Object.keys(services).sort(), ['gateway', 'gateway-2', 'gcs', 'lb', 'popcount-job', 'redis', 's3', 'worker']);
    assert.equal(networks, undefined, 'no networks');
    for (const [name, s] of Object.entries(services)) {
      assert.equal(s.network_mode, 'host', `${name} uses the host network`);
      assert.equal(s.ports, undefined, `${name} publishes no ports`);
      assert.match(s.image ?? '', /^nixery-ts\//, `${name} uses a local image`);
    }
    // gateway-2 runs the image the gateway service builds, and starts after it.
    assert.equal(services['gateway-2']!.build, undefined);
    assert.equal(services['gateway-2']!.image, services.gateway!.image);
    assert.ok(services['gateway-2']!.depends_on && 'gateway' in services['gateway-2']!.depends_on);
    assert.equal(services.gateway!.scale ?? 1, 1, 'one gateway per port');

    const appServices = ['gateway', 'gateway-2', 'worker', 'popcount-job'];
    for (const svc of appServices) {
      const env = services[svc]!.environment!;
      assert.equal(env.HOST, '127.0.0.1', `${svc} binds loopback`);
      assert.equal(env.REDIS_URL, 'redis://127.0.0.1:16379', `${svc} REDIS_URL`);
      assert.equal(env.STORAGE_EMULATOR_HOST, 'http://127.0.0.1:14443', `${svc} storage`);
      assert.equal(env.GCS_PUBLIC_URL, 'http://127.0.0.1:14443', `${svc} redirects`);
      assert.equal(env.NIXERY_STORAGE_BACKEND, 'gcs');
      assert.equal(env.GCS_BUCKET, 'nixery');
    }
    assert.equal(services.gateway!.environment!.PORT, '18081');
    assert.equal(services['gateway-2']!.environment!.PORT, '18082');
    // Workers share the host's ports: metrics on any free port, so --scale worker=N works.
    assert.equal(services.worker!.environment!.NIXERY_WORKER_METRICS_PORT, '0');

    const redisCmd = services.redis!.command as string[];
    assert.deepEqual(redisCmd.slice(0, 5), ['redis-server', '--bind', '127.0.0.1', '--port', '16379']);
    assert.ok(services.redis!.healthcheck?.test?.includes('16379'), 'the health check asks the right port');
    assert.equal(services.gcs!.environment!.GCS_EMULATOR_HOST, '127.0.0.1');
    assert.equal(services.gcs!.environment!.GCS_EMULATOR_PORT, '14443');

    const lb = services.lb!;
    assert.equal(lb.environment!.NIXERY_LB_LISTEN, '127.0.0.1:18080');
    assert.equal(lb.environment!.NIXERY_LB_GATEWAYS, '127.0.0.1:18081 127.0.0.1:18082');
    assert.deepEqual(lb.command, ['sh', '/etc/nginx/host-network.sh']);
    assert.ok(JSON.stringify(lb.volumes).includes('host-network.sh'));
    assert.ok(lb.depends_on && 'gateway' in lb.depends_on && 'gateway-2' in lb.depends_on);

    // Every listening port is different.
    const listening = [ports.NIXERY_LB_PORT, services.gateway!.environment!.PORT, services['gateway-2']!.environment!.PORT, redisCmd[4], services.gcs!.environment!.GCS_EMULATOR_PORT];
    assert.equal(new Set(listening).size, listening.length);
  });

  it('host: the nginx start script renders a valid configuration with every gateway', async () => {
    const script = readFileSync(path.join(REPO, 'deploy/nginx/host-network.sh'), 'utf8');
    // Render it with a stand-in `nginx` that only records its arguments, then let Debian's nginx test the result.
    const dir = (await run('mktemp', ['-d'])).stdout.trim();
    try {
      const shim = path.join(dir, 'bin');
      await run('mkdir', ['-p', shim]);
      await run('sh', ['-c', `printf '#!/bin/sh\\necho "$@" >> ${dir}/calls\\n' > ${shim}/nginx && chmod +x ${shim}/nginx`]);
      const r = await run('sh', ['-c', script.replace(/\/tmp\/nixery-lb/g, `${dir}/lb`)], {
        env: { PATH: `${shim}:${process.env.PATH}`, NIXERY_LB_LISTEN: '127.0.0.1:18080', NIXERY_LB_GATEWAYS: '127.0.0.1:18081 127.0.0.1:18082' },
      });
      assert.equal(r.code, 0, r.stderr);
      const conf = readFileSync(path.join(dir, 'lb.conf'), 'utf8');
      assert.match(conf, /server 127\.0\.0\.1:18081 max_fails=1/);
      assert.match(conf, /server 127\.0\.0\.1:18082 max_fails=1/);
      assert.match(conf, /listen 127\.0\.0\.1:18080;/);
      // The real nginx accepts it (with the shared proxy settings in place of /etc/nginx's copy).
      const testConf = path.join(dir, 'test.conf');
      writeFileSync(
        testConf,
        conf
          .replace('/etc/nginx/nixery-proxy.conf', path.join(REPO, 'deploy/nginx/nixery-proxy.conf'))
          .replace(/pid [^;]+;/, `pid ${dir}/nginx.pid;`)
          .replace(/\/dev\/std(out|err)/g, `${dir}/log`),
      );
      const t = await run('/usr/sbin/nginx', ['-t', '-q', '-p', `${dir}/`, '-e', `${dir}/error.log`, '-c', testConf]);
      assert.equal(t.code, 0, t.stderr);
    } finally {
      await run('rm', ['-rf', dir]);
    }
  });
});
