import { type Logger, type Redis, unlessRedisGone } from '@nixery/shared';
import { type Job, type Processor, WaitingError, type Worker } from 'bullmq';

/**
 * Graceful shutdown of build workers.
 *
 * On `close(graceMs)` every BullMQ worker stops fetching jobs at once. Running
 * builds get `graceMs` to finish; whatever is still running then is
 * cancelled (its AbortSignal fires, which kills its Nix child processes and
 * stops its uploads) and handed back: moved from active to waiting, without
 * using up an attempt, so another worker takes it right away. Gateways
 * waiting on the job keep waiting: a hand-back is not a failure.
 *
 * A worker that dies without this (SIGKILL, a lost machine) stops renewing
 * its job locks; BullMQ's stalled-job check on another worker then moves the
 * job back (see `jobLockTtlSeconds` / `stalledIntervalSeconds` in the config).
 *
 * With Redis unreachable neither finishing nor handing back can be recorded
 * (BullMQ's close would wait for Redis forever): the close stops waiting
 * once Redis has been away for a second, at once when no build runs, else
 * after the grace and {@link HANDBACK_MS} more. Those jobs are then what a
 * dead worker's are: the stalled-job check returns them to the queue.
 */
/** After the grace, how long cancelled builds may take to hand themselves back while Redis is away. */
const HANDBACK_MS = 3000;

export class GracefulShutdown {
  private handingBack = false;
  private closing: Promise<void> | undefined;
  private running = 0;

  /** True once `close` was called: a worker that stops before is stopping unasked. */
  get stopping(): boolean {
    return this.closing !== undefined;
  }

  constructor(private readonly log: Logger) {}

  /**
   * Wraps a processor: when it fails because the shutdown cancelled it, the
   * job is moved back to waiting (BullMQ `WaitingError`) instead of failing.
   */
  wrap<D, R>(processor: Processor<D, R>): Processor<D, R> {
    return async (job: Job<D, R>, token?: string, signal?: AbortSignal): Promise<R> => {
      this.running++;
      try {
        return await processor(job, token, signal);
      } catch (err) {
        if (this.handingBack && signal?.aborted && token) {
          await job.moveToWait(token);
          this.log.info({ jobId: job.id }, 'build handed back to the queue');
          throw new WaitingError();
        }
        throw err;
      } finally {
        this.running--;
      }
    };
  }

  /**
   * Stops `workers`: no new jobs; running ones get `graceMs` to finish, then
   * are handed back; then the workers' connections close. With `redis`
   * (the process's main connection) unreachable it stops waiting as said
   * above. Idempotent.
   */
  close(workers: readonly Worker[], graceMs: number, redis: Pick<Redis, 'status'>): Promise<void> {
    this.closing ??= (async () => {
      const notBefore = this.running > 0 ? Date.now() + graceMs + HANDBACK_MS : 0;
      const running = workers.map((w) => w.close());
      const grace = setTimeout(() => {
        this.handingBack = true;
        this.log.info({ graceMs }, 'grace period over: handing running builds back');
        for (const w of workers) w.cancelAllJobs('worker shutting down');
      }, graceMs);
      try {
        if ((await unlessRedisGone(redis, Promise.all(running), { patienceMs: 1000, notBefore })) === 'redis_gone') {
          this.log.warn({ running: this.running }, 'Redis unreachable: not waiting for BullMQ; builds not handed back return to the queue by the stalled-job check');
        }
      } finally {
        clearTimeout(grace);
      }
    })();
    return this.closing;
  }
}
