/**
 * Layer compression: the tar is cut into fixed-size pieces and each piece is
 * gzipped as its own gzip member, several at a time on libuv's thread pool;
 * the members are concatenated in input order. A gzip file made of several
 * members is one valid gzip stream (RFC 1952 section 2.2): `gunzip`, Go's
 * `compress/gzip` (Docker, containerd, skopeo, umoci) and Node's zlib all
 * read it as the concatenation of the pieces.
 *
 * Reproducible: the cut points depend only on byte offsets in the tar, each
 * member is compressed alone with a fixed level, and Node writes every gzip
 * header with mtime 0, no name and OS byte 3. So the same tar gives the same
 * bytes whatever the number of cores, the machine's load or the order in
 * which the pieces finish.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { type Digest, digestFromHex } from '../core/digest';

/** What {@link compressAndHash} learns about the uncompressed tar. */
export interface UncompressedInfo {
  /** sha256 of the uncompressed tar: the layer's `diff_id` in the image config. */
  diffId: Digest;
  /** Size of the uncompressed tar in bytes. */
  uncompressedSize: number;
}

/**
 * Gzip level used for every layer, chosen with `npm run bench:pack` (see the
 * README's packing section). Fixed: changing it changes every layer digest.
 */
export const GZIP_LEVEL = 4;

/**
 * Uncompressed bytes per gzip member. Fixed: changing it changes every layer
 * digest. 1 MiB costs about 0.5% of size against one member (each member
 * starts with an empty dictionary) and keeps a few pieces in flight small.
 */
export const MEMBER_SIZE = 1024 * 1024;

/** Options of {@link compressAndHash}; the defaults are what the worker uses. */
export interface CompressOptions {
  /** Gzip level. Default: {@link GZIP_LEVEL}. Other values exist for the benchmark's per-level table. */
  level?: number;
  /** Uncompressed bytes per member. Default: {@link MEMBER_SIZE}. */
  memberSize?: number;
  /**
   * Members compressed at the same time (the output does not depend on it).
   * Default: the number of cores plus one, so a core is never idle while the
   * tar walk prepares the next piece. Memory held is about
   * `(parallel + 1) * memberSize` plus their compressed forms.
   */
  parallel?: number;
}

const gzipAsync = promisify(gzip);
/** Output bytes beyond the input a member may need: gzip header and trailer, deflate block overhead. */
const MEMBER_SLACK = 64 * 1024;

/**
 * Gzips `tar` as concatenated gzip members while hashing its uncompressed
 * bytes. Read `stream` (e.g. hand it to `putStaged`, which digests the
 * compressed bytes); `done` settles once the tar has been fully read, with
 * the diff_id and uncompressed size, or with the first error of the tar or
 * the compressor (which also destroys `stream`), or when `stream` is
 * destroyed before the end. `done` never causes an unhandled rejection if
 * ignored, but callers should await it.
 *
 * Back-pressure: no more of the tar is read while `parallel` pieces wait to
 * be read from `stream`, so memory does not grow with the layer's size.
 */
export function compressAndHash(tar: Readable, opts: CompressOptions = {}): { stream: Readable; done: Promise<UncompressedInfo> } {
  const settings = {
    level: opts.level ?? GZIP_LEVEL,
    memberSize: opts.memberSize ?? MEMBER_SIZE,
    parallel: Math.max(1, opts.parallel ?? os.availableParallelism() + 1),
  };
  let settle!: { resolve: (info: UncompressedInfo) => void; reject: (err: Error) => void };
  const done = new Promise<UncompressedInfo>((resolve, reject) => {
    settle = { resolve, reject };
  });
  done.catch(() => undefined);
  const stream = Readable.from(gzipMembers(tar, settings, settle), { objectMode: false, highWaterMark: 1 });
  stream.on('error', (err) => settle.reject(err));
  stream.on('close', () => settle.reject(new Error('compressed stream closed before the end of the tar')));
  return { stream, done };
}

/** Yields the gzip members of `tar`'s fixed-size pieces in order, at most `parallel` compressing at once. */
async function* gzipMembers(
  tar: AsyncIterable<Buffer>,
  { level, memberSize, parallel }: Required<CompressOptions>,
  settle: { resolve: (info: UncompressedInfo) => void },
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  let total = 0;
  const pending: Promise<Buffer>[] = [];
  const start = (piece: Buffer): void => {
    // One output buffer that holds the whole member (deflate grows incompressible bytes by well under 1%):
    // the member is compressed in one thread-pool task instead of one per 16 KiB of output (issue 15).
    const member = gzipAsync(piece, { level, chunkSize: piece.length + MEMBER_SLACK });
    member.catch(() => undefined); // awaited in order below; never an unhandled rejection
    pending.push(member);
  };
  let piece = Buffer.allocUnsafe(memberSize);
  let filled = 0;
  for await (const chunk of tar) {
    hash.update(chunk);
    total += chunk.length;
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(memberSize - filled, chunk.length - off);
      chunk.copy(piece, filled, off, off + n);
      filled += n;
      off += n;
      if (filled === memberSize) {
        start(piece);
        piece = Buffer.allocUnsafe(memberSize);
        filled = 0;
        if (pending.length >= parallel) yield await pending.shift()!;
      }
    }
  }
  // An empty tar still gives one (empty) member: a gzip file is never zero bytes.
  if (filled > 0 || total === 0) start(piece.subarray(0, filled));
  while (pending.length > 0) yield await pending.shift()!;
  settle.resolve({ diffId: digestFromHex(hash.digest('hex')), uncompressedSize: total });
}
