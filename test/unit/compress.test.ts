/**
 * Layer compression as concatenated gzip members: the same bytes whatever the
 * parallelism and however the tar arrives, readable by Debian's gunzip and by
 * Node's zlib, hashes of the whole uncompressed tar, bounded work in flight.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { MEMBER_SIZE, compressAndHash, type CompressOptions } from '../../libs/shared/src/tarball';
import { gzipMembers } from '../helpers/gzip-members';

/** Compressible but not trivial bytes: text-like runs from a fixed-seed generator. */
function sample(size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = 12345;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = 97 + ((x >>> 16) % (i % 4096 < 2048 ? 4 : 26));
  }
  return b;
}

function* pieces(buf: Buffer, size: number): Generator<Buffer> {
  for (let off = 0; off < buf.length; off += size) yield buf.subarray(off, off + size);
}

async function compress(input: Buffer, pieceSize: number, opts: CompressOptions = {}) {
  const { stream, done } = compressAndHash(Readable.from(pieces(input, pieceSize)), opts);
  const parts: Buffer[] = [];
  for await (const b of stream) parts.push(b as Buffer);
  return { gz: Buffer.concat(parts), info: await done };
}

const INPUT = sample(3 * MEMBER_SIZE + 12_345); // four members, the last one short
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('compressAndHash (gzip members)', () => {
  test('1 and 8 parallel compressors and any input chunking give identical bytes', async () => {
    const one = await compress(INPUT, 64 * 1024, { parallel: 1 });
    const eight = await compress(INPUT, 7_777, { parallel: 8 });
    const whole = await compress(INPUT, INPUT.length);
    assert.ok(one.gz.equals(eight.gz), 'parallel 1 and 8 differ');
    assert.ok(one.gz.equals(whole.gz), 'default parallelism with one input chunk differs');
    assert.equal(one.info.diffId, sha256(INPUT));
    assert.equal(one.info.uncompressedSize, INPUT.length);
  });

  test('members split at fixed offsets with fixed headers; gunzip and zlib read the whole tar', async () => {
    const { gz } = await compress(INPUT, 100_000);
    const members = gzipMembers(gz);
    assert.deepEqual(
      members.map((m) => m.data.length),
      [MEMBER_SIZE, MEMBER_SIZE, MEMBER_SIZE, 12_345],
    );
    for (const m of members) {
      assert.equal(m.mtime, 0);
      assert.equal(m.os, 3);
    }
    assert.ok(Buffer.concat(members.map((m) => m.data)).equals(INPUT));
    assert.ok(gunzipSync(gz).equals(INPUT), "Node's zlib reads all members");
    assert.ok(execFileSync('gzip', ['-dc'], { input: gz, maxBuffer: 64 * 1024 * 1024 }).equals(INPUT), 'Debian gunzip reads all members');
    execFileSync('gzip', ['-t'], { input: gz });
  });

  test('an empty tar gives one empty member', async () => {
    const { gz, info } = await compress(Buffer.alloc(0), 1);
    assert.equal(gzipMembers(gz).length, 1);
    assert.equal(gunzipSync(gz).length, 0);
    assert.equal(info.uncompressedSize, 0);
  });

  test('a failing tar fails the stream and done', async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield INPUT.subarray(0, 2 * MEMBER_SIZE);
      throw new Error('disk on fire');
    }
    const { stream, done } = compressAndHash(Readable.from(failing()));
    await assert.rejects(async () => {
      for await (const _ of stream);
    }, /disk on fire/);
    await assert.rejects(done, /disk on fire/);
  });

  test('destroying the stream early stops reading the tar and rejects done', async () => {
    let read = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      for (;;) {
        read += 64 * 1024;
        yield INPUT.subarray(0, 64 * 1024);
      }
    }
    const { stream, done } = compressAndHash(Readable.from(endless()), { parallel: 2 });
    for await (const _ of stream) break; // destroys the stream after the first member
    await assert.rejects(done);
    const before = read;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(read, before, 'the tar is no longer read');
    assert.ok(read <= 8 * MEMBER_SIZE, `read ${read} bytes ahead for one member: work in flight is bounded`);
  });
});
