import {
  type BuildJobData,
  type BuildJobResult,
  BuildStatusStore,
  LayerCache,
  ManifestCache,
  type Liveness,
  type NixHealth,
  NixHealthMonitor,
  PopularityReader,
  type ProcessDeps,
  buildQueueName,
  checkNixBuilds,
  nixPreparation,
  redisKeys,
  startStagingSweeper,
} from '@nixery/shared';
import { Worker } from 'bullmq';
import { buildJobRunner } from './build-job';
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
export type WorkerDeps = ProcessDeps & {
  /** The process's /healthz checks: the worker registers `build-worker` (a BullMQ worker that stopped unasked). */
  liveness?: Liveness;
};

/** Starts build workers for every system in `config.workerSystems`. */
export function startBuildWorker(deps: WorkerDeps): BuildWorker {
  const { config, redis, log, metrics } = deps;
  const keys = redisKeys(config.redisPrefix);
  const status = new BuildStatusStore(redis, keys);
  const popularity = new PopularityReader(redis, keys, {
    ...(config.popularityUrl ? { seedUrl: config.popularityUrl } : {}),
    log,
  });
  // Can Nix build here at all? Checked at start, and again while it cannot (issue 9).
  const nixHealth = new NixHealthMonitor(() => checkNixBuilds(config.nix), {
    recheckMs: NIX_RECHECK_MS,
    onResult: (h, previous) => {
      if (!h.ok) log.error({ cause: h.cause, hint: h.hint }, `Nix cannot build on this machine; pulls that need a build answer 503 until it can. Fix: ${h.hint}`);
      else if (previous && !previous.ok) log.info('Nix builds again');
    },
  });
  void nixHealth.recheck();

  const runBuildJob = buildJobRunner({
    build: {
      storage: deps.storage,
      layerCache: new LayerCache(redis, keys, config.layerLockTtlSeconds * 1000),
      prepare: nixPreparation({ nixDir: config.nixDir, nix: config.nix, timeoutMs: config.nixTimeoutSeconds * 1000 }),
      popularity: () => popularity.get(),
      layerBudget: config.layerBudget,
      packConcurrency: config.packConcurrency,
    },
    publish: { storage: deps.storage, status, manifests: new ManifestCache(redis, keys) },
    nixHealth,
    statusRec: buildStatusRecorder(status, log), // recent failures for the web page (issue 6)
    metrics,
    redis,
    keys,
    log,
  });

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
  log.info({ systems: config.workerSystems, concurrency: config.workerConcurrency }, 'build worker started');
  return {
    close: async () => {
      await shutdown.close(workers, config.workerGraceSeconds * 1000, redis);
      await sweeper.stop();
    },
    nixHealth: () => nixHealth.ensure(),
  };
}
