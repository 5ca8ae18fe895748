import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashCounter } from '../core/counters';
import type { Digest } from '../core/digest';
import type { StorageDriver, StorageKey } from './driver';
import { stagingKey } from './keys';

/** A blob written to storage: its digest and size. */
export interface StoredBlob {
  digest: Digest;
  size: number;
}

/**
 * Streams `source` to a staging key while hashing it, then moves it to
 * `finalKey(digest)`. The final key only ever holds complete, verified bytes;
 * on any failure the staging object is deleted. `beforeMove`, when given, is
 * awaited with the digest between the hash and the move (the storage
 * collector's use record: see `collect/collector.ts`).
 */
export async function putStaged(
  storage: StorageDriver,
  source: Readable,
  finalKey: (d: Digest) => StorageKey,
  contentType: string,
  opts: { beforeMove?: (digest: Digest) => Promise<void> } = {},
): Promise<StoredBlob> {
  const staging = stagingKey();
  const hasher = new HashCounter();
  const out = new PassThrough();
  const writing = storage.write(staging, out, { contentType });
  try {
    const [, written] = await Promise.all([pipeline(source, hasher, out), writing]);
    const digest = hasher.digest();
    if (written.size !== hasher.bytes) throw new Error(`short write: ${written.size} of ${hasher.bytes} bytes`);
    await opts.beforeMove?.(digest);
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
