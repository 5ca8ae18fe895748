import {
  type BuildDeps,
  type BuildJobData,
  type BuildJobResult,
  type BuildProgress,
  type Failure,
  type Logger,
  type Metrics,
  type NegativeCache,
  type NixHealth,
  type PublishDeps,
  type PublishedImage,
  type Redis,
  type RedisKeys,
  bumpClusterStat,
  buildImage,
  describeFailure,
  encodeFailure,
  failureOf,
  logThrottle,
  publishImage,
  redisRefusal,
} from '@nixery/shared';
import type { Job } from 'bullmq';
import type { BuildStatusRecorder } from './status-hooks';

/** What running one build job needs: the pipeline's and publishing's dependencies, and the worker's own state. */
export interface BuildJobDeps {
  build: Omit<BuildDeps, 'log' | 'onNixBuild' | 'onLayerPacked' | 'onLayerCacheHit'>;
  publish: Omit<PublishDeps, 'log'>;
  nixHealth: { ensure(): Promise<NixHealth>; recheck(): Promise<NixHealth> };
  statusRec: BuildStatusRecorder;
  metrics: Metrics;
  redis: Redis;
  keys: RedisKeys;
  log: Logger;
  /** Where an image's unknown packages are remembered for its build key (issue 12; NIXERY_NEGATIVE_TTL). */
  negative?: Pick<NegativeCache, 'remember'>;
  /** Window of the "build failed" lines' throttle, in ms (NIXERY_LOG_REPEAT_INTERVAL; default 60 s). */
  logRepeatMs?: number;
}

/** Layer count and bytes of a published manifest (for a build answered with an existing image). */
function manifestStats(image: PublishedImage): { layers: number; layerBytes: number } {
  const layers = (JSON.parse(image.body) as { layers?: { size?: number }[] }).layers ?? [];
  return { layers: layers.length, layerBytes: layers.reduce((n, l) => n + (l.size ?? 0), 0) };
}

/** Failures a retry may fix; thrown (BullMQ retries) while attempts are left. */
function isTransient(f: Failure): boolean {
  return (
    (f.kind === 'nix_failed' && f.transient) ||
    f.kind === 'state_unavailable' ||
    f.kind === 'storage_unavailable' ||
    f.kind === 'timeout' ||
    f.kind === 'internal'
  );
}

/** The machine's failures (storage, Redis, Nix itself), logged at error level; an image's own failures are warnings. */
const MACHINE: ReadonlySet<Failure['kind']> = new Set(['storage_full', 'storage_unavailable', 'state_unavailable', 'nix_unavailable']);

/** The machine's failure, not the image's: Nix cannot build at all. Not retried; the client gets 503 naming the cause. */
function nixUnavailable(h: Extract<NixHealth, { ok: false }>): Failure {
  return { kind: 'nix_unavailable', cause: h.cause, hint: h.hint };
}

/**
 * The BullMQ processor of build jobs: checks that Nix can build here, builds
 * the image, publishes it and returns it; a failure is returned as the
 * job's encoded failure (the job completes), except that one a retry may fix
 * is thrown while attempts are left (BullMQ retries with backoff). A build
 * cancelled by a shutdown throws, and GracefulShutdown hands the job back.
 */
