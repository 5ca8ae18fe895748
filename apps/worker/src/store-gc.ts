import { type Logger, type Metrics, type NixRun, type StoreCollector, type StoreGcOptions, type StoreGcOutcome, startStoreCollector } from '@nixery/shared';

/** A failing collection is logged at error level when it starts failing, then at most this often while it keeps failing. */
const FAILURE_LOG_INTERVAL_MS = 10 * 60_000;

/**
 * Runs the Nix store collector of this worker (issue 11): logs each
 * collection (info: bytes freed, paths, free space before and after), counts
 * runs, failures (by reason) and bytes freed, and keeps the store's free
 * space as a gauge. A collection that fails is an error line naming the
 * cause once when the failures start (and again every 10 minutes, with how
 * many failed meanwhile, while they go on), and an info line when a
 * collection works again; it never stops the worker.
 */
export function startWorkerStoreGc(deps: { nix: NixRun; options: StoreGcOptions; metrics: Metrics; log: Logger }): StoreCollector {
  const { metrics, log } = deps;
  let failing = 0;
  let lastFailureLog = 0;
  const onOutcome = (o: StoreGcOutcome) => {
    if ('freeBytes' in o && o.freeBytes !== undefined) metrics.nixStoreFreeBytes.set(o.kind === 'collected' ? o.freeAfterBytes : o.freeBytes);
    if (o.kind === 'failed') {
      metrics.nixGcFailures.inc({ reason: o.reason });
      failing++;
      if (failing === 1 || Date.now() - lastFailureLog >= FAILURE_LOG_INTERVAL_MS) {
        lastFailureLog = Date.now();
        log.error({ reason: o.reason, cause: o.cause, failures: failing, freeBytes: o.freeBytes, minFreeBytes: deps.options.minFreeBytes }, `Nix store garbage collection failed: ${o.cause}`);
      } else {
        log.debug({ reason: o.reason, failures: failing }, 'Nix store garbage collection failed again');
      }
      return;
    }
    if (o.kind !== 'collected') return;
    metrics.nixGcRuns.inc();
    metrics.nixGcBytesFreed.inc(o.freedBytes);
    if (failing > 0) log.info({ failures: failing }, 'Nix store garbage collection works again');
    failing = 0;
    log.info(
      { freedBytes: o.freedBytes, deletedPaths: o.deletedPaths, freeBytes: o.freeBytes, freeAfterBytes: o.freeAfterBytes, minFreeBytes: deps.options.minFreeBytes, durationMs: o.durationMs },
      'collected Nix store garbage',
    );
  };
  return startStoreCollector(deps.nix, { ...deps.options, onOutcome });
}
