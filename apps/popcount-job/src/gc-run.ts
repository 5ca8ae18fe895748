/**
 * One storage collection run as this process does it: under the cluster's
 * one collection lock (`<prefix>:gc:lock`, a Redis key that expires unless
 * renewed, so a dead run frees it), with this process's metrics and one log
 * line per run. Shared by the scheduled job (`gc-scheduler.ts`) and
 * `npm run gc` when no process runs the job (`gc-once.ts`).
 */
import {
  type BuildJobData,
  type BuildJobResult,
  BuildStatusStore,
  type GcReport,
  LayerCache,
  ManifestCache,
  NIX_SYSTEMS,
  type ProcessDeps,
  StorageUsage,
  buildQueueName,
  collectStorage,
  holdKey,
  redisKeys,
} from '@nixery/shared';
import { Queue } from 'bullmq';

/** How long the collection lock lives unrenewed. */
const LOCK_TTL_MS = 60_000;
/** Digests named in a dry run's log line at most. */
const LOGGED = 200;

/** A run's outcome: its report, or that another run held the lock. */
export type GcOutcome = { ok: true; report: GcReport } | { ok: false; skipped: 'another collection is running' };

/** Removes the completed build jobs (every system's queue) whose result is one of `digests`, so the next pull of such an image builds it again. */
async function forgetBuildResults(deps: ProcessDeps, digests: ReadonlySet<string>): Promise<void> {
  if (digests.size === 0) return;
  for (const system of NIX_SYSTEMS) {
    const queue = new Queue<BuildJobData, BuildJobResult>(buildQueueName(system), { connection: deps.redis, prefix: deps.config.redisPrefix });
    try {
      const jobs = await queue.getCompleted();
      const stale = jobs.filter((j) => j?.returnvalue?.ok && digests.has(j.returnvalue.image.digest));
      await Promise.all(stale.map((j) => j.remove().catch(() => undefined)));
    } finally {
      await queue.close();
    }
  }
}

/** Runs one collection under the lock (see the module comment); a failed run is counted, logged and thrown. */
export async function runCollection(deps: ProcessDeps, dryRun: boolean): Promise<GcOutcome> {
  const { config, redis, metrics } = deps;
  const log = deps.log.child({ component: 'gc' });
  const keys = redisKeys(config.redisPrefix);
  const lock = await holdKey(redis, keys.gcLock, LOCK_TTL_MS, { onlyIfFree: true });
  if (!lock) {
    metrics.gcRuns.inc({ outcome: 'skipped' });
    log.info('storage collection skipped: another run holds the lock');
    return { ok: false, skipped: 'another collection is running' };
  }
  try {
    const report = await collectStorage(
      {
        storage: deps.storage,
        usage: new StorageUsage(redis, keys),
        manifests: new ManifestCache(redis, keys),
        layers: new LayerCache(redis, keys, config.layerLockTtlSeconds * 1000),
        status: new BuildStatusStore(redis, keys),
        builds: { forget: (digests) => forgetBuildResults(deps, digests) },
      },
      { keepMs: config.gc.keepMs, graceMs: config.gc.graceMs, dryRun },
    );
    metrics.gcRuns.inc({ outcome: dryRun ? 'dry_run' : 'collected' });
    if (!dryRun) {
      metrics.gcObjectsDeleted.inc({ kind: 'manifest' }, report.manifests.length);
      metrics.gcObjectsDeleted.inc({ kind: 'blob' }, report.blobs.length);
      metrics.gcBytesFreed.inc(report.bytes);
    }
    const { manifests, blobs, ...rest } = report;
    const named = dryRun ? { wouldDelete: [...manifests, ...blobs].slice(0, LOGGED).map((o) => o.key) } : {};
    log.info({ ...rest, manifests: manifests.length, blobs: blobs.length, ...named }, dryRun ? 'storage collection dry run' : 'storage collection done');
    return { ok: true, report };
  } catch (err) {
    metrics.gcRuns.inc({ outcome: 'failed' });
    log.error({ err: err instanceof Error ? err.message : String(err) }, 'storage collection failed');
    throw err;
  } finally {
    await lock.release();
  }
}
