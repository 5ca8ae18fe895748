import type { BuildJobData, BuildStatusStore, Failure, Logger } from '@nixery/shared';
import type { Job } from 'bullmq';

/** Records failed build attempts for the web page. Never throws. (Successes are recorded by publishImage.) */
export interface BuildStatusRecorder {
  failed(job: Job<BuildJobData>, failure: Failure, transient: boolean, durationMs: number): Promise<void>;
}

/** The worker's side of `BuildStatusStore` for failures: turns a job and its failure into a record. */
export function buildStatusRecorder(store: Pick<BuildStatusStore, 'recordFailure'>, log: Logger): BuildStatusRecorder {
  const warn = (err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not record build status');
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
