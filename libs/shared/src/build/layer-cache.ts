import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Digest } from '../digest';
import type { RedisKeys } from '../redis';

/** A layer that exists in storage. */
export interface CachedLayer {
  digest: Digest;
  diffId: Digest;
  size: number;
}

const RELEASE_LUA = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW_LUA = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/** A held lock; `release` is safe to call twice. */
export interface LayerLock {
  release(): Promise<void>;
}

/**
 * The cluster-wide layer cache (layer key -> blob) and per-layer locks in Redis.
 * A lock expires after `ttlMs` unless its holder renews it, so a dead worker's
 * lock frees itself.
 */
export class LayerCache {
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

  /** Tries to take the lock for `layerKey`; null when another holder has it. Renews itself until released. */
  async tryLock(layerKey: string): Promise<LayerLock | null> {
    const key = this.keys.layerLock(layerKey);
    const token = randomUUID();
    const ok = await this.redis.set(key, token, 'PX', this.ttlMs, 'NX');
    if (ok !== 'OK') return null;
    const timer = setInterval(() => {
      this.redis.eval(RENEW_LUA, 1, key, token, String(this.ttlMs)).catch(() => undefined);
    }, Math.max(500, Math.floor(this.ttlMs / 3)));
    timer.unref();
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        await this.redis.eval(RELEASE_LUA, 1, key, token).catch(() => undefined);
      },
    };
  }
}
