import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaTypes } from '../core/media-types';
import type { Logger } from '../infra/logger';
import type { StorageUsage } from '../records';
import { putStaged, blobKey, type StorageDriver } from '../storage';
import { compressAndHash } from '../tarball';
import type { CachedLayer, LayerStore } from './layer-cache';

/** What packing a layer needs. */
export interface LayerDeps {
  storage: StorageDriver;
  layerCache: LayerStore;
  log: Logger;
  /** Called with the bytes of each layer this build packed. */
  onLayerPacked?: (bytes: number) => void;
  /** Called for every layer found in the layer cache instead of packed. */
  onLayerCacheHit?: () => void;
  /**
   * The storage collector's use records: a cache hit and a packed layer
   * (before its move) are recorded, and wait while the collector is deleting
   * that blob (see `collect/collector.ts`). None in tests without Redis.
   */
  usage?: Pick<StorageUsage, 'use'>;
}

/** The key of a layer: a hash of its sorted store paths (same paths -> same key on any worker). */
export function layerKey(paths: readonly string[]): string {
  return createHash('sha256').update([...paths].sort().join('\n')).digest('hex');
}

/**
 * The cached layer for `key` when its blob is really in storage (counted as a
 * cache hit), else null. The use is recorded before the blob is looked at, so
 * the collector cannot delete it after the look.
 */
async function cachedLayer(deps: LayerDeps, key: string, signal: AbortSignal): Promise<CachedLayer | null> {
  const cached = await deps.layerCache.get(key);
  if (!cached) return null;
  await deps.usage?.use([cached.digest], { signal });
  if (!(await deps.storage.stat(blobKey(cached.digest)))) return null;
  deps.onLayerCacheHit?.();
  return cached;
}

/**
 * Returns the layer for `key` from the cache, or packs it. Only one worker in
 * the cluster packs a given key at a time: the others wait for its result.
 */
export async function ensureLayer(
  deps: LayerDeps,
  key: string,
  makeTar: () => Readable,
  signal: AbortSignal,
): Promise<{ layer: CachedLayer; packed: boolean }> {
  for (;;) {
    signal.throwIfAborted();
    const cached = await cachedLayer(deps, key, signal);
    if (cached) return { layer: cached, packed: false };
    const lock = await deps.layerCache.tryLock(key);
    if (!lock) {
      await sleep(200, undefined, { signal });
      continue;
    }
    try {
      const again = await cachedLayer(deps, key, signal);
      if (again) return { layer: again, packed: false };
      const { stream, done } = compressAndHash(makeTar());
      const onAbort = () => stream.destroy(new Error('build aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const usage = deps.usage;
        const beforeMove = usage ? (d: string) => usage.use([d], { signal }) : undefined;
        const blob = await putStaged(deps.storage, stream, blobKey, MediaTypes.dockerLayer, beforeMove ? { beforeMove } : {});
        const { diffId } = await done;
        const layer: CachedLayer = { digest: blob.digest, diffId, size: blob.size };
        await deps.layerCache.put(key, layer);
        deps.onLayerPacked?.(blob.size);
        deps.log.debug({ layerKey: key, digest: blob.digest, size: blob.size }, 'packed layer');
        return { layer, packed: true };
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } finally {
      await lock.release();
    }
  }
}
