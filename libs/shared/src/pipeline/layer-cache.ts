import type { Redis } from 'ioredis';
import type { Digest } from '../core/digest';
import { type HeldKey, type RedisKeys, deleteMatching, holdKey } from '../infra/redis';

/** A layer that exists in storage. */
export interface CachedLayer {
  digest: Digest;
  diffId: Digest;
  size: number;
}

/** Where built layers are found and who packs a layer: the Redis cache below, or a map in tests. */
export interface LayerStore {
  /** The cached layer for a layer key, or null. */
  get(layerKey: string): Promise<CachedLayer | null>;
  /** Records a packed layer. */
  put(layerKey: string, layer: CachedLayer): Promise<void>;
  /** Tries to take the lock for `layerKey`; null when another holder has it. */
  tryLock(layerKey: string): Promise<HeldKey | null>;
}

/**
 * The cluster-wide layer cache (layer key -> blob) and per-layer locks in Redis.
 * A lock expires after `ttlMs` unless its holder renews it, so a dead worker's
 * lock frees itself.
 */
export class LayerCache implements LayerStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly ttlMs: number,
  ) {}

  async get(layerKey: string): Promise<CachedLayer | null> {
    const v = await this.redis.get(this.keys.layer(layerKey));
    return v ? (JSON.parse(v) as CachedLayer) : null;
  }

  async put(layerKey: string, layer: CachedLayer): Promise<void> {
    await this.redis.set(this.keys.layer(layerKey), JSON.stringify(layer));
  }

  /** Deletes the entries that point at collected blobs (the storage collector; it scans every entry). Resolves with how many. */
  forgetBlobs(digests: ReadonlySet<string>): Promise<number> {
    if (digests.size === 0) return Promise.resolve(0);
    return deleteMatching(this.redis, this.keys.layer('*'), (v) => {
      try {
        return digests.has((JSON.parse(v) as CachedLayer).digest);
      } catch {
        return false;
      }
    });
  }

  /** Tries to take the lock for `layerKey`; null when another holder has it. Renews itself until released. */
  tryLock(layerKey: string): Promise<HeldKey | null> {
    return holdKey(this.redis, this.keys.layerLock(layerKey), this.ttlMs, { onlyIfFree: true });
  }
}
