/**
 * The S3 alternative of the compose cluster (issue 16), checked statically:
 * docker-compose (Debian's 1.29, offline) validates docker-compose.yml with
 * its "s3" profile plus deploy/compose.s3.yml, and the normalised result has
 * the s3 server built from a Dockerfile stage that exists, published for the
 * host, and every app configured for it (what loadConfig makes of their
 * environment is an S3 storage setting on that server).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../libs/shared/src/config/config';
import { REPO } from '../helpers/nixery';
import { run } from '../helpers/proc';

type Service = { build?: { target?: string }; environment?: Record<string, string>; ports?: unknown[]; depends_on?: Record<string, unknown>; profiles?: string[] };

const FILES = ['docker-compose.yml', 'docker-compose.override.yml', 'deploy/compose.s3.yml'];

async function normalised(files: string[]): Promise<{ services: Record<string, Service> }> {
  const cfg = await run('docker-compose', [...files.flatMap((f) => ['-f', path.join(REPO, f)]), 'config'], {
    cwd: REPO,
    timeoutMs: 60_000,
    env: { COMPOSE_PROFILES: 's3' },
  });
  assert.equal(cfg.code, 0, cfg.stderr);
  const json = await run('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: cfg.stdout });
  assert.equal(json.code, 0, json.stderr);
  return JSON.parse(json.stdout) as { services: Record<string, Service> };
}

describe('compose: the s3 profile', () => {
  it('validates, builds the s3 server from deploy/Dockerfile, and points every app at it', { timeout: 120_000 }, async () => {
    const { services } = await normalised(FILES);
    const s3 = services.s3;
    assert.ok(s3, 'an s3 service');
    assert.deepEqual(s3.profiles, ['s3']);
    assert.equal(s3.build?.target, 's3-server');
    assert.match(readFileSync(path.join(REPO, 'deploy/Dockerfile'), 'utf8'), /^FROM deps AS s3-server$/m);
    assert.match(JSON.stringify(s3.ports), /4569/);
    for (const app of ['gateway', 'worker', 'popcount-job']) {
      const env = services[app]?.environment ?? {};
      const cfg = loadConfig({ ...env, NIXERY_WORKER_SYSTEMS: 'x86_64-linux' });
      assert.deepEqual(
        cfg.storage,
        { backend: 's3', bucket: 'nixery', region: 'us-east-1', forcePathStyle: true, redirect: true, signedUrlTtlSeconds: 300, endpoint: 'http://s3:4569', publicEndpoint: 'http://localhost:4569' },
        app,
      );
      assert.equal(env.AWS_ACCESS_KEY_ID, 'S3RVER', `${app} has the server's key`);
    }
    assert.ok(services.gateway?.depends_on?.s3 && services.worker?.depends_on?.s3);
  });
});
