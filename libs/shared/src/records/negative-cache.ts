import type { Redis } from 'ioredis';
import { withTimeout } from '../core/timeout';
import type { Logger } from '../infra/logger';
import { redisReady } from '../infra/reachability';
import type { RedisKeys } from '../infra/redis';

/** How long a negative-cache read or write may take before the pull (or the job) goes on without it (ms). */
const READ_MS = 1000;

/**
 * The negative cache (issue 12): images whose packages the package set does
 * not have, by build key, for `ttlMs` (NIXERY_NEGATIVE_TTL). The build key
 * pins the source revision (git commit, channel revision, local-tree
 * fingerprint), the system and the package list, so a new revision misses by
 * itself. Only "does not exist" answers are kept (the worker records
 * `unknown_packages` and nothing else), never a machine's failure. One Redis
 * key per image with its TTL, so it stays bounded. Best effort both ways:
 * with Redis unreachable, slow or refusing, a read is a miss and a write is
 * skipped; a pull is never failed or held up by it. `ttlMs` 0 turns it off.
 */
export class NegativeCache {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly ttlMs: number,
    private readonly log?: Logger,
  ) {}

  /** The unknown packages recorded for `buildKey` (names as requested), or null: not recorded, off, or Redis away. */
  async unknownPackages(buildKey: string): Promise<string[] | null> {
    if (this.ttlMs <= 0 || !redisReady(this.redis)) return null;
    try {
      const raw = await withTimeout(this.redis.get(this.keys.negative(buildKey)), READ_MS, 'reading the negative cache');
      return raw ? parsePackages(raw) : null;
    } catch (err) {
      this.log?.debug({ err: err instanceof Error ? err.message : String(err) }, 'negative cache read failed; building');
      return null;
    }
  }

  /** Records that `buildKey`'s image has unknown packages, for the cache's TTL (skipped when off or Redis is away). */
  async remember(buildKey: string, packages: readonly string[]): Promise<void> {
    if (this.ttlMs <= 0 || packages.length === 0 || !redisReady(this.redis)) return;
    await withTimeout(this.redis.set(this.keys.negative(buildKey), JSON.stringify(packages), 'PX', this.ttlMs), READ_MS, 'writing the negative cache').catch((err: unknown) => {
      this.log?.debug({ err: err instanceof Error ? err.message : String(err) }, 'could not record unknown packages in the negative cache');
    });
  }
}

/** A recorded entry's package names, or null when it is not a non-empty list of strings. */
function parsePackages(raw: string): string[] | null {
  try {
    const v: unknown = JSON.parse(raw);
    return Array.isArray(v) && v.length > 0 && v.every((p) => typeof p === 'string') ? v : null;
  } catch {
    return null;
  }
}
