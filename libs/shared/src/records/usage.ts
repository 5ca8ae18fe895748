/**
 * When stored objects were last needed, for the storage collector
 * (`collect/collector.ts`, which explains the races this closes), in Redis:
 *
 * - pulls (`<prefix>:gc:pulls`, a sorted set: manifest digest -> epoch ms of
 *   its last pull): written by gateways in the background, at most once per
 *   `pullEveryMs` per digest per process, and by `publishImage` (a build
 *   counts as a pull);
 * - uses (`<prefix>:gc:uses`: blob digest -> epoch ms): a build using a blob
 *   (a layer-cache hit, a packed layer right before its move, an image's
 *   blobs at publish time);
 * - claims (`<prefix>:gc:claim:<digest>`, with a TTL): set by the collector
 *   right before it deletes an object and removed once it is gone.
 *
 * A use and a claim exclude each other: each is one Lua script, so Redis
 * runs them one after the other. A use that finds a claim waits until the
 * claim is gone (the object is deleted by then, and the build writes it
 * again); a claim that finds a recent use or pull refuses, and the object stays.
 */
import type { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisKeys } from '../infra/redis';

/** How long a claim lives if its collector dies before releasing it. */
export const CLAIM_TTL_MS = 60_000;
/** How often a use that found a claim looks again. */
const CLAIM_POLL_MS = 200;

// KEYS: uses, pulls, claim keys of ARGV[3..]; ARGV: now, pulled manifest ('' for none), digests (the manifest last when given).
const USE_LUA = `
for i = 3, #ARGV do
  if ARGV[i] == ARGV[2] then redis.call('zadd', KEYS[2], ARGV[1], ARGV[i]) else redis.call('zadd', KEYS[1], ARGV[1], ARGV[i]) end
end
for i = 3, #KEYS do
  if redis.call('exists', KEYS[i]) == 1 then return KEYS[i] end
end
return false`;

// KEYS: the score set, the claim key; ARGV: member, cutoff (epoch ms), claim ttl (ms).
const CLAIM_LUA = `
local s = redis.call('zscore', KEYS[1], ARGV[1])
if s and tonumber(s) >= tonumber(ARGV[2]) then return 0 end
redis.call('set', KEYS[2], '1', 'PX', ARGV[3])
return 1`;

/** Which record a claim is checked against: a manifest's pulls or a blob's uses. */
export type UsageKind = 'manifest' | 'blob';

/** Pull records, use records and deletion claims (see the module comment). */
export class StorageUsage {
  private readonly recorded = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    /** Milliseconds between two pull records of one digest by this process (default 60 s). */
    private readonly pullEveryMs = 60_000,
  ) {}

  /**
   * Records a pull of a manifest in the background: never awaited, never
   * throws, and skipped while Redis is not connected (a lost record only
   * makes the collector keep less, never serve a missing blob: it is at most
   * `pullEveryMs` late, far below the keep time).
   */
  recordPull(digest: string): void {
    const now = Date.now();
    if (now - (this.recorded.get(digest) ?? 0) < this.pullEveryMs || this.redis.status !== 'ready') return;
    this.recorded.set(digest, now);
    if (this.recorded.size > 10_000) {
      for (const [d, t] of this.recorded) if (now - t >= this.pullEveryMs) this.recorded.delete(d);
    }
    this.redis.zadd(this.keys.gcPulls, now, digest).catch(() => this.recorded.delete(digest));
  }

  /**
   * Records that a build uses these blobs now (and, with `pulled`, that this
   * manifest is published now), then waits while the collector holds a claim
   * on any of them (at most the claim's TTL): when it resolves, no claim was
   * held at the moment of the use, so nothing the build then writes or
   * references is deleted under it.
   */
  async use(digests: readonly string[], opts: { pulled?: string; signal?: AbortSignal } = {}): Promise<void> {
    const all = opts.pulled ? [...digests, opts.pulled] : [...digests];
    if (all.length === 0) return;
    const claimKeys = all.map((d) => this.keys.gcClaim(d));
    for (;;) {
      const claimed = await this.redis.eval(USE_LUA, 2 + claimKeys.length, this.keys.gcUses, this.keys.gcPulls, ...claimKeys, String(Date.now()), opts.pulled ?? '', ...all);
      if (!claimed) return;
      await sleep(CLAIM_POLL_MS, undefined, opts.signal ? { signal: opts.signal } : {});
    }
  }

  /** Every manifest's last pull (epoch ms), by digest. */
  async pullTimes(): Promise<Map<string, number>> {
    const flat = await this.redis.zrange(this.keys.gcPulls, '0', '-1', 'WITHSCORES');
    const out = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, Number(flat[i + 1]));
    return out;
  }

  /** Records manifests that have no pull record as pulled at `now` (only where none exists). */
  async firstSeen(digests: readonly string[], now: number): Promise<void> {
    for (let i = 0; i < digests.length; i += 1000) {
      await this.redis.zadd(this.keys.gcPulls, 'NX', ...digests.slice(i, i + 1000).flatMap((d) => [String(now), d]));
    }
  }

  /**
   * Claims an object for deletion unless it was pulled (manifest) or used
   * (blob) at or after `cutoff` (epoch ms); true when claimed. Release it
   * with `release` once the object is deleted.
   */
  async claim(kind: UsageKind, digest: string, cutoff: number): Promise<boolean> {
    const set = kind === 'manifest' ? this.keys.gcPulls : this.keys.gcUses;
    return (await this.redis.eval(CLAIM_LUA, 2, set, this.keys.gcClaim(digest), digest, String(cutoff), String(CLAIM_TTL_MS))) === 1;
  }

  /** Ends a claim, and with `deleted` forgets the object's record too. */
  async release(kind: UsageKind, digest: string, deleted: boolean): Promise<void> {
    const m = this.redis.multi().del(this.keys.gcClaim(digest));
    if (deleted) m.zrem(kind === 'manifest' ? this.keys.gcPulls : this.keys.gcUses, digest);
    await m.exec();
  }

  /** Tells every gateway (pub/sub) which manifests were collected, so they drop them from memory. */
  async announceCollected(manifestDigests: readonly string[]): Promise<void> {
    if (manifestDigests.length > 0) await this.redis.publish(this.keys.gcCollected, JSON.stringify(manifestDigests));
  }
}

/** What a process does when manifests are collected elsewhere. */
export interface CollectedListener {
  /** Manifests whose blobs were collected: drop them from memory. */
  collected(digests: ReadonlySet<string>): void;
  /** The subscription was lost and is back: news may have been missed meanwhile. */
  resubscribed(): void;
}

/**
 * Subscribes `conn` (a connection of its own: a subscribed connection does
 * nothing else) to the collector's announcements. ioredis subscribes again
 * after a reconnect; that is reported as `resubscribed`.
 */
export async function subscribeCollected(conn: Redis, keys: RedisKeys, listener: CollectedListener): Promise<void> {
  let ready = false;
  conn.on('ready', () => {
    if (ready) listener.resubscribed();
  });
  conn.on('message', (channel: string, message: string) => {
    if (channel !== keys.gcCollected) return;
    try {
      const list = JSON.parse(message) as unknown;
      if (Array.isArray(list)) listener.collected(new Set(list.map(String)));
    } catch {
      listener.resubscribed();
    }
  });
  await conn.subscribe(keys.gcCollected);
  ready = true;
}
