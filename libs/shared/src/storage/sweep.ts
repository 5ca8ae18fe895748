import type { StorageDriver } from './driver';

/** Settings of the staging sweeper. */
export interface StagingSweepOptions {
  /** Milliseconds after its last change that a staging leftover is removed (config: NIXERY_STAGING_MAX_AGE, default 600 s). */
  maxAgeMs: number;
  /** Milliseconds between sweeps; the first runs at once (config: NIXERY_STAGING_SWEEP_INTERVAL, default 300 s). */
  intervalMs: number;
  /** Told the outcome of each sweep that removed something or failed (for a log line). */
  onSweep?: (outcome: { removed: number } | { error: unknown }) => void;
}

/** A running staging sweeper. */
export interface StagingSweeper {
  /** Stops sweeping; resolves once a sweep in progress has ended. */
  stop(): Promise<void>;
}

/**
 * Removes staging leftovers (writes whose process died before the move to
 * the digest key, e.g. a SIGKILL mid-pack) older than `maxAgeMs`, at once and
 * then every `intervalMs`, through the driver's `removeStaging`. A staged
 * write in progress is never that old: it is written and moved within one
 * layer's packing. Sweeps never overlap; the timer keeps no process alive.
 */
export function startStagingSweeper(storage: StorageDriver, opts: StagingSweepOptions): StagingSweeper {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const sweep = async () => {
    try {
      const r = await storage.removeStaging(new Date(Date.now() - opts.maxAgeMs));
      if (r.removed > 0) opts.onSweep?.(r);
    } catch (error) {
      opts.onSweep?.({ error });
    }
  };
  const tick = () => {
    running = sweep().finally(() => {
      if (!stopped) {
        timer = setTimeout(tick, opts.intervalMs);
        timer.unref();
      }
    });
  };
  tick();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
