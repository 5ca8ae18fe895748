/**
 * docker-compose.yml at the repository root: validated by docker-compose
 * itself (Debian's 1.29, offline), then its normalised form is checked for the
 * cluster's shape. No base images can be pulled here, so it is not started.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { REPO } from '../helpers/nixery';
import { run } from '../helpers/proc';

type Service = {
  image?: string;
  build?: { context: string; dockerfile: string; target?: string };
  command?: string[] | string;
  environment?: Record<string, string>;
  ports?: unknown[];
  container_name?: string;
  volumes?: unknown[];
  scale?: number;
  depends_on?: Record<string, unknown>;
};
type ComposeFile = { services: Record<string, Service>; volumes?: Record<string, unknown> };

const COMPOSE = path.join(REPO, 'docker-compose.yml');

/** `docker-compose config` (normalised, interpolated), parsed with the PyYAML that docker-compose itself runs on. */
async function normalised(): Promise<ComposeFile> {
  const cfg = await run('docker-compose', ['-f', COMPOSE, 'config'], { cwd: REPO, timeoutMs: 60_000 });
  assert.equal(cfg.code, 0, cfg.stderr);
  const json = await run('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    input: cfg.stdout,
  });
  assert.equal(json.code, 0, json.stderr);
  return JSON.parse(json.stdout) as ComposeFile;
}

describe('docker-compose.yml', () => {
  it('docker-compose config -q accepts it', async () => {
    const r = await run('docker-compose', ['-f', COMPOSE, 'config', '-q'], { cwd: REPO, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
  });

  it('has redis with persistence, a GCS emulator, gateways behind nginx, scalable workers and the popularity job', async () => {
    const { services, volumes } = await normalised();
    for (const s of ['redis', 'gcs', 'gateway', 'lb', 'worker', 'popcount-job']) assert.ok(services[s], `service ${s}`);

    const redis = services.redis!;
    assert.match(JSON.stringify(redis.command), /--appendonly","yes/);
    assert.ok(redis.volumes?.length, 'redis data on a volume');
    assert.ok(volumes && 'redis-data' in volumes);

    assert.match(services.gcs!.image ?? '', /^fsouza\/fake-gcs-server:/);

    // Apps are built from deploy/Dockerfile, one target each.
    for (const [svc, target] of [['gateway', 'gateway'], ['worker', 'worker'], ['popcount-job', 'popcount-job']] as const) {
      const b = services[svc]!.build!;
      assert.equal(b.dockerfile, 'deploy/Dockerfile');
      assert.equal(b.target, target);
      const dockerfile = readFileSync(path.join(REPO, b.dockerfile), 'utf8');
      assert.match(dockerfile, new RegExp(`^FROM \\S+ AS ${target}$`, 'm'), `deploy/Dockerfile has target ${target}`);
    }

    // Gateways, workers and the job find Redis and the bucket through the environment.
    for (const svc of ['gateway', 'worker', 'popcount-job']) {
      const env = services[svc]!.environment!;
      assert.equal(env.REDIS_URL, 'redis://redis:6379', `${svc} REDIS_URL`);
      assert.equal(env.NIXERY_STORAGE_BACKEND, 'gcs', `${svc} storage`);
      assert.equal(env.GCS_BUCKET, 'nixery');
      assert.equal(env.STORAGE_EMULATOR_HOST, 'http://gcs:4443');
    }
    // The bucket exists: fake-gcs-server makes one per directory of its -data folder.
    assert.ok(existsSync(path.join(REPO, 'deploy/fake-gcs', services.gateway!.environment!.GCS_BUCKET!)));
    // Redirects point where a client on the host reaches the emulator.
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
});
