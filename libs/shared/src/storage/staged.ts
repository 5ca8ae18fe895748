import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashCounter } from '../core/counters';
import type { Digest } from '../core/digest';
import { failureOf } from '../core/failure';
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
 * on any failure the staging object is deleted (the filesystem driver also
 * removes its partial file; what a killed process leaves, the staging
 * sweeper removes), and a storage failure (`storage_full`,
 * `storage_unavailable`) is what it throws, even when the broken pipe into
 * the write reported first. `beforeMove`, when given, is awaited with the
 * digest between the hash and the move (the storage collector's use record:
 * see `collect/collector.ts`).
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
    // A failing write also breaks the pipe into it, whose raw error may come first: the
    // driver's own rejection says what failed (a full disk, an I/O error) as a failure.
    const writeErr = await writing.then(() => null, (e: unknown) => e);
    await storage.delete(staging).catch(() => undefined);
    throw failureOf(writeErr) ? writeErr : err;
  }
}
