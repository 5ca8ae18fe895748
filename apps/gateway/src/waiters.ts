import { type Redis, redisReady } from '@nixery/shared';

/** How long a waiter's record lives without renewal; renewed every third of it while the request waits. */
export const WAITER_TTL_MS = 30_000;

/** One request's record as a waiter for a build; `leave` is safe to call twice. */
export interface Waiter {
  leave(): Promise<void>;
}

/**
 * Who still waits for a build, cluster-wide (issue 12). Each request waiting
 * for a build holds one member of the sorted set
 * `<prefix>:admission:waiters:<buildKey>`, scored with its expiry (now +
 * {@link WAITER_TTL_MS}), renewed while it waits and removed when it is
 * answered or its client hangs up. A gateway that dies leaves members that
 * expire by themselves. A build is waited for while its set holds a member
 * whose expiry is still ahead.
 */
export class Waiters {
  private readonly renewers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlMs = WAITER_TTL_MS,
  ) {}

  private key(buildKey: string): string {
    return `${this.prefix}:admission:waiters:${buildKey}`;
  }

  /** Records a waiter for `buildKey` and keeps renewing it until `leave`. */
  async join(buildKey: string): Promise<Waiter> {
    const key = this.key(buildKey);
    const id = `${process.pid}:${Math.random().toString(36).slice(2)}`;
    const mark = () => this.redis.multi().zadd(key, Date.now() + this.ttlMs, id).pexpire(key, this.ttlMs * 2).exec();
    await mark();
    // With Redis away nothing is queued for it (the record expires by itself; a waiter then counts as gone).
    const renew = setInterval(() => void (redisReady(this.redis) ? mark().catch(() => undefined) : undefined), this.ttlMs / 3);
    renew.unref();
    this.renewers.add(renew);
    let left = false;
    return {
      leave: async () => {
        if (left) return;
        left = true;
        clearInterval(renew);
        this.renewers.delete(renew);
        if (redisReady(this.redis)) await this.redis.zrem(key, id);
      },
    };
  }

  /** How many live waiters each build key has (expired members are dropped on the way). */
  async count(buildKeys: readonly string[]): Promise<number[]> {
    if (buildKeys.length === 0) return [];
    const now = Date.now();
    const p = this.redis.pipeline();
    for (const b of buildKeys) p.zremrangebyscore(this.key(b), '-inf', now).zcard(this.key(b));
    const replies = (await p.exec()) ?? [];
    return buildKeys.map((_, i) => Number(replies[i * 2 + 1]?.[1] ?? 0));
  }

  /** Stops renewing every record (the process stops; records expire by themselves). */
  close(): void {
    for (const t of this.renewers) clearInterval(t);
    this.renewers.clear();
  }
}
