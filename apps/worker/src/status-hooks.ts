import { type BuildFailure, type BuildJobData, BuildStatusStore, type BuiltImage, type Logger, type Redis, type RedisKeys } from '@nixery/shared';
import type { Job } from 'bullmq';

/** Records finished builds for the web page (recent builds, failures, image layers). Never throws. */
export interface BuildStatusRecorder {
  succeeded(job: Job<BuildJobData>, image: BuiltImage, durationMs: number): Promise<void>;
  failed(job: Job<BuildJobData>, failure: BuildFailure, transient: boolean, durationMs: number): Promise<void>;
}

/** The worker's side of `BuildStatusStore`: turns a job and its outcome into records. */
export function buildStatusRecorder(redis: Redis, keys: RedisKeys, log: Logger): BuildStatusRecorder {
  const store = new BuildStatusStore(redis, keys);
  const warn = (err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not record build status');
  return {
    succeeded: (job, img, durationMs) =>
      store
        .recordSuccess(
          {
            image: job.data.image.name,
            tag: job.data.image.tag,
            system: job.data.image.system,
            buildKey: job.data.buildKey,
            manifestDigest: img.manifest.digest,
            revision: job.data.source.revision,
            layers: img.layers.length,
            packedLayers: img.packedLayers,
            size: img.size,
            durationMs,
            finishedAt: Date.now(),
          },
          img.layers.map((l) => ({ digest: l.digest, size: l.size, paths: l.paths })),
        )
        .catch(warn),
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
