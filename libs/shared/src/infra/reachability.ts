/**
 * Waiting on Redis without waiting forever. Connections are made with
 * `maxRetriesPerRequest: null` (BullMQ needs it), so a command issued while
 * Redis is away waits in ioredis's offline queue until it is back, however
 * long that takes. Code on a request path or in a shutdown bounds such
 * waits with these: fail at once when the connection is not up, bound a
 * command, or stop waiting for something that needs Redis once Redis has
 * been away for a while.
 */
import type { Redis } from 'ioredis';
import { Failed, failureOf } from '../core/failure';
import { withTimeout } from '../core/timeout';

/** The failure of a step that needs Redis while it cannot be reached. */
const UNREACHABLE = { kind: 'state_unavailable', what: 'its Redis' } as const;

/** True while `redis` is connected and ready for commands. */
export function redisReady(redis: Pick<Redis, 'status'>): boolean {
  return redis.status === 'ready';
}

/** Throws the `state_unavailable` failure at once unless `redis` is connected. */
export function requireRedis(redis: Pick<Redis, 'status'>): void {
  if (!redisReady(redis)) throw new Failed(UNREACHABLE);
}

/**
 * Settles like `p` (commands that need Redis), or rejects with
 * `state_unavailable` after `ms`: the connection looked up but no answer came
 * (Redis went away meanwhile). The commands themselves stay queued.
 */
export async function redisStep<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  try {
    return await withTimeout(p, ms, what);
  } catch (err) {
    if (failureOf(err)?.kind === 'timeout') throw new Failed(UNREACHABLE);
    throw err;
  }
}

/**
 * Waits for `p` (a close that needs Redis: BullMQ's workers, queues and
 * event streams, running jobs handing themselves back) until Redis has
 * been unreachable for `patienceMs` in a row, and not before `notBefore`
 * (a time, e.g. the end of a grace). Resolves `'done'` or `'redis_gone'`;
 * in the second case `p` goes on, unwatched.
 */
export function unlessRedisGone(redis: Pick<Redis, 'status'>, p: Promise<unknown>, opts: { patienceMs: number; notBefore?: number }): Promise<'done' | 'redis_gone'> {
  return new Promise((resolve) => {
    let awaySince: number | undefined;
    const poll = setInterval(() => {
      const now = Date.now();
      awaySince = redisReady(redis) ? undefined : (awaySince ?? now);
      if (awaySince !== undefined && now - awaySince >= opts.patienceMs && now >= (opts.notBefore ?? 0)) finish('redis_gone');
    }, 100);
    poll.unref();
    const finish = (how: 'done' | 'redis_gone') => {
      clearInterval(poll);
      resolve(how);
    };
    p.then(
      () => finish('done'),
      () => finish('done'),
    );
  });
}
