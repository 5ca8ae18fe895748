/**
 * HashCounter and putStaged (libs/shared/src/blobs.ts), with the real
 * filesystem driver in a temp dir.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { HashCounter } from '../../libs/shared/src/core/counters';
import { putStaged } from '../../libs/shared/src/storage/staged';
import { digestHex, sha256Digest } from '../../libs/shared/src/core/digest';
import type { StorageDriver } from '../../libs/shared/src/storage/driver';
import { createFilesystemDriver } from '../../libs/shared/src/storage/filesystem';
import { blobKey, manifestKey } from '../../libs/shared/src/storage/keys';

/** Pipes `chunks` through a HashCounter and returns it with the bytes that came out. */
async function throughHasher(chunks: Buffer[]): Promise<{ h: HashCounter; out: Buffer }> {
  const h = new HashCounter();
  const got: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => got.push(c));
  await pipeline(Readable.from(chunks), h, sink);
  return { h, out: Buffer.concat(got) };
}

async function listFiles(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** Polls `get` until `ok` holds or 2 s pass; returns the last value. */
async function settled<T>(get: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 2000;
  let v = await get();
  while (!ok(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    v = await get();
  }
  return v;
}

describe('HashCounter', () => {
  test('known sha256 vectors', async () => {
    const empty = await throughHasher([]);
    assert.equal(empty.h.digest(), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(empty.h.bytes, 0);
    const abc = await throughHasher([Buffer.from('a'), Buffer.from('bc')]);
    assert.equal(abc.h.digest(), 'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(abc.h.bytes, 3);
  });

  test('passes every byte through unchanged and counts them across chunks', async () => {
    const data = randomBytes(1_000_003);
    const chunks = [data.subarray(0, 1), data.subarray(1, 70_000), data.subarray(70_000)];
    const { h, out } = await throughHasher(chunks);
    assert.deepEqual(out, data);
    assert.equal(h.bytes, data.length);
    assert.equal(h.digest(), sha256Digest(data));
  });
});

describe('putStaged with the filesystem driver', () => {
  let root: string;
  let fsd: StorageDriver;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'blobs-'));
    fsd = createFilesystemDriver(root);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('stores the bytes under their digest and leaves no staging file', async () => {
    const data = randomBytes(2 * 1024 * 1024 + 17);
    const chunks = [];
    for (let i = 0; i < data.length; i += 65_536) chunks.push(data.subarray(i, i + 65_536));
    const blob = await putStaged(fsd, Readable.from(chunks), blobKey, 'application/octet-stream');
    const expected = createHash('sha256').update(data).digest('hex');
    assert.equal(blob.digest, `sha256:${expected}`);
    assert.equal(blob.size, data.length);
    assert.deepEqual(await readFile(path.join(root, 'layers', expected)), data);
    assert.deepEqual(await listFiles(path.join(root, 'staging')), []);
  });

  test('uses the key function it is given (manifests) and is idempotent for the same bytes', async () => {
    const body = Buffer.from('{"schemaVersion":2}');
    const a = await putStaged(fsd, Readable.from([body]), manifestKey, 'application/vnd.oci.image.manifest.v1+json');
    const b = await putStaged(fsd, Readable.from([body]), manifestKey, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(a.digest, sha256Digest(body));
    assert.deepEqual(a, b);
    assert.deepEqual(await readFile(path.join(root, 'manifests', digestHex(a.digest))), body);
    assert.deepEqual(await listFiles(path.join(root, 'staging')), []);
  });

  test('a source failing half-way leaves no final file and no staging file', async () => {
    const before = await listFiles(path.join(root, 'layers'));
    let sent = 0;
    const source = new Readable({
      read() {
        if (sent >= 512 * 1024) {
          this.destroy(new Error('source broke'));
          return;
        }
        sent += 64 * 1024;
        this.push(randomBytes(64 * 1024));
      },
    });
    await assert.rejects(putStaged(fsd, source, blobKey, 'application/octet-stream'), /source broke/);
    assert.ok(sent >= 512 * 1024);
    assert.deepEqual(await listFiles(path.join(root, 'layers')), before);
    // putStaged rejects as soon as the source fails, while the driver's write
    // may still be removing its temporary file: allow it a moment.
    assert.deepEqual(await settled(() => listFiles(path.join(root, 'staging')), (l) => l.length === 0), []);
  });

  test('a driver that reports a short write makes putStaged fail and clean up', async () => {
    // The real driver, with its reported size off by one (a truncating backend).
    const lying: StorageDriver = {
      ...fsd,
      write: async (k, s, o) => {
        const r = await fsd.write(k, s, o);
        return { size: r.size - 1 };
      },
    };
    const data = randomBytes(1000);
    await assert.rejects(putStaged(lying, Readable.from([data]), blobKey, 'application/octet-stream'), /short write/);
    await assert.rejects(readFile(path.join(root, 'layers', digestHex(sha256Digest(data)))), { code: 'ENOENT' });
    assert.deepEqual(await listFiles(path.join(root, 'staging')), []);
  });
});
