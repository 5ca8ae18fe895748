import { GC_QUEUE, type Liveness, type ProcessDeps, errorText, logThrottle, unlessRedisGone } from '@nixery/shared';
import { type Job, Queue, Worker } from 'bullmq';
import { type GcOutcome, runCollection } from './gc-run';
import { repeatOptions } from './scheduler';

/** Id of the one job scheduler of storage collection in the cluster. */
export const GC_SCHEDULER_ID = 'gc';

/** What a collection job carries. */
export interface GcJobData {
  /** `schedule` (a tick) or `manual` (`npm run gc`). */
  reason: 'schedule' | 'manual';
  /** Only report; default NIXERY_GC_DRY_RUN of the process that runs it. */
  dryRun?: boolean;
}

/** The collection scheduler and job worker of one process. */
export interface GcScheduler {
  close(): Promise<void>;
}

const KEEP = { removeOnComplete: { count: 20 }, removeOnFail: { count: 20 }, attempts: 1 };

/**
 * Starts storage collection in this process (NIXERY_GC_SCHEDULE not `off`):
 * upserts the cluster's one job scheduler (id `gc`, queue `gc`), so each tick
 * makes one job however many processes do this, and runs a worker (one job
 * at a time) that collects under the cluster's collection lock. Hosted by
 * the popcount-job app and `npm start`. The first run of a new interval
 * scheduler comes one interval after it is made, not at start-up.
 */
export async function startGcScheduler(deps: ProcessDeps & { liveness?: Liveness }): Promise<GcScheduler> {
  const { config, log } = deps;
  const schedule = config.gc.schedule;
  if (schedule.kind === 'off') {
    log.info('storage collection disabled in this process (NIXERY_GC_SCHEDULE=off)');
    return { close: async () => undefined };
  }
  const queue = new Queue<GcJobData, GcOutcome>(GC_QUEUE, { connection: deps.connect(), prefix: config.redisPrefix });
  queue.on('error', (err) => log.debug({ err: err.message }, 'gc queue error'));
  const runGcJob = async (job: Job<GcJobData, GcOutcome>): Promise<GcOutcome> => runCollection(deps, job.data.dryRun ?? config.gc.dryRun);
  const worker = new Worker<GcJobData, GcOutcome>(GC_QUEUE, runGcJob, { connection: deps.connect(), prefix: config.redisPrefix, concurrency: 1 });
  const workerErrors = logThrottle(log, config.logRepeatSeconds * 1000); // one line per interval per repeated error
  worker.on('error', (err) => workerErrors.log('error', errorText(err), { err }, 'gc worker error'));
  let closing = false;
  deps.liveness?.watch('gc-worker', () => (!closing && !worker.isRunning() ? 'the BullMQ storage collection worker stopped taking jobs without being asked to' : null));
  // A new interval scheduler would tick at once; the first run comes one interval after it is made instead
  // (a process start is no reason to collect). An existing one keeps its rhythm.
  const existed = (await queue.getJobScheduler(GC_SCHEDULER_ID)) !== undefined;
  const repeat = { ...repeatOptions(schedule), ...(schedule.kind === 'every' && !existed ? { startDate: Date.now() + schedule.ms } : {}) };
  await queue.upsertJobScheduler(GC_SCHEDULER_ID, repeat, { name: 'gc', data: { reason: 'schedule' }, opts: KEEP });
  log.info({ schedule, keepMs: config.gc.keepMs, graceMs: config.gc.graceMs, dryRun: config.gc.dryRun }, 'storage collection scheduled');
  return {
    // With Redis unreachable BullMQ's close waits for it: give up after a second (as the popularity job does).
    close: async () => {
      closing = true;
      await unlessRedisGone(deps.redis, worker.close(), { patienceMs: 1000 });
      await unlessRedisGone(deps.redis, queue.close(), { patienceMs: 1000 });
      workerErrors.flush();
    },
  };
}
