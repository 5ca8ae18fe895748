import { type BuildJobData, type BuildStatusStore, type Failure, type Logger, errorText, logThrottle } from '@nixery/shared';
import type { Job } from 'bullmq';

/** Records failed build attempts for the web page. Never throws. (Successes are recorded by publishImage.) */
export interface BuildStatusRecorder {
  failed(job: Job<BuildJobData>, failure: Failure, transient: boolean, durationMs: number): Promise<void>;
}

/** The worker's side of `BuildStatusStore` for failures: turns a job and its failure into a record. */
export function buildStatusRecorder(store: Pick<BuildStatusStore, 'recordFailure'>, log: Logger, repeatMs?: number): BuildStatusRecorder {
  // Redis refusing writes fails every job's record the same way: one line per interval with a count.
  const lines = logThrottle(log, repeatMs);
  const warn = (err: unknown) => lines.log('warn', errorText(err), { err: errorText(err) }, 'could not record build status');
  return {
    failed: (job, failure, transient, durationMs) =>
      store
        .recordFailure({
          image: job.data.image.name,
          tag: job.data.image.tag,
          system: job.data.image.system,
          buildKey: job.data.buildKey,
          failure,
          attempt: job.attemptsMade + 1,
          willRetry: transient && job.attemptsMade + 1 < (job.opts.attempts ?? 1),
          durationMs,
          finishedAt: Date.now(),
        })
        .catch(warn),
  };
}
