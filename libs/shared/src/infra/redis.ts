import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions, ReplyError } from 'ioredis';
import type { Failure } from '../core/failure';

/** How to reach Redis: a redis:// URL or a unix socket path. */
export type RedisTarget = { url: string } | { path: string };

/**
 * Opens a Redis connection suitable for BullMQ (no per-request retry limit).
 * A lost connection is retried every 50 ms more, at most every 500 ms
 * (ioredis's default goes up to 2 s), so every connection of a process is
 * back within half a second of Redis, not some of them seconds later.
 */
export function connectRedis(target: RedisTarget, extra: RedisOptions = {}): Redis {
  const opts: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy: (times) => Math.min(times * 50, 500), ...extra };
  return 'url' in target ? new Redis(target.url, opts) : new Redis({ ...opts, path: target.path });
}

/**
 * Redis's error replies that mean it is up but refuses writes for now: a failed
 * background save (`MISCONF`), maxmemory under noeviction (`OOM`), a replica
 * (`READONLY`), loading its data set (`LOADING`), no quorum of replicas
 * (`NOREPLICAS`), a replica cut off from its master (`MASTERDOWN`).
 */
const REFUSALS = new Set(['MISCONF', 'OOM', 'READONLY', 'LOADING', 'NOREPLICAS', 'MASTERDOWN']);

/**
 * The `state_unavailable` failure for an error reply by which Redis refuses
 * writes, recognised by ioredis' `ReplyError` and the reply's first word (the
 * error code Redis sends; a script's error keeps it in Redis 7); null for
 * anything else.
 */
export function redisRefusal(err: unknown): Failure | null {
  if (!(err instanceof ReplyError)) return null;
  const code = /^[A-Z]+/.exec((err as Error).message)?.[0];
  if (code === 'EXECABORT') {
    // A MULTI whose queued commands were refused: ioredis keeps their replies in `previousErrors`.
    for (const prev of (err as { previousErrors?: unknown[] }).previousErrors ?? []) {
      const f = redisRefusal(prev);
      if (f) return f;
    }
    return null;
  }
  return code && REFUSALS.has(code) ? { kind: 'state_unavailable', what: 'its Redis', refusal: code } : null;
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
    gcPulls: `${prefix}:gc:pulls`,
    gcUses: `${prefix}:gc:uses`,
    gcClaim: (digest: string) => `${prefix}:gc:claim:${digest}`,
    gcCollected: `${prefix}:gc:collected`,
    gcLock: `${prefix}:gc:lock`,
    negative: (buildKey: string) => `${prefix}:negative:${buildKey}`,
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;

const RELEASE_LUA = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW_LUA = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/** A Redis key held by this process; `release` deletes it if still ours and is safe to call twice. */
export interface HeldKey {
  release(): Promise<void>;
}

/**
 * Sets `key` to a fresh token with a TTL and keeps renewing it while held, so
 * it expires by itself if the holder dies. With `onlyIfFree` (a lock) it
 * returns null when someone else holds the key. Renewal and release touch the
 * key only while it still holds this token.
 */
export async function holdKey(redis: Redis, key: string, ttlMs: number, opts: { onlyIfFree: boolean }): Promise<HeldKey | null> {
  const token = randomUUID();
  const ok = opts.onlyIfFree ? await redis.set(key, token, 'PX', ttlMs, 'NX') : await redis.set(key, token, 'PX', ttlMs);
  if (ok !== 'OK') return null;
  const timer = setInterval(() => {
    redis.eval(RENEW_LUA, 1, key, token, String(ttlMs)).catch(() => undefined);
  }, Math.max(500, Math.floor(ttlMs / 3)));
  timer.unref();
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      clearInterval(timer);
      await redis.eval(RELEASE_LUA, 1, key, token).catch(() => undefined);
    },
  };
}

/**
 * Deletes every key matching `pattern` (a SCAN pattern) whose string value
 * `doomed` picks, reading values in batches; resolves with how many it
 * deleted. For occasional sweeps (the storage collector), not request paths:
 * SCAN walks the whole keyspace.
 */
export async function deleteMatching(redis: Redis, pattern: string, doomed: (value: string) => boolean): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length === 0) continue;
    const values = await redis.mget(...keys);
    const gone = keys.filter((_k, i) => values[i] !== null && doomed(values[i]!));
    if (gone.length > 0) deleted += await redis.del(...gone);
  } while (cursor !== '0');
  return deleted;
}
