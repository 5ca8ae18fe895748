import {
  type BuildJobData,
  type BuildJobResult,
  type BuildProgress,
  BuildStatusStore,
  type Failure,
  LayerCache,
  ManifestCache,
  PopularityReader,
  type ProcessDeps,
  bumpClusterStat,
  buildImage,
  buildQueueName,
  describeFailure,
  encodeFailure,
  failureOf,
  nixPreparation,
  publishImage,
  redisKeys,
} from '@nixery/shared';
import { type Job, Worker } from 'bullmq';
import { GracefulShutdown } from './shutdown';
import { buildStatusRecorder } from './status-hooks';

/** A running build worker (one BullMQ worker per Nix system it builds). */
export interface BuildWorker {
  /** Stops taking jobs, waits for running ones (or hands them back after `graceMs`), closes connections. */
  close(): Promise<void>;
}

/** Dependencies handed in by the process that starts the worker (a subset of its Runtime). */
export type WorkerDeps = ProcessDeps;

/** Failures a retry may fix; thrown (BullMQ retries) while attempts are left. */
function isTransient(f: Failure): boolean {
  return (f.kind === 'nix_failed' && f.transient) || f.kind === 'state_unavailable' || f.kind === 'timeout' || f.kind === 'internal';
}

/** Starts build workers for every system in `config.workerSystems`. */
export function startBuildWorker(deps: WorkerDeps): BuildWorker {
  const { config, redis, log, metrics } = deps;
  const keys = redisKeys(config.redisPrefix);
  const layerCache = new LayerCache(redis, keys, config.layerLockTtlSeconds * 1000);
  const manifests = new ManifestCache(redis, keys);
  const status = new BuildStatusStore(redis, keys);
  const prepare = nixPreparation({ nixDir: config.nixDir, nix: config.nix, timeoutMs: config.nixTimeoutSeconds * 1000 });
  const popularity = new PopularityReader(redis, keys, {
    ...(config.popularityUrl ? { seedUrl: config.popularityUrl } : {}),
    log,
  });
  const statusRec = buildStatusRecorder(status, log); // recent failures for the web page (issue 6)

  /** Builds and publishes one image; its result (image or failure) is the job's return value. */
  const runBuildJob = async (job: Job<BuildJobData, BuildJobResult>, _token?: string, signal?: AbortSignal): Promise<BuildJobResult> => {
    const started = Date.now();
    const data = job.data;
    const jlog = log.child({ jobId: job.id, image: data.image.name, tag: data.image.tag, buildKey: data.buildKey });
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
    jlog.info({ packages: data.image.packages, revision: data.source.revision, attempt: job.attemptsMade + 1 }, 'build started');
    let failure: Failure;
    try {
      const outcome = await buildImage(
        {
          storage: deps.storage,
          layerCache,
          prepare,
          popularity: () => popularity.get(),
          layerBudget: config.layerBudget,
          packConcurrency: config.packConcurrency,
          log: jlog,
          onNixBuild: () => {
            metrics.buildsStarted.inc();
            bumpClusterStat(redis, keys, 'builds_started').catch(() => undefined);
          },
          onLayerPacked: (bytes) => {
            metrics.layerCacheMisses.inc();
            metrics.layersPacked.inc();
            metrics.bytesPacked.inc(bytes);
            bumpClusterStat(redis, keys, 'layers_packed').catch(() => undefined);
          },
          onLayerCacheHit: () => metrics.layerCacheHits.inc(),
        },
        data,
        progress,
        abort,
      );
      if (outcome.ok) {
        const image = await publishImage({ storage: deps.storage, status, manifests, log: jlog }, data, outcome.image, Date.now() - started);
        progress({ stage: 'done' });
        metrics.buildsSucceeded.inc();
        await bumpClusterStat(redis, keys, 'builds_succeeded').catch(() => undefined);
        const stats = { layers: outcome.image.layers.length, layerBytes: outcome.image.layerBytes, packedLayers: outcome.image.packedLayers, durationMs: Date.now() - started };
        jlog.info({ digest: image.digest, ...stats }, 'build finished');
        return { ok: true, image, stats };
      }
      failure = outcome.failure;
    } catch (err) {
      // Cancelled by a shutdown: not a build failure (GracefulShutdown hands the job back).
      if (abort.aborted) throw err;
      failure = failureOf(err) ?? { kind: 'internal', message: err instanceof Error ? err.message : String(err) };
    }
    // Cancelled by a shutdown: not a build failure (GracefulShutdown hands the job back).
    if (abort.aborted) throw new Error('build cancelled');
    const transient = isTransient(failure);
    metrics.buildsFailed.inc({ reason: failure.kind });
    await bumpClusterStat(redis, keys, 'builds_failed').catch(() => undefined);
    jlog.warn({ failure, transient }, 'build failed');
    await statusRec.failed(job, failure, transient, Date.now() - started); // web page (issue 6)
    const attemptsLeft = job.attemptsMade + 1 < (job.opts.attempts ?? 1);
    if (transient && attemptsLeft) throw new Error(describeFailure(failure));
    return { ok: false, failure: encodeFailure(failure) };
  };

  const shutdown = new GracefulShutdown(log);
  const workers = config.workerSystems.map(
    (system) =>
      new Worker<BuildJobData, BuildJobResult>(buildQueueName(system), shutdown.wrap(runBuildJob), {
        connection: deps.connect(),
        prefix: config.redisPrefix,
        concurrency: config.workerConcurrency,
        lockDuration: config.jobLockTtlSeconds * 1000,
        stalledInterval: config.stalledIntervalSeconds * 1000,
        maxStalledCount: 2,
      }),
  );
  for (const w of workers) {
    w.on('error', (err) => log.error({ err }, 'worker error'));
  }
  log.info({ systems: config.workerSystems, concurrency: config.workerConcurrency }, 'build worker started');
  return {
    close: async () => {
      await shutdown.close(workers, config.workerGraceSeconds * 1000);
    },
  };
}
