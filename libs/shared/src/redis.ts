import { Redis, type RedisOptions } from 'ioredis';

/** How to reach Redis: a redis:// URL or a unix socket path. */
export type RedisTarget = { url: string } | { path: string };

/** Opens a Redis connection suitable for BullMQ (no per-request retry limit). */
export function connectRedis(target: RedisTarget, extra: RedisOptions = {}): Redis {
  const opts: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: true, ...extra };
  return 'url' in target ? new Redis(target.url, opts) : new Redis({ ...opts, path: target.path });
}

/** Key names under one prefix, so several instances can share a Redis. */
export function redisKeys(prefix: string) {
  return {
    manifestByBuild: (buildKey: string) => `${prefix}:manifest:build:${buildKey}`,
    manifestByDigest: (digest: string) => `${prefix}:manifest:digest:${digest}`,
    layer: (layerKey: string) => `${prefix}:layer:${layerKey}`,
    layerLock: (layerKey: string) => `${prefix}:lock:layer:${layerKey}`,
    popularity: `${prefix}:popularity`,
    popularityMeta: `${prefix}:popularity:meta`,
    stats: `${prefix}:stats`,
    resolved: (what: string) => `${prefix}:resolved:${what}`,
    statusRecent: `${prefix}:status:recent`,
    statusFailures: `${prefix}:status:failures`,
    statusImage: (manifestDigest: string) => `${prefix}:status:image:${manifestDigest}`,
    statusLayerUsers: (layerDigest: string) => `${prefix}:status:layer-users:${layerDigest}`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
