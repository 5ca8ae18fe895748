/**
 * The one test suite every storage driver must pass (filesystem, GCS). Call
 * `storageConformance(name, make)` from a test file; `make` gives a fresh,
 * empty driver and a cleanup function. Each case uses its own random keys.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { putStaged } from '../libs/shared/src/storage/staged';
import { type Digest, sha256Digest } from '../libs/shared/src/core/digest';
import type { StorageDriver, StorageKey } from '../libs/shared/src/storage/driver';
import { blobKey, manifestKey, stagingKey } from '../libs/shared/src/storage/keys';

/** What a conformance `make` returns. */
export interface DriverUnderTest {
  driver: StorageDriver;
  cleanup(): Promise<void>;
}

/** A fresh key in the `layers/` namespace that no other case uses. */
function freshKey(): StorageKey {
  return blobKey(sha256Digest(randomBytes(16)));
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
}

async function readKey(driver: StorageDriver, key: StorageKey, range?: { start: number; end: number }): Promise<Buffer> {
  const r = await driver.read(key, range);
  assert.ok(r, `expected ${key} to exist`);
  return readAll(r.stream);
}

async function put(driver: StorageDriver, key: StorageKey, data: Buffer, contentType?: string): Promise<void> {
  const res = await driver.write(key, Readable.from([data]), contentType ? { contentType } : undefined);
  assert.equal(res.size, data.length);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A deterministic pseudo-random stream of `size` bytes in `chunk`-sized
 * pieces, produced only when pulled, pausing `pauseMs` every `pauseEvery`
 * chunks (a slow producer). `hash()` gives the sha256 hex of what it produced.
 */
function slowStream(size: number, opts: { chunk?: number; pauseEvery?: number; pauseMs?: number; failAt?: number } = {}) {
  const chunk = opts.chunk ?? 64 * 1024;
  const hasher = createHash('sha256');
  let produced = 0;
  let n = 0;
  let seed = randomBytes(32);
  const stream = new Readable({
    highWaterMark: chunk,
    read() {
      if (opts.failAt !== undefined && produced >= opts.failAt) {
        this.destroy(new Error('source failed half-way'));
        return;
      }
      if (produced >= size) {
        this.push(null);
        return;
      }
      const len = Math.min(chunk, size - produced);
      // Cheap distinct bytes: sha256 chain expanded to the chunk length.
      seed = createHash('sha256').update(seed).digest();
      const buf = Buffer.alloc(len);
      for (let i = 0; i < len; i += 32) seed.copy(buf, i, 0, Math.min(32, len - i));
      buf.writeUInt32BE(n, 0);
      hasher.update(buf);
      produced += len;
      n++;
      const emit = () => this.push(buf);
      if (opts.pauseEvery && n % opts.pauseEvery === 0) setTimeout(emit, opts.pauseMs ?? 5);
      else emit();
    },
  });
  return { stream, hash: () => hasher.digest('hex'), produced: () => produced };
}

/** Wraps a driver, recording the keys passed to write and move (to find putStaged's staging key). */
function recording(driver: StorageDriver) {
  const writes: StorageKey[] = [];
  const moves: [StorageKey, StorageKey][] = [];
  const wrapped: StorageDriver = {
    name: driver.name,
    write: (k, s, o) => {
      writes.push(k);
      return driver.write(k, s, o);
    },
    read: (k, r) => driver.read(k, r),
    stat: (k) => driver.stat(k),
    move: (a, b) => {
      moves.push([a, b]);
      return driver.move(a, b);
    },
    delete: (k) => driver.delete(k),
    ping: () => driver.ping(),
    removeStaging: (t) => driver.removeStaging(t),
    list: (p) => driver.list(p),
  };
  return { driver: wrapped, writes, moves };
}

/** Serves one 307 to `location`, as the gateway does, and returns its URL. */
async function redirector(location: string): Promise<{ url: string; close(): Promise<void> }> {
  const srv = http.createServer((_req, res) => {
    res.writeHead(307, { Location: location, 'Content-Length': '0' });
    res.end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v2/x/blobs/sha256:0`,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

/** Registers the conformance cases for one driver. */
export function storageConformance(name: string, make: () => Promise<DriverUnderTest>): void {
  describe(`storage conformance: ${name}`, () => {
    let sut: DriverUnderTest;
    let d: StorageDriver;
    before(async () => {
      sut = await make();
      d = sut.driver;
    });
    after(async () => {
      await sut?.cleanup();
    });

    test('has a name and answers ping', async () => {
      assert.equal(typeof d.name, 'string');
      assert.ok(d.name.length > 0);
      await d.ping();
    });

    test('write then read back the same bytes', async () => {
      const key = freshKey();
      const data = randomBytes(100_000);
      await put(d, key, data, 'application/vnd.oci.image.layer.v1.tar+gzip');
      const r = await d.read(key);
      assert.ok(r);
      assert.equal(r.size, data.length);
      assert.deepEqual(await readAll(r.stream), data);
    });

    test('write accepts an empty object', async () => {
      const key = manifestKey(sha256Digest(randomBytes(8)));
      await put(d, key, Buffer.alloc(0));
      assert.equal((await d.stat(key))?.size, 0);
      assert.equal((await readKey(d, key)).length, 0);
    });

    test('write overwrites an existing object', async () => {
      const key = freshKey();
      await put(d, key, Buffer.from('first version, longer'));
      await put(d, key, Buffer.from('second'));
      assert.equal((await readKey(d, key)).toString(), 'second');
      assert.equal((await d.stat(key))?.size, 6);
    });

    test('read with byte ranges: first byte, middle, last byte', async () => {
      const key = freshKey();
      const data = randomBytes(10_000);
      await put(d, key, data);
      const cases = [
        { start: 0, end: 0 },
        { start: 1234, end: 5678 },
        { start: data.length - 1, end: data.length - 1 },
        { start: 0, end: data.length - 1 },
      ];
      for (const range of cases) {
        const r = await d.read(key, range);
        assert.ok(r);
        assert.equal(r.size, data.length, 'size is the whole object, not the slice');
        assert.deepEqual(await readAll(r.stream), data.subarray(range.start, range.end + 1), JSON.stringify(range));
      }
    });

    test('stat gives the size (and the content type when the driver keeps it)', async () => {
      const key = freshKey();
      const data = randomBytes(4321);
      await put(d, key, data, 'application/vnd.oci.image.config.v1+json');
      const info = await d.stat(key);
      assert.ok(info);
      assert.equal(info.size, 4321);
      if (info.contentType !== undefined) assert.equal(info.contentType, 'application/vnd.oci.image.config.v1+json');
    });

    test('stat and read of a missing key give null', async () => {
      const key = freshKey();
      assert.equal(await d.stat(key), null);
      assert.equal(await d.read(key), null);
      assert.equal(await d.read(key, { start: 0, end: 0 }), null);
    });

    test('move: the source is gone and the target is complete', async () => {
      const from = stagingKey();
      const to = freshKey();
      const data = randomBytes(50_000);
      await put(d, from, data);
      await d.move(from, to);
      assert.equal(await d.stat(from), null);
      assert.equal(await d.read(from), null);
      assert.equal((await d.stat(to))?.size, data.length);
      assert.deepEqual(await readKey(d, to), data);
    });

    test('move overwrites an existing target', async () => {
      const from = stagingKey();
      const to = freshKey();
      await put(d, to, Buffer.from('old contents of the target'));
      await put(d, from, Buffer.from('new'));
      await d.move(from, to);
      assert.equal((await readKey(d, to)).toString(), 'new');
      assert.equal((await d.stat(to))?.size, 3);
      assert.equal(await d.stat(from), null);
    });

    test('move of a missing source fails and creates nothing', async () => {
      const from = stagingKey();
      const to = freshKey();
      await assert.rejects(d.move(from, to));
      assert.equal(await d.stat(to), null);
    });

    test('delete removes the object; deleting a missing key is fine', async () => {
      const key = freshKey();
      await put(d, key, Buffer.from('bye'));
      await d.delete(key);
      assert.equal(await d.stat(key), null);
      assert.equal(await d.read(key), null);
      await d.delete(key);
      await d.delete(freshKey());
    });

    test('an object is not visible until its write completes; a failed write leaves nothing', async () => {
      const key = stagingKey();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const source = Readable.from(
        (async function* () {
          yield randomBytes(256 * 1024);
          await gate;
          yield randomBytes(1024);
        })(),
      );
      const writing = d.write(key, source);
      await sleep(300);
      assert.equal(await d.stat(key), null, 'half-written object is visible');
      release();
      assert.equal((await writing).size, 256 * 1024 + 1024);
      assert.equal((await d.stat(key))?.size, 256 * 1024 + 1024);

      const failing = stagingKey();
      const bad = slowStream(2 * 1024 * 1024, { failAt: 1024 * 1024 });
      await assert.rejects(d.write(failing, bad.stream), /half-way/);
      await sleep(300);
      assert.equal(await d.stat(failing), null, 'failed write left an object');
    });

    test('large object (20 MiB) from a slow stream round-trips', { timeout: 120_000 }, async () => {
      const key = freshKey();
      const size = 20 * 1024 * 1024;
      const src = slowStream(size, { chunk: 64 * 1024, pauseEvery: 8, pauseMs: 2 });
      const res = await d.write(key, src.stream, { contentType: 'application/octet-stream' });
      assert.equal(res.size, size);
      assert.equal(src.produced(), size);
      assert.equal((await d.stat(key))?.size, size);
      const r = await d.read(key);
      assert.ok(r);
      assert.equal(r.size, size);
      const h = createHash('sha256');
      let n = 0;
      for await (const c of r.stream) {
        h.update(c as Buffer);
        n += (c as Buffer).length;
      }
      assert.equal(n, size);
      assert.equal(h.digest('hex'), src.hash());
      // A slice near the end, read without fetching the rest.
      const tail = await readKey(d, key, { start: size - 10, end: size - 1 });
      assert.equal(tail.length, 10);
      await d.delete(key);
    });

    test('redirectUrl (when offered) serves the exact bytes, also through a 307 and with Range', async (t) => {
      if (!d.redirectUrl) {
        t.skip(`${name} offers no redirect URLs`);
        return;
      }
      const key = freshKey();
      const data = randomBytes(30_000);
      await put(d, key, data, 'application/octet-stream');
      const url = await d.redirectUrl(key);
      if (url === null) {
        t.skip(`${name} gave no URL`);
        return;
      }
      assert.match(url, /^https?:\/\//);
      const direct = await fetch(url, { redirect: 'manual' });
      assert.equal(direct.status, 200);
      assert.deepEqual(Buffer.from(await direct.arrayBuffer()), data);

      // What a registry client does: GET the gateway, follow the 307, keep the method and the Range header.
      const gw = await redirector(url);
      try {
        const followed = await fetch(gw.url);
        assert.equal(followed.status, 200);
        assert.deepEqual(Buffer.from(await followed.arrayBuffer()), data);
        const ranged = await fetch(gw.url, { headers: { Range: 'bytes=100-199' } });
        assert.equal(ranged.status, 206);
        assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(100, 200));
      } finally {
        await gw.close();
      }
    });

    test('removeStaging: staging objects older than the cutoff go; fresh ones and digest objects stay', async () => {
      const oldLayer = freshKey();
      const oldManifest = manifestKey(sha256Digest(randomBytes(8)));
      await put(d, oldLayer, Buffer.from('a layer'));
      await put(d, oldManifest, Buffer.from('{}'));
      const leftovers = [stagingKey(), stagingKey()];
      for (const k of leftovers) await put(d, k, randomBytes(1000));
      await sleep(1100);
      const cutoff = new Date();
      await sleep(1100);
      const fresh = stagingKey();
      await put(d, fresh, randomBytes(1000));

      const { removed } = await d.removeStaging(cutoff);
      assert.ok(removed >= leftovers.length, `removed ${removed}`);
      for (const k of leftovers) assert.equal(await d.stat(k), null, `old staging object ${k} is gone`);
      assert.equal((await d.stat(fresh))?.size, 1000, 'a fresh staging object stays');
      assert.equal((await readKey(d, oldLayer)).toString(), 'a layer', 'an object under a digest key stays, however old');
      assert.equal((await readKey(d, oldManifest)).toString(), '{}');

      // Nothing older is left: a second sweep removes nothing; the fresh object goes once it is old enough.
      assert.equal((await d.removeStaging(cutoff)).removed, 0);
      await d.removeStaging(new Date(Date.now() + 1000));
      assert.equal(await d.stat(fresh), null);
      assert.ok(await d.stat(oldLayer));
    });

    test('list: every complete object under a prefix with its size and write time, nothing else', async () => {
      const before = Date.now();
      const layers = [freshKey(), freshKey(), freshKey()];
      const sizes = [0, 1, 70_000];
      for (const [i, k] of layers.entries()) await put(d, k, randomBytes(sizes[i]!));
      const manifest = manifestKey(sha256Digest(randomBytes(8)));
      await put(d, manifest, Buffer.from('{"schemaVersion":2}'));
      const staged = stagingKey();
      await put(d, staged, randomBytes(10));
      // A write in progress is not listed (the filesystem's partial file, GCS's unfinished upload).
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const pending = freshKey();
      const writing = d.write(pending, Readable.from((async function* () {
        yield randomBytes(128 * 1024);
        await gate;
      })()));
      await sleep(300);

      const listAll = async (prefix: 'layers/' | 'manifests/' | 'staging/') => {
        const out = new Map<string, { size: number; updated: Date }>();
        for await (const o of d.list(prefix)) out.set(o.key, { size: o.size, updated: o.updated });
        return out;
      };
      const listed = await listAll('layers/');
      for (const [i, k] of layers.entries()) {
        const o = listed.get(k);
        assert.ok(o, `${k} is listed`);
        assert.equal(o.size, sizes[i]);
        assert.ok(o.updated instanceof Date);
        // Clocks of a remote store may differ a little from ours.
        assert.ok(Math.abs(o.updated.getTime() - before) < 120_000, `write time ${o.updated.toISOString()} is about now`);
      }
      assert.ok(!listed.has(pending), 'an object still being written is not listed');
      assert.ok(!listed.has(manifest) && !listed.has(staged), 'only keys under the prefix');
      for (const k of listed.keys()) assert.match(k, /^layers\/[a-f0-9]{64}$/);
      assert.equal((await listAll('manifests/')).get(manifest)?.size, 19);
      assert.ok((await listAll('staging/')).has(staged));

      release();
      await writing;
      assert.ok((await listAll('layers/')).has(pending), 'listed once complete');
      await d.delete(layers[0]!);
      assert.ok(!(await listAll('layers/')).has(layers[0]!), 'a deleted object is not listed');
    });

    test('putStaged: right digest and size, bytes under the final key, staging object gone', async () => {
      const rec = recording(d);
      const data = randomBytes(300_000);
      const blob = await putStaged(rec.driver, Readable.from([data.subarray(0, 1000), data.subarray(1000)]), blobKey, 'application/octet-stream');
      assert.equal(blob.digest, sha256Digest(data));
      assert.equal(blob.size, data.length);
      assert.deepEqual(await readKey(d, blobKey(blob.digest)), data);
      assert.equal(rec.writes.length, 1);
      const staging = rec.writes[0]!;
      assert.match(staging, /^staging\//);
      assert.deepEqual(rec.moves, [[staging, blobKey(blob.digest)]]);
      assert.equal(await d.stat(staging), null);
    });

    test('putStaged: a source failing half-way leaves no final object and no staging object', async () => {
      const rec = recording(d);
      const total = 4 * 1024 * 1024;
      const src = slowStream(total, { failAt: 2 * 1024 * 1024, pauseEvery: 4, pauseMs: 1 });
      const seen = createHash('sha256');
      src.stream.on('data', (c: Buffer) => seen.update(c));
      const finals: Digest[] = [];
      await assert.rejects(
        putStaged(rec.driver, src.stream, (dg) => {
          finals.push(dg);
          return blobKey(dg);
        }, 'application/octet-stream'),
        /half-way/,
      );
      assert.ok(src.produced() >= 1024 * 1024, 'the failure came after data flowed');
      assert.deepEqual(finals, [], 'no final key was computed');
      assert.deepEqual(rec.moves, []);
      assert.equal(rec.writes.length, 1);
      // Let any in-flight upload settle, then check nothing stayed behind.
      await sleep(500);
      assert.equal(await d.stat(rec.writes[0]!), null, 'staging object left behind');
      assert.equal(await d.stat(blobKey(`sha256:${seen.digest('hex')}` as Digest)), null);
    });
  });
}
