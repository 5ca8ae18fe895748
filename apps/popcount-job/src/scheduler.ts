import { createHash } from 'node:crypto';
import {
  POPCOUNT_QUEUE,
  type Liveness,
  type PopcountProgress,
  type PopcountSchedule,
  type PopularityMeta,
  type ProcessDeps,
  type SourceResolver,
  errorText,
  logThrottle,
  popcountResolver,
  popcountKeys,
  readPopularityMeta,
  redisKeys,
  runPopcount,
  unlessRedisGone,
} from '@nixery/shared';
import { type Job, Queue, Worker } from 'bullmq';

/** Id of the one job scheduler all popcount-job processes share: upserting it again changes it, never duplicates it. */
export const POPCOUNT_SCHEDULER_ID = 'popcount';

/** What a popcount job carries. */
export interface PopcountJobData {
  /** `schedule` (a tick), `startup` (no or stale table at start-up) or `manual`. */
  reason: 'schedule' | 'startup' | 'manual';
}

/** The running scheduler and job worker of one process. */
export interface PopcountScheduler {
  /** Cancels a running count (the previous table stays) and closes the worker and queue. */
  close(): Promise<void>;
  /**
   * Settles once the start-up check is done (it runs in the background, so a
   * slow package source never delays start-up): the start-up run's job id
   * when this process asked for one (a table was missing or stale).
   */
  startup: Promise<string | undefined>;
}

const KEEP = { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 }, attempts: 1 };

/** BullMQ repeat options for a schedule. */
export function repeatOptions(s: Exclude<PopcountSchedule, { kind: 'off' }>): { every: number } | { pattern: string } {
  return s.kind === 'every' ? { every: s.ms } : { pattern: s.pattern };
}

/**
 * Starts the popularity job in this process (NIXERY_POPCOUNT_SCHEDULE not `off`):
 * - upserts the cluster's one BullMQ job scheduler (id `popcount`) on the
 *   `popcount` queue with the configured interval or cron pattern: however
 *   many processes do this, each tick makes one job;
 * - runs a worker (one job at a time) that counts and publishes the table;
 * - when Redis has no table, or it was made from another revision of the
 *   package source (or, with an interval, is over two intervals old), adds a
 *   start-up job; its id is shared by processes starting in the same minute.
 */
export async function startPopcountScheduler(deps: ProcessDeps & { liveness?: Liveness }): Promise<PopcountScheduler> {
  const { config, log } = deps;
  const schedule = config.popcount.schedule;
  if (schedule.kind === 'off') {
    log.info('popularity job disabled (NIXERY_POPCOUNT_SCHEDULE=off)');
    return { close: async () => undefined, startup: Promise.resolve(undefined) };
  }
  const plog = log.child({ component: 'popcount' });
  const queue = new Queue<PopcountJobData, PopularityMeta>(POPCOUNT_QUEUE, { connection: deps.connect(), prefix: config.redisPrefix });
  queue.on('error', (err) => plog.debug({ err: err.message }, 'popcount queue error'));
  const shutdown = new AbortController();
  const resolver = popcountResolver(config, plog);

  /** Counts and publishes one popularity table. */
  const runPopcountJob = async (job: Job<PopcountJobData, PopularityMeta>, _token?: string, signal?: AbortSignal): Promise<PopularityMeta> => {
    const jlog = plog.child({ jobId: job.id, reason: job.data.reason });
    const signals = [shutdown.signal, ...(signal ? [signal] : [])];
    const result = await runPopcount({
      config,
      redis: deps.redis,
      log: jlog,
      jobId: job.id ?? 'unknown',
      resolver,
      signal: AbortSignal.any(signals),
      onProgress: (p: PopcountProgress) => {
        job.updateProgress({ ...p }).catch(() => undefined);
      },
    });
    return result.meta;
  };
  const worker = new Worker<PopcountJobData, PopularityMeta>(POPCOUNT_QUEUE, runPopcountJob, {
    connection: deps.connect(),
    prefix: config.redisPrefix,
    concurrency: 1,
  });
  const workerErrors = logThrottle(plog, config.logRepeatSeconds * 1000); // one line per interval per repeated error
  worker.on('error', (err) => workerErrors.log('error', errorText(err), { err }, 'popcount worker error'));
  let closing = false;
  deps.liveness?.watch('popcount-worker', () => (!closing && !worker.isRunning() ? 'the BullMQ popcount worker stopped taking jobs without being asked to' : null));

  // With an interval, a new scheduler's first tick runs at once: that is the start-up run.
  const existed = (await queue.getJobScheduler(POPCOUNT_SCHEDULER_ID)) !== undefined;
  await queue.upsertJobScheduler(POPCOUNT_SCHEDULER_ID, repeatOptions(schedule), {
    name: 'popcount',
    data: { reason: 'schedule' },
    opts: KEEP,
  });
  plog.info({ schedule }, 'popularity job scheduled');

  const firstTickNow = !existed && schedule.kind === 'every';
  const startup = (async (): Promise<string | undefined> => {
    if (firstTickNow) return undefined;
    try {
      const jobId = await startupJobIdFor(deps, resolver, schedule);
      if (jobId) {
        await queue.add('popcount', { reason: 'startup' }, { ...KEEP, jobId });
        plog.info({ jobId }, 'popularity table missing or stale: counting now');
      }
      return jobId;
    } catch (err) {
      plog.warn({ err }, 'cannot check the popularity table at start-up; waiting for the schedule');
      return undefined;
    }
  })();

  // With Redis unreachable these waits cannot end (commands wait for it): give up on them after a second.
  const unlessGone = (p: Promise<unknown>) => unlessRedisGone(deps.redis, p, { patienceMs: 1000 });
  return {
    startup,
    close: async () => {
      closing = true;
      await unlessGone(startup);
      shutdown.abort();
      await unlessGone(worker.close());
      await unlessGone(queue.close());
      resolver.close();
    },
  };
}

/** The start-up job's id when the table is missing or stale, else undefined. */
async function startupJobIdFor(
  deps: ProcessDeps,
  resolver: SourceResolver,
  schedule: Exclude<PopcountSchedule, { kind: 'off' }>,
): Promise<string | undefined> {
  const minute = Math.floor(Date.now() / 60_000);
  const meta = await readPopularityMeta(deps.redis, popcountKeys(redisKeys(deps.config.redisPrefix)));
  if (!meta) return `startup-none-${minute}`;
  const identity = await resolver.resolve('latest').then(
    (r) => r.identity,
    () => null,
  );
  // The source cannot be pinned now: run anyway, the run reports why it fails.
  if (identity === null) return `startup-unresolved-${minute}`;
  const tag = createHash('sha256').update(identity).digest('hex').slice(0, 16);
  if (meta.source !== identity) return `startup-${tag}-${minute}`;
  const age = Date.now() - Date.parse(meta.computedAt);
  if (schedule.kind === 'every' && age > 2 * schedule.ms) return `startup-${tag}-${minute}`;
  return undefined;
}
