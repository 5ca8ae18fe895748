import type { Logger } from '@nixery/shared';
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
 */
export class GracefulShutdown {
  private handingBack = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly log: Logger) {}

  /**
   * Wraps a processor: when it fails because the shutdown cancelled it, the
   * job is moved back to waiting (BullMQ `WaitingError`) instead of failing.
   */
  wrap<D, R>(processor: Processor<D, R>): Processor<D, R> {
    return async (job: Job<D, R>, token?: string, signal?: AbortSignal): Promise<R> => {
      try {
        return await processor(job, token, signal);
      } catch (err) {
        if (this.handingBack && signal?.aborted && token) {
          await job.moveToWait(token);
          this.log.info({ jobId: job.id }, 'build handed back to the queue');
          throw new WaitingError();
        }
        throw err;
      }
    };
  }

  /**
   * Stops `workers`: no new jobs; running ones get `graceMs` to finish, then
   * are handed back; then the workers' connections close. Idempotent.
   */
  close(workers: readonly Worker[], graceMs: number): Promise<void> {
    this.closing ??= (async () => {
      const running = workers.map((w) => w.close());
      const grace = setTimeout(() => {
        this.handingBack = true;
        this.log.info({ graceMs }, 'grace period over: handing running builds back');
        for (const w of workers) w.cancelAllJobs('worker shutting down');
      }, graceMs);
      try {
        await Promise.all(running);
      } finally {
        clearTimeout(grace);
      }
    })();
    return this.closing;
  }
}
