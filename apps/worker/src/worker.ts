import {
  type BuildJobData,
  type BuildJobResult,
  BuildStatusStore,
  LayerCache,
  ManifestCache,
  NegativeCache,
  type Liveness,
  type NixHealth,
  NixHealthMonitor,
  PopularityReader,
  type ProcessDeps,
  buildQueueName,
  checkNixBuilds,
  errorText,
  logThrottle,
  nixPreparation,
  redisKeys,
  startStagingSweeper,
  StorageUsage,
} from '@nixery/shared';
import { Worker } from 'bullmq';
import { buildJobRunner } from './build-job';
import { GracefulShutdown } from './shutdown';
import { buildStatusRecorder } from './status-hooks';
import { startWorkerStoreGc } from './store-gc';
import { workerSystems } from './systems';

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
export type WorkerDeps = ProcessDeps & {
  /** The process's /healthz checks: the worker registers `build-worker` (a BullMQ worker that stopped unasked). */
  liveness?: Liveness;
};

/** Starts build workers for the systems of `config.workerSystems` this worker takes (see systems.ts). */
export function startBuildWorker(deps: WorkerDeps): BuildWorker {
  const { config, redis, log, metrics } = deps;
  const keys = redisKeys(config.redisPrefix);
  const status = new BuildStatusStore(redis, keys);
  const popularity = new PopularityReader(redis, keys, {
    ...(config.popularityUrl ? { seedUrl: config.popularityUrl } : {}),
    log,
  });
  // The systems this worker builds, and Nix with extra-platforms for the emulated ones (issue 13).
  const { systems, nix } = workerSystems(config, log);
  // Can Nix build here at all, for every system taken? Checked at start, and again while it cannot (issue 9).
  const nixHealth = new NixHealthMonitor(() => checkNixBuilds(nix, { systems }), {
    recheckMs: NIX_RECHECK_MS,
    onResult: (h, previous) => {
      if (!h.ok) log.error({ cause: h.cause, hint: h.hint }, `Nix cannot build on this machine; pulls that need a build answer 503 until it can. Fix: ${h.hint}`);
      else if (previous && !previous.ok) log.info('Nix builds again');
    },
  });
  void nixHealth.recheck();

  // Use records and deletion claims of storage collection (issue 11): builds never lose a blob to it.
  const usage = new StorageUsage(redis, keys);
  const manifests = new ManifestCache(redis, keys);
  const runBuildJob = buildJobRunner({
    build: {
      storage: deps.storage,
      layerCache: new LayerCache(redis, keys, config.layerLockTtlSeconds * 1000),
      prepare: nixPreparation({ nixDir: config.nixDir, nix, timeoutMs: config.nixTimeoutSeconds * 1000 }),
      popularity: () => popularity.get(),
      layerBudget: config.layerBudget,
      packConcurrency: config.packConcurrency,
      usage,
      sameImage: (resolved) => manifests.byBuildKey(resolved), // one image per package set, whatever its spelling (issue 12)
    },
    publish: { storage: deps.storage, status, manifests, usage },
    nixHealth,
    statusRec: buildStatusRecorder(status, log, config.logRepeatSeconds * 1000), // recent failures for the web page (issue 6)
    metrics,
    redis,
    keys,
    log,
    logRepeatMs: config.logRepeatSeconds * 1000,
    negative: new NegativeCache(redis, keys, config.negativeTtlSeconds * 1000, log), // issue 12
  });

  const shutdown = new GracefulShutdown(log);
  const workers = systems.map(
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
  // BullMQ retries what failed (a Redis refusing writes fails every poll): one line per interval per error.
  const workerErrors = logThrottle(log, config.logRepeatSeconds * 1000);
  for (const w of workers) {
    w.on('error', (err) => workerErrors.log('error', errorText(err), { err }, 'worker error'));
  }
  // A BullMQ worker whose loop ended without close() takes no job again until the process restarts.
  deps.liveness?.watch('build-worker', () =>
    !shutdown.stopping && workers.some((w) => !w.isRunning()) ? 'a BullMQ build worker stopped taking jobs without being asked to' : null,
  );
  // Staging leftovers of writes that died before their move (issue 11): at start-up, then periodically.
  const sweeper = startStagingSweeper(deps.storage, {
    maxAgeMs: config.stagingMaxAgeSeconds * 1000,
    intervalMs: config.stagingSweepSeconds * 1000,
    onSweep: (o) =>
      'error' in o
        ? log.warn({ err: o.error instanceof Error ? o.error.message : String(o.error) }, 'staging sweep failed')
        : log.info({ removed: o.removed }, 'removed staging leftovers'),
  });
  // The Nix store stays bounded (issue 11): collected when its free space drops below NIXERY_NIX_MIN_FREE.
  const storeGc = startWorkerStoreGc({ nix, options: config.nixGc, metrics, log });
  log.info({ systems, concurrency: config.workerConcurrency }, 'build worker started');
  return {
    close: async () => {
      await shutdown.close(workers, config.workerGraceSeconds * 1000, redis);
      await sweeper.stop();
      await storeGc.stop();
      workerErrors.flush();
    },
    nixHealth: () => nixHealth.ensure(),
  };
}
