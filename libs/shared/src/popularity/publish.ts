import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Popularity } from '../core/graph';
import type { PopularityMeta } from './reader';
import { type HeldKey, holdKey } from '../infra/redis';
import type { PopcountKeys } from './keys';

/** Renames the staged table into place, gives it the next version and writes its metadata, in one step. */
const PUBLISH_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('staged popularity table is gone') end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PERSIST', KEYS[2])
local v = redis.call('INCR', KEYS[4])
redis.call('SET', KEYS[3], '{"version":' .. v .. ',' .. string.sub(ARGV[1], 2))
return v
`;

/**
 * Publishes a popularity table atomically: the table is written to a staging
 * key, then one Lua script renames it over the current table and writes the
 * metadata with a new version. Readers see the old table or the new one,
 * never a mix. Returns the new version.
 */
export async function publishPopularity(
  redis: Redis,
  keys: PopcountKeys,
  table: Popularity,
  meta: Omit<PopularityMeta, 'version'>,
): Promise<number> {
  const staging = keys.staging(randomUUID());
  await redis.set(staging, JSON.stringify(table), 'PX', 3_600_000);
  try {
    const v = await redis.eval(PUBLISH_LUA, 4, staging, keys.table, keys.meta, keys.version, JSON.stringify(meta));
    return Number(v);
  } finally {
    await redis.del(staging).catch(() => undefined);
  }
}

/** Reads the current metadata, or null when no table was published. */
export async function readPopularityMeta(redis: Redis, keys: PopcountKeys): Promise<PopularityMeta | null> {
  const text = await redis.get(keys.meta);
  return text ? (JSON.parse(text) as PopularityMeta) : null;
}

/** One finished run, as kept in the run log. */
export interface PopcountRunRecord {
  /** BullMQ job id, or "cli" for `npm run popcount`. */
  jobId: string;
  /** Who ran it: host name and process id. */
  runner: string;
  startedAt: string;
  durationMs: number;
  ok: boolean;
  /** Published version (ok) or error message (failed). */
  version?: number;
  error?: string;
}

/** Appends a run to the log (newest first, the last 100 kept). */
export async function recordPopcountRun(redis: Redis, keys: PopcountKeys, run: PopcountRunRecord): Promise<void> {
  await redis.multi().lpush(keys.runs, JSON.stringify(run)).ltrim(keys.runs, 0, 99).exec();
}

/** The last runs, newest first. */
export async function listPopcountRuns(redis: Redis, keys: PopcountKeys, count = 100): Promise<PopcountRunRecord[]> {
  return (await redis.lrange(keys.runs, 0, count - 1)).map((l) => JSON.parse(l) as PopcountRunRecord);
}

/**
 * Marks a run as in progress (readers with no table wait for it) until
 * `release` is called; the mark expires by itself if the process dies.
 */
export async function markRunning(redis: Redis, keys: PopcountKeys, ttlMs = 60_000): Promise<HeldKey> {
  const held = await holdKey(redis, keys.running, ttlMs, { onlyIfFree: false });
  if (!held) throw new Error('could not set the popularity run mark');
  return held;
}

/**
 * References read from narinfo files, kept between runs: store paths never
 * change, so a path's references are fetched once. Holds the entries of the
 * last successful run only (replaced as a whole), so it does not grow.
 */
export class NarinfoCache {
  constructor(
    private readonly redis: Redis,
    private readonly keys: PopcountKeys,
  ) {}

  /** Cached references of the given hashes. */
  async load(hashes: readonly string[]): Promise<Map<string, string[]>> {
    const found = new Map<string, string[]>();
    for (let i = 0; i < hashes.length; i += 1000) {
      const chunk = hashes.slice(i, i + 1000);
      const values = await this.redis.hmget(this.keys.narinfo, ...chunk);
      values.forEach((v, j) => {
        if (v !== null) found.set(chunk[j]!, JSON.parse(v) as string[]);
      });
    }
    return found;
  }

  /** Replaces the cache with `entries` (hash -> references). */
  async replace(entries: Map<string, string[]>): Promise<void> {
    const staging = this.keys.staging(`narinfo-${randomUUID()}`);
    const all = [...entries];
    for (let i = 0; i < all.length; i += 1000) {
      const args: string[] = [];
      for (const [hash, refs] of all.slice(i, i + 1000)) args.push(hash, JSON.stringify(refs));
      await this.redis.hset(staging, ...args);
    }
    if (all.length === 0) await this.redis.del(this.keys.narinfo);
    else await this.redis.rename(staging, this.keys.narinfo);
  }
}
