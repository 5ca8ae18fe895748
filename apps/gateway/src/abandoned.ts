import type { Redis } from '@nixery/shared';
import type { Queue } from 'bullmq';
import type { Waiters } from './waiters';

/** Jobs looked at per queue and sweep (the queue's cap bounds how many there can be). */
const SWEEP_LIMIT = 2000;

/**
 * Removes abandoned builds from one build queue (issue 12): jobs still
 * waiting (not started) that no request waits for any more (see
 * {@link Waiters}) and that were queued at least `afterMs` ago. With
 * `ids` only those jobs are looked at (a waiter that just left); otherwise
 * every waiting job of the queue. A job that started meanwhile is locked and
 * BullMQ refuses to remove it. `client` is a connection to the queue's Redis. Returns the ids removed.
 */
export async function dropAbandoned(
  queue: Queue,
  client: Redis,
  waiters: Waiters,
  opts: { afterMs: number; ids?: readonly string[] },
): Promise<string[]> {
  const ids = opts.ids ?? [
    ...(await client.zrange(queue.toKey('prioritized'), '0', String(SWEEP_LIMIT - 1))),
    ...(await client.lrange(queue.toKey('wait'), 0, SWEEP_LIMIT - 1)),
  ];
  if (ids.length === 0) return [];
  const now = Date.now();
  const p = client.pipeline();
  for (const id of ids) p.hget(queue.toKey(id), 'timestamp').hget(queue.toKey(id), 'processedOn');
  const replies = (await p.exec()) ?? [];
  const unstarted = ids.filter((_, i) => {
    const queuedAt = Number(replies[i * 2]?.[1] ?? NaN);
    return !replies[i * 2 + 1]?.[1] && now - queuedAt >= opts.afterMs;
  });
  const live = await waiters.count(unstarted);
  const removed: string[] = [];
  for (const [i, id] of unstarted.entries()) {
    if (live[i] !== 0) continue;
    const state = await queue.getJobState(id);
    if (state !== 'waiting' && state !== 'prioritized') continue;
    // Counted again right before the removal: a request that joined meanwhile keeps the job.
    if ((await waiters.count([id]))[0] !== 0) continue;
    if ((await queue.remove(id).catch(() => 0)) === 1) removed.push(id);
  }
  return removed;
}
