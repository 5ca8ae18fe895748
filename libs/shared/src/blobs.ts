import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Digest, digestFromHex } from './digest';
import type { StorageDriver, StorageKey } from './storage/driver';
import { ByteCounter } from './storage/byte-counter';
import { stagingKey } from './storage/keys';

/** A blob written to storage: its digest and size. */
export interface StoredBlob {
  digest: Digest;
  size: number;
}

/** A pass-through stream that hashes (sha256) and counts what flows through it. */
export class HashCounter extends ByteCounter {
  private readonly hash = createHash('sha256');
  override _transform(chunk: Buffer, enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    super._transform(chunk, enc, cb);
  }
  /** The digest of everything seen; call once, after the stream ended. */
  digest(): Digest {
    return digestFromHex(this.hash.digest('hex'));
  }
}

/**
 * Streams `source` to a staging key while hashing it, then moves it to
 * `finalKey(digest)`. The final key only ever holds complete, verified bytes;
 * on any failure the staging object is deleted.
 */
export async function putStaged(
  storage: StorageDriver,
  source: Readable,
  finalKey: (d: Digest) => StorageKey,
  contentType: string,
): Promise<StoredBlob> {
  const staging = stagingKey();
  const hasher = new HashCounter();
  const out = new PassThrough();
  const writing = storage.write(staging, out, { contentType });
  try {
    const [, written] = await Promise.all([pipeline(source, hasher, out), writing]);
    const digest = hasher.digest();
    if (written.size !== hasher.bytes) throw new Error(`short write: ${written.size} of ${hasher.bytes} bytes`);
    await storage.move(staging, finalKey(digest));
    return { digest, size: hasher.bytes };
  } catch (err) {
    source.destroy();
    out.destroy();
    await writing.catch(() => undefined);
    await storage.delete(staging).catch(() => undefined);
    throw err;
  }
}
