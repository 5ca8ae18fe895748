/**
 * One storage collection run (`collectStorage`) on each driver, the
 * filesystem, the GCS emulator and an S3 server (s3rver), with a real redis-server: pull records
 * decide, the grace is the object's write time as the driver lists it, a dry
 * run deletes nothing, and a real run drops the collected manifest from the
 * Redis caches, from another process's memory (pub/sub) and the layer
 * cache entries pointing at deleted blobs (issue 11, point 4).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { collectStorage } from '../../libs/shared/src/collect';
import { type Digest, sha256Digest } from '../../libs/shared/src/core/digest';
import { connectRedis, redisKeys } from '../../libs/shared/src/infra/redis';
import { LayerCache } from '../../libs/shared/src/pipeline/layer-cache';
import { BuildStatusStore, ManifestCache, StorageUsage, subscribeCollected } from '../../libs/shared/src/records';
import { type EmbeddedRedis, startEmbeddedRedis } from '../../libs/shared/src/runtime/embedded-redis';
import type { StorageDriver } from '../../libs/shared/src/storage/driver';
import { createFilesystemDriver } from '../../libs/shared/src/storage/filesystem';
import { createGcsDriver } from '../../libs/shared/src/storage/gcs';
import { createS3Driver } from '../../libs/shared/src/storage/s3';
import { blobKey, manifestKey } from '../../libs/shared/src/storage/keys';
import { putStaged } from '../../libs/shared/src/storage/staged';
import { type GcsEmulator, startGcsEmulator } from '../helpers/gcs-emulator';
import { S3_TEST_CREDENTIALS, type S3Server, startS3Server } from '../helpers/s3-server';

let dir: string;
let redisServer: EmbeddedRedis;
let emu: GcsEmulator;
let s3: S3Server;
const connections: ReturnType<typeof connectRedis>[] = [];
const connect = () => {
  const c = connectRedis({ path: redisServer.socket });
  connections.push(c);
  return c;
};

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-gc-drivers-'));
  redisServer = await startEmbeddedRedis(path.join(dir, 'redis'));
  emu = await startGcsEmulator();
  s3 = await startS3Server(['nixery-gc']);
  process.env.STORAGE_EMULATOR_HOST = emu.host;
  process.env.METADATA_SERVER_DETECTION = 'none';
});
after(async () => {
  for (const c of connections) c.disconnect();
  await emu?.stop();
  await s3?.stop();
  await redisServer?.stop();
  await rm(dir, { recursive: true, force: true });
});

const put = async (storage: StorageDriver, body: string, key = blobKey) =>
  (await putStaged(storage, Readable.from([Buffer.from(body)]), key, 'application/octet-stream')).digest;

for (const [name, make] of [
  ['filesystem', () => createFilesystemDriver(path.join(dir, 'fs'))],
  ['gcs (emulator)', () => createGcsDriver({ bucket: 'nixery-gc', signedUrls: false, signedUrlTtlSeconds: 60 })],
  ['s3 (s3rver)', () => createS3Driver({ bucket: 'nixery-gc', region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, redirect: true, signedUrlTtlSeconds: 60, credentials: { ...S3_TEST_CREDENTIALS } })],
] as const) {
  describe(`collectStorage on ${name}`, () => {
    it('keeps what a recent pull uses and what is within the grace; collects the rest and drops it from the caches', { timeout: 60_000 }, async () => {
      const storage: StorageDriver = make();
      const redis = connect();
      const keys = redisKeys(`gcdrv${name.length}`);
      const usage = new StorageUsage(redis, keys);
      const manifests = new ManifestCache(redis, keys);
      const layers = new LayerCache(redis, keys, 5000);
      const run = `${name}-${Date.now()}`;
      const [l1, l2, l3, c1, c2] = await Promise.all(['l1', 'l2', 'l3', 'c1', 'c2'].map((n) => put(storage, `${run} ${n}`)));
      const doc = (config: Digest, ls: Digest[]) => JSON.stringify({ schemaVersion: 2, config: { digest: config }, layers: ls.map((digest) => ({ digest })) });
      const bodyA = doc(c1!, [l1!, l2!]);
      const a = await put(storage, bodyA, manifestKey);
      const b = await put(storage, doc(c2!, [l2!, l3!]), manifestKey);
      const now = Date.now();
      await redis.zadd(keys.gcPulls, now - 7200_000, a, now, b);
      await layers.put('key-of-l1', { digest: l1!, diffId: sha256Digest('x'), size: 1 });
      const docA = { digest: a, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', size: bodyA.length, body: bodyA };
      await manifests.put('build-key-a', { ...docA, oci: docA, revision: '' });
      // Another process (a gateway) holding A in memory, told over pub/sub.
      const gateway = new ManifestCache(redis, keys);
      gateway.learn('build-key-a', { ...docA, oci: docA, revision: '' });
      await subscribeCollected(connect(), keys, { collected: (d) => gateway.forget(d), resubscribed: () => gateway.forgetAll() });
      // Past the 1 s grace for every driver: S3 gives whole seconds and its driver rounds them up (up to 999 ms younger).
      await sleep(2500);
      const fresh = await put(storage, `${run} fresh, referenced by nothing`);
      const forgotten: string[] = [];
      const deps = { storage, usage, manifests, layers, status: new BuildStatusStore(redis, keys), builds: { forget: async (d: ReadonlySet<string>) => void forgotten.push(...d) } };
      const opts = { keepMs: 3600_000, graceMs: 1000 };

      const dry = await collectStorage(deps, { ...opts, dryRun: true });
      const expected = [manifestKey(a), blobKey(l1!), blobKey(c1!)].sort();
      assert.deepEqual([...dry.manifests, ...dry.blobs].map((o) => o.key).sort(), expected);
      for (const k of expected) assert.ok(await storage.stat(k as never), `dry run kept ${k}`);
      assert.ok(await gateway.byBuildKey('build-key-a'));

      const real = await collectStorage(deps, { ...opts, dryRun: false });
      assert.deepEqual([...real.manifests, ...real.blobs].map((o) => o.key).sort(), expected);
      for (const k of expected) assert.equal(await storage.stat(k as never), null, `${k} deleted`);
      for (const d of [l2, l3, c2, fresh]) assert.ok(await storage.stat(blobKey(d!)), `${d} kept`);
      assert.ok(await storage.stat(manifestKey(b)));
      assert.equal(real.bytes, real.manifests.concat(real.blobs).reduce((n, o) => n + o.size, 0));
      assert.ok(real.bytes > 0);
      assert.equal(await layers.get('key-of-l1'), null, 'the layer-cache entry of a deleted blob is dropped');
      assert.equal(await manifests.byDigest(a), null);
      assert.equal(await new ManifestCache(redis, keys).byBuildKey('build-key-a'), null, 'dropped from Redis under its build key');
      await sleep(200);
      assert.equal(await gateway.byBuildKey('build-key-a'), null, 'and from the other process\'s memory');
      assert.deepEqual(forgotten, [a], 'finished build jobs of the collected manifest are forgotten');
      assert.equal((await usage.pullTimes()).has(a), false);
    });
  });
}
