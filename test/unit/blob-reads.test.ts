/**
 * Blob reads of the filesystem driver (issue 15): a served file comes in
 * large reads (256 KiB, not Node's 64 KiB), handed over as the file's own
 * read stream, and ranges still give exactly their bytes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { sha256Digest } from '../../libs/shared/src/core/digest';
import type { StorageDriver } from '../../libs/shared/src/storage/driver';
import { createFilesystemDriver } from '../../libs/shared/src/storage/filesystem';
import { blobKey } from '../../libs/shared/src/storage/keys';

const CHUNK = 256 * 1024;

describe('filesystem blob reads (issue 15)', () => {
  let dir: string;
  let d: StorageDriver;
  const bytes = randomBytes(5 * CHUNK + 12345);
  const key = blobKey(sha256Digest(bytes));

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-blob-reads-'));
    d = createFilesystemDriver(dir);
    await d.write(key, Readable.from([bytes]));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a whole file comes in 256 KiB reads', async () => {
    const obj = (await d.read(key))!;
    assert.equal(obj.size, bytes.length);
    const sizes: number[] = [];
    const got: Buffer[] = [];
    for await (const c of obj.stream) {
      sizes.push((c as Buffer).length);
      got.push(c as Buffer);
    }
    assert.deepEqual(Buffer.concat(got), bytes);
    assert.equal(sizes.length, Math.ceil(bytes.length / CHUNK), `read sizes ${sizes.join(',')}`);
    assert.ok(sizes.slice(0, -1).every((n) => n === CHUNK));
  });

  test('a range gives exactly its bytes, across chunk boundaries', async () => {
    const start = CHUNK - 7;
    const end = 3 * CHUNK + 100;
    const obj = (await d.read(key, { start, end }))!;
    assert.equal(obj.size, bytes.length);
    const got: Buffer[] = [];
    for await (const c of obj.stream) got.push(c as Buffer);
    assert.deepEqual(Buffer.concat(got), bytes.subarray(start, end + 1));
  });
});
