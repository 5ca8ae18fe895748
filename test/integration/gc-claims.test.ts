/**
 * The storage collector's claims against builds' use records (issue 11,
 * point 4), on a real redis-server and the filesystem driver: a use waits
 * while the collector holds a claim, a recent use or pull refuses a claim,
 * and a build that reuses a layer the collector is deleting packs it again
 * after the deletion instead of publishing a reference to a missing blob.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { sha256Digest } from '../../libs/shared/src/core/digest';
import { connectRedis, redisKeys } from '../../libs/shared/src/infra/redis';
import { LayerCache } from '../../libs/shared/src/pipeline/layer-cache';
import { ensureLayer } from '../../libs/shared/src/pipeline/layers';
import { StorageUsage } from '../../libs/shared/src/records/usage';
import { type EmbeddedRedis, startEmbeddedRedis } from '../../libs/shared/src/runtime/embedded-redis';
import { createFilesystemDriver } from '../../libs/shared/src/storage/filesystem';
import { blobKey } from '../../libs/shared/src/storage/keys';

/** Whether `p` settles within `ms`. */
const settles = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true, () => true), sleep(ms).then(() => false)]);

describe('collection claims and build uses', () => {
  let dir: string;
  let redisServer: EmbeddedRedis;
  let redis: ReturnType<typeof connectRedis>;
  const keys = redisKeys(`claims${process.pid}`);
  let usage: StorageUsage;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-claims-'));
    redisServer = await startEmbeddedRedis(path.join(dir, 'redis'));
    redis = connectRedis({ path: redisServer.socket });
    usage = new StorageUsage(redis, keys, 1000);
  });
  after(async () => {
    redis?.disconnect();
    await redisServer?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a use waits while the collector holds a claim, and goes on once it is released', async () => {
    const d = sha256Digest('blob-1');
    assert.equal(await usage.claim('blob', d, Date.now() - 1000), true);
    const using = usage.use([d]);
    assert.equal(await settles(using, 600), false, 'the use waits for the claim');
    await usage.release('blob', d, true);
    assert.equal(await settles(using, 1000), true);
  });

  it('a recent use refuses a claim; an older one does not', async () => {
    const d = sha256Digest('blob-2');
    await usage.use([d]);
    assert.equal(await usage.claim('blob', d, Date.now() - 60_000), false, 'used after the cutoff: kept');
    assert.equal(await redis.exists(keys.gcClaim(d)), 0, 'a refused claim leaves no claim behind');
    await sleep(5);
    assert.equal(await usage.claim('blob', d, Date.now()), true, 'used before the cutoff: claimed');
    await usage.release('blob', d, true);
  });

  it('pulls are recorded in the background, at most once per interval per digest, and refuse a manifest claim', async () => {
    const m = sha256Digest('manifest-1');
    usage.recordPull(m);
    await sleep(200);
    const first = (await usage.pullTimes()).get(m);
    assert.ok(first !== undefined);
    usage.recordPull(m);
    await sleep(200);
    assert.equal((await usage.pullTimes()).get(m), first, 'a second pull within the interval writes nothing');
    await sleep(1000);
    usage.recordPull(m);
    await sleep(200);
    assert.ok((await usage.pullTimes()).get(m)! > first, 'after the interval it is recorded again');
    assert.equal(await usage.claim('manifest', m, Date.now() - 60_000), false);
  });

  it('publishing a manifest the collector is deleting waits for the deletion', async () => {
    const m = sha256Digest('manifest-2');
    assert.equal(await usage.claim('manifest', m, Date.now()), true);
    const publishing = usage.use([sha256Digest('config-2')], { pulled: m });
    assert.equal(await settles(publishing, 600), false);
    await usage.release('manifest', m, true);
    await publishing;
    assert.ok((await usage.pullTimes()).has(m), 'and then counts as a pull');
  });

  it('a build reusing a layer that is being collected packs it again after the deletion', async () => {
    const storage = createFilesystemDriver(path.join(dir, 'data'));
    const deps = { storage, layerCache: new LayerCache(redis, keys, 5000), log: pino({ level: 'silent' }), usage };
    const tar = () => Readable.from([Buffer.from('the same layer bytes every time')]);
    const first = await ensureLayer(deps, 'layer-key', tar, new AbortController().signal);
    assert.equal(first.packed, true);
    const d = first.layer.digest;

    await sleep(5);
    assert.equal(await usage.claim('blob', d, Date.now()), true, 'the collector claims the blob');
    const reuse = ensureLayer(deps, 'layer-key', tar, new AbortController().signal);
    assert.equal(await settles(reuse, 600), false, 'the cache hit waits for the claim');
    await storage.delete(blobKey(d));
    await usage.release('blob', d, true);
    const second = await reuse;
    assert.equal(second.packed, true, 'the blob was gone, so it is packed again');
    assert.equal(second.layer.digest, d);
    assert.ok(await storage.stat(blobKey(d)), 'the blob the build uses exists');
  });
});
