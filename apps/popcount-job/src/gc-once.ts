/**
 * `npm run gc [-- --dry-run]`: one storage collection now, its report
 * (JSON) on stdout. When a process runs the collection job (npm start, the
 * popcount-job app), the run is a job on its `gc` queue, run there (its
 * metrics count it); otherwise this process runs it, under the same lock.
 * Exits 0 when it ran, 1 when it failed or another run held the lock, 2 on
 * bad configuration. Without REDIS_URL it uses npm start's embedded Redis.
 */
import { randomUUID } from 'node:crypto';
import { GC_QUEUE, runOnce } from '@nixery/shared';
import { Queue, QueueEvents } from 'bullmq';
import { type GcOutcome, runCollection } from './gc-run';
import type { GcJobData } from './gc-scheduler';

/** How long a queued run may take before this command gives up waiting (the run goes on). */
const WAIT_MS = 3600_000;

runOnce(
  'gc',
  async (rt, config) => {
    const dryRun = process.argv.includes('--dry-run');
    const queue = new Queue<GcJobData, GcOutcome>(GC_QUEUE, { connection: rt.connect(), prefix: config.redisPrefix });
    let outcome: GcOutcome;
    try {
      if ((await queue.getWorkersCount()) > 0) {
        const events = new QueueEvents(GC_QUEUE, { connection: rt.connect(), prefix: config.redisPrefix });
        await events.waitUntilReady();
        const job = await queue.add('gc', { reason: 'manual', dryRun }, { jobId: `manual-${randomUUID()}`, removeOnComplete: { count: 20 }, removeOnFail: { count: 20 } });
        outcome = await job.waitUntilFinished(events, WAIT_MS).finally(() => events.close());
      } else {
        outcome = await runCollection(rt, dryRun);
      }
    } finally {
      await queue.close();
    }
    process.stdout.write(`${JSON.stringify(outcome)}\n`);
    return outcome.ok ? 0 : 1;
  },
  { redis: 'embedded' },
);