export function buildJobRunner(deps: BuildJobDeps) {
  const { metrics, redis, keys } = deps;
  const bump = (stat: Parameters<typeof bumpClusterStat>[2]) => bumpClusterStat(redis, keys, stat).catch(() => undefined);
  // Identical failures of many jobs (a full disk fails every build) are one line per interval with a count.
  const failedLines = logThrottle(deps.log, deps.logRepeatMs);

  /** Ends a job with its failure: metrics, status record, then retry (thrown) or the encoded failure (returned). */
  const fail = async (job: Job<BuildJobData, BuildJobResult>, jlog: Logger, failure: Failure, started: number): Promise<BuildJobResult> => {
    const transient = isTransient(failure);
    metrics.buildsFailed.inc({ reason: failure.kind });
    await bump('builds_failed');
    const cause = describeFailure(failure);
    failedLines.log(MACHINE.has(failure.kind) ? 'error' : 'warn', `${failure.kind} ${cause}`, { failure, cause, transient }, 'build failed', jlog);
    await deps.statusRec.failed(job, failure, transient, Date.now() - started); // web page (issue 6)
    // Only "does not exist" is remembered (before the result, so the next pull finds it): never a machine's failure.
    if (failure.kind === 'unknown_packages') await deps.negative?.remember(job.data.buildKey, failure.packages);
    if (transient && job.attemptsMade + 1 < (job.opts.attempts ?? 1)) throw new Error(describeFailure(failure));
    return { ok: false, failure: encodeFailure(failure) };
  };

  return async function runBuildJob(job: Job<BuildJobData, BuildJobResult>, _token?: string, signal?: AbortSignal): Promise<BuildJobResult> {
    const started = Date.now();
    const data = job.data;
    const jlog = deps.log.child({ jobId: job.id, image: data.image.name, tag: data.image.tag, buildKey: data.buildKey });
    const abort = signal ?? new AbortController().signal;
    let stageStart = Date.now();
    let stage: BuildProgress['stage'] = 'queued';
    const progress = (p: BuildProgress) => {
      if (p.stage !== stage) {
        metrics.buildDuration.observe({ stage }, (Date.now() - stageStart) / 1000);
        stage = p.stage;
        stageStart = Date.now();
      }
      job.updateProgress({ ...p, startedAt: started }).catch(() => undefined);
    };
    const health = await deps.nixHealth.ensure();
    if (!health.ok) return fail(job, jlog, nixUnavailable(health), started);
    jlog.info({ packages: data.image.packages, revision: data.source.revision, attempt: job.attemptsMade + 1 }, 'build started');
    let failure: Failure;
    try {
      const outcome = await buildImage(
        {
          ...deps.build,
          log: jlog,
          onNixBuild: () => {
            metrics.buildsStarted.inc();
            void bump('builds_started');
          },
          onLayerPacked: (bytes) => {
            metrics.layerCacheMisses.inc();
            metrics.layersPacked.inc();
            metrics.bytesPacked.inc(bytes);
            void bump('layers_packed');
          },
          onLayerCacheHit: () => metrics.layerCacheHits.inc(),
        },
        data,
        progress,
        abort,
      );
      if (outcome.ok && 'shared' in outcome) {
        // Another spelling of these packages was built before: this name gets that image (issue 12).
        const image = outcome.shared;
        await deps.publish.manifests.put(data.buildKey, image);
        progress({ stage: 'done' });
        metrics.imagesShared.inc();
        const stats = { ...manifestStats(image), packedLayers: 0, durationMs: Date.now() - started };
        jlog.info({ digest: image.digest, resolvedKey: outcome.resolvedKey, ...stats }, 'build finished: image shared with another spelling');
        return { ok: true, image, stats };
      }
      if (outcome.ok) {
        const image = await publishImage({ ...deps.publish, log: jlog }, data, outcome.image, Date.now() - started);
        progress({ stage: 'done' });
        metrics.buildsSucceeded.inc();
        await bump('builds_succeeded');
        const { layers, layerBytes, packedLayers } = outcome.image;
        const stats = { layers: layers.length, layerBytes, packedLayers, durationMs: Date.now() - started };
        jlog.info({ digest: image.digest, ...stats }, 'build finished');
        return { ok: true, image, stats };
      }
      failure = outcome.failure;
    } catch (err) {
      if (abort.aborted) throw err;
      failure = failureOf(err) ?? redisRefusal(err) ?? { kind: 'internal', message: err instanceof Error ? err.message : String(err) };
    }
    // Cancelled by a shutdown: not a build failure (GracefulShutdown hands the job back).
    if (abort.aborted) throw new Error('build cancelled');
    // A Nix failure may be the machine breaking under us: check before blaming the image.
    if (failure.kind === 'nix_failed') {
      const now = await deps.nixHealth.recheck();
      if (!now.ok) return fail(job, jlog, nixUnavailable(now), started);
    }
    return fail(job, jlog, failure, started);
  };
}
