/**
 * Blob reads of the filesystem driver (issue 15): a served file comes in
 * 1 MiB reads, one read ahead of its consumer, and `sendTo` writes it to a
 * socket from two reused buffers. Ranges still give exactly their bytes; a
 * buffer is read into again only after its write completed; a destination
 * that goes away ends the send and closes the file.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { sha256Digest } from '../../libs/shared/src/core/digest';
import type { StorageDriver } from '../../libs/shared/src/storage/driver';
import { FILE_READ_CHUNK as CHUNK } from '../../libs/shared/src/storage/file-stream';
import { createFilesystemDriver } from '../../libs/shared/src/storage/filesystem';
import { blobKey } from '../../libs/shared/src/storage/keys';

/** Open descriptors of this process. */
const openFds = async () => (await readdir('/proc/self/fd')).length;

/**
 * A destination that completes each write later (as a slow socket does) and
 * checks, when it does, that the bytes it was handed did not change meanwhile:
 * a sender that read into a buffer still being written would fail that.
 */
class SlowCheckingSink extends Writable {
  readonly got: Buffer[] = [];
  changed = 0;
  override _write(chunk: Buffer, _enc: string, cb: (err?: Error | null) => void): void {
    const copy = Buffer.from(chunk);
    this.got.push(copy);
    setTimeout(() => {
      if (!chunk.equals(copy)) this.changed++;
      cb();
    }, 5);
  }
}

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

  test('a whole file comes in 1 MiB reads', async () => {
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

  test('a range gives exactly its bytes, across chunk boundaries, by stream and by sendTo', async () => {
    const start = CHUNK - 7;
    const end = 3 * CHUNK + 100;
    const obj = (await d.read(key, { start, end }))!;
    assert.equal(obj.size, bytes.length);
    const got: Buffer[] = [];
    for await (const c of obj.stream) got.push(c as Buffer);
    assert.deepEqual(Buffer.concat(got), bytes.subarray(start, end + 1));
    const sink = new SlowCheckingSink();
    await (await d.read(key, { start, end }))!.sendTo!(sink);
    assert.deepEqual(Buffer.concat(sink.got), bytes.subarray(start, end + 1));
  });

  test('sendTo reuses its buffers only after their writes completed, and closes the file', async () => {
    const fds = await openFds();
    for (let i = 0; i < 3; i++) {
      // Three sends in a row: the later ones get the buffers the earlier ones gave back.
      const sink = new SlowCheckingSink();
      await (await d.read(key))!.sendTo!(sink);
      assert.equal(sink.changed, 0, 'a chunk changed before its write completed');
      assert.deepEqual(Buffer.concat(sink.got), bytes);
    }
    assert.equal(await openFds(), fds);
  });

  test('a destination that closes mid-send ends the send with an error and closes the file', async () => {
    const fds = await openFds();
    // Its writes never complete: only its closing can end the send.
    const stuck = new Writable({ write: () => undefined });
    const sending = (await d.read(key))!.sendTo!(stuck);
    setTimeout(() => stuck.destroy(), 50);
    await assert.rejects(sending);
    assert.equal(await openFds(), fds);
  });

  test('a reader is read once: through its stream or through sendTo', async () => {
    const obj = (await d.read(key))!;
    obj.stream.resume();
    await assert.rejects(async () => obj.sendTo!(new SlowCheckingSink()), /read once/);
  });
});
