/**
 * The gateway's graceful stop in this process (`serveGateway`, what the
 * gateway alone and npm start both use): a fake build queue where one image
 * finishes during the grace and one never does. After `close(grace)` the
 * first is answered 200, the second `503 UNAVAILABLE` with `Retry-After` once
 * the grace is over, every answer closes its connection, and no new
 * connection is accepted. The real-process version is
 * test/integration/shutdown-drain.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createGateway } from '../../apps/gateway/src/app';
import type { Builds } from '../../apps/gateway/src/build-client';
import { type GatewayServer, serveGateway } from '../../apps/gateway/src/serve';
import { loadConfig } from '../../libs/shared/src/config';
import { MediaTypes, sha256Digest } from '../../libs/shared/src/core';
import { createMetrics } from '../../libs/shared/src/infra';
import type { PublishedImage } from '../../libs/shared/src/protocol';
import { createFilesystemDriver } from '../../libs/shared/src/storage';

const offline = () => new Redis({ lazyConnect: true, host: '127.0.0.1', port: 1, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
const GRACE_MS = 600;

describe('gateway drain, in process', () => {
  let dir: string;
  let server: GatewayServer;
  let base: string;
  let finishQuick!: () => void;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-drain-'));
    await mkdir(path.join(dir, 'pkgs'));
    await writeFile(path.join(dir, 'pkgs', 'default.nix'), '{ }: { }\n');
    const body = JSON.stringify({ schemaVersion: 2 });
    const doc = { digest: sha256Digest(body), mediaType: MediaTypes.dockerManifest, size: body.length, body };
    const image: PublishedImage = { ...doc, oci: doc, revision: '' };
    const quick = new Promise<PublishedImage>((resolve) => (finishQuick = () => resolve(image)));
    const builds: Builds = {
      warm: async () => undefined,
      close: async () => undefined,
      build: (data) => (data.image.packages.includes('quick') ? quick : new Promise<PublishedImage>(() => undefined)),
    };
    const storage = createFilesystemDriver(path.join(dir, 'data'));
    const config = loadConfig({ STORAGE_PATH: path.join(dir, 'data'), NIXERY_PKGS_PATH: path.join(dir, 'pkgs'), LOG_LEVEL: 'silent' });
    const manifests = { byBuildKey: async () => null, byDigest: async () => null, learn: () => undefined };
    const gateway = createGateway({ config, log: pino({ level: 'silent' }), metrics: createMetrics(), redis: offline(), connect: offline, storage }, { builds, manifests });
    server = await serveGateway(gateway, { port: 0, host: '127.0.0.1', log: pino({ level: 'silent' }) });
    base = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('answers a build finished within the grace 200, one still waiting 503 with Retry-After after it, and takes no new connection', async () => {
    const pull = async (name: string) => {
      const r = await fetch(`${base}/v2/${name}/manifests/latest`);
      return { status: r.status, retryAfter: r.headers.get('retry-after'), connection: r.headers.get('connection'), body: await r.text(), at: Date.now() };
    };
    const quick = pull('quick');
    const stuck = pull('stuck');
    await sleep(100);
    const stopAt = Date.now();
    const closing = server.close(GRACE_MS);
    await sleep(100);
    await assert.rejects(fetch(`${base}/v2/`), 'no new connection once stopping');
    finishQuick();
    const q = await quick;
    assert.equal(q.status, 200, q.body);
    assert.equal(q.connection, 'close');
    const s = await stuck;
    assert.equal(s.status, 503, s.body);
    assert.equal(JSON.parse(s.body).errors[0].code, 'UNAVAILABLE');
    assert.ok(Number(s.retryAfter) > 0, 'Retry-After');
    assert.ok(s.at - stopAt >= GRACE_MS - 50, `held until the grace is over (${s.at - stopAt} ms)`);
    await closing;
    assert.ok(Date.now() - stopAt < GRACE_MS + 2000, 'closed soon after the grace');
  });
});
