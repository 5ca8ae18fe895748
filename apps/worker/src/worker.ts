import {
  type BuildFailure,
  type BuildJobData,
  type BuildJobResult,
  type BuildProgress,
  LayerCache,
  type Logger,
  ManifestCache,
  type NixHealth,
  NixHealthMonitor,
  PopularityReader,
  type ProcessDeps,
  bumpClusterStat,
  buildImage,
  buildQueueName,
  checkNixBuilds,
  encodeFailure,
  redisKeys,
} from '@nixery/shared';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { GracefulShutdown } from './shutdown';
import { buildStatusRecorder } from './status-hooks';

/** A running build worker (one BullMQ worker per Nix system it builds). */
export interface BuildWorker {
  /** Stops taking jobs, waits for running ones (or hands them back after `graceMs`), closes connections. */
  close(): Promise<void>;
  /** Whether Nix can build here (re-checked when it could not); undefined until the first self-check ends. */
  nixHealth(): Promise<NixHealth | undefined>;
}

/** How often a broken Nix environment is checked again (when a job or /readyz asks). */
const NIX_RECHECK_MS = 10_000;

/** Dependencies handed in by the process that starts the worker (a subset of its Runtime). */
export type WorkerDeps = ProcessDeps;

/** Starts build workers for every system in `config.workerSystems`. */
export function startBuildWorker(deps: WorkerDeps): BuildWorker {
  const { config, redis, log, metrics } = deps;
  const keys = redisKeys(config.redisPrefix);
  const layerCache = new LayerCache(redis, keys, config.layerLockTtlSeconds * 1000);
  const manifests = new ManifestCache(redis, keys);
  const popularity = new PopularityReader(redis, keys, {
    ...(config.popularityUrl ? { seedUrl: config.popularityUrl } : {}),
    log,
  });
  const statusRec = buildStatusRecorder(redis, keys, log); // recent builds/failures for the web page (issue 6)
  // Can Nix build here at all? Checked at start, and again while it cannot (issue 9).
  const nixHealth = new NixHealthMonitor(() => checkNixBuilds(config.nix), {
    recheckMs: NIX_RECHECK_MS,
    onResult: (h, previous) => {
      if (!h.ok) log.error({ cause: h.cause, hint: h.hint }, `Nix cannot build on this machine; pulls that need a build answer 503 until it can. Fix: ${h.hint}`);
      else if (previous && !previous.ok) log.info('Nix builds again');
    },
  });
  void nixHealth.recheck();

  /** Ends a job as failed: metrics, status record, then the queue's failure (not retried unless transient). */
  const fail = async (job: Job<BuildJobData, BuildJobResult>, jlog: Logger, failure: BuildFailure, transient: boolean, started: number): Promise<never> => {
    metrics.buildsFailed.inc({ reason: failure.kind });
    await bumpClusterStat(redis, keys, 'builds_failed').catch(() => undefined);
    jlog.warn({ failure, transient }, 'build failed');
    await statusRec.failed(job, failure, transient, Date.now() - started); // web page (issue 6)
    const msg = encodeFailure(failure);
    throw transient ? new Error(msg) : new UnrecoverableError(msg);
  };
  /** The machine's failure, not the image's: Nix cannot build at all. Not retried; the client gets 503 naming the cause. */
  const nixBroken = (h: Extract<NixHealth, { ok: false }>): BuildFailure => ({ kind: 'nix_unavailable', cause: h.cause, hint: h.hint });

  const process = async (job: Job<BuildJobData, BuildJobResult>, _token?: string, signal?: AbortSignal): Promise<BuildJobResult> => {
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
    const health = await nixHealth.ensure();
    if (!health.ok) return fail(job, jlog, nixBroken(health), false, started);
    jlog.info({ packages: data.image.packages, revision: data.source.revision, attempt: job.attemptsMade + 1 }, 'build started');
    const outcome = await buildImage(
      {
        storage: deps.storage,
        layerCache,
        popularity: () => popularity.get(),
        nixDir: config.nixDir,
        nix: config.nix,
        nixTimeoutMs: config.nixTimeoutSeconds * 1000,
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
    // Cancelled by a shutdown: not a build failure (GracefulShutdown hands the job back).
    if (!outcome.ok && abort.aborted) throw new Error('build cancelled');
    if (!outcome.ok) {
      // A Nix failure may be the machine breaking under us: check before blaming the image.
      if (outcome.failure.kind === 'nix_failed') {
        const now = await nixHealth.recheck();
        if (!now.ok) return fail(job, jlog, nixBroken(now), false, started);
      }
      return fail(job, jlog, outcome.failure, outcome.transient, started);
    }
    const img = outcome.image;
    // Layer facts first, so the image page never finds the manifest without them (issue 6).
    await statusRec.succeeded(job, img, Date.now() - started);
    await manifests.put(data.buildKey, {
      digest: img.manifest.digest,
      mediaType: img.manifest.mediaType,
      body: img.manifest.body,
      revision: data.source.revision,
    });
    metrics.buildsSucceeded.inc();
    await bumpClusterStat(redis, keys, 'builds_succeeded').catch(() => undefined);
    const durationMs = Date.now() - started;
    jlog.info({ digest: img.manifest.digest, layers: img.layers.length, packed: img.packedLayers, size: img.size, durationMs }, 'build finished');
    return { manifestDigest: img.manifest.digest, layers: img.layers.length, size: img.size, packedLayers: img.packedLayers, durationMs };
  };

  const shutdown = new GracefulShutdown(log);
  const workers = config.workerSystems.map(
    (system) =>
      new Worker<BuildJobData, BuildJobResult>(buildQueueName(system), shutdown.wrap(process), {
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
    nixHealth: () => nixHealth.ensure(),
  };
}
