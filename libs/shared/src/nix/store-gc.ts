/**
 * Keeps the Nix store's filesystem from filling up: checks the free space
 * under the store every `intervalMs` and, when it is below `minFreeBytes`,
 * runs the store's garbage collection through `runNix`:
 *
 *   nix-store --gc --max-freed <minFreeBytes - free>
 *
 * `--max-freed` frees just enough to get back above the threshold and stops:
 * the rest of the unrooted store (what the next builds would otherwise build
 * again) stays, and the collection is over sooner. `nix-collect-garbage`
 * would do the same collection (without `-d` it is `nix-store --gc`), but
 * always of everything. A running build is safe at any time: its Nix
 * processes hold temporary roots, and its outputs are rooted in the build's
 * own roots directory from the moment they are built until its layers are
 * packed (`prepare.ts`).
 *
 * A collection that fails (exit status, timeout, Nix missing) or a free-space
 * check that fails is reported as data through `onOutcome`; nothing here
 * throws, and collections never overlap.
 */
import { statfs } from 'node:fs/promises';
import type { RunResult } from '../infra/run-command';
import { type NixRun, runNix } from './command';
import { trimNixStderr } from './prepare';

/** Where this project's Nix store is (the store paths it reads assume it; see core/store-path.ts). */
export const NIX_STORE_DIR = '/nix/store';

/** Settings of the Nix store collector. */
export interface StoreGcOptions {
  /** Bytes that must stay free on the filesystem holding the store (NIXERY_NIX_MIN_FREE, default 10G); 0 = never collect. */
  minFreeBytes: number;
  /** Milliseconds between free-space checks; the first runs at start-up (NIXERY_NIX_GC_INTERVAL, default 60 s). */
  intervalMs: number;
  /** Milliseconds a collection may run before it is killed and counted as failed (NIXERY_NIX_GC_TIMEOUT, default 900 s). */
  timeoutMs: number;
}

/** Why a collection (or the check before it) failed. */
export type StoreGcFailureReason = 'exit' | 'timeout' | 'spawn' | 'signal' | 'free_space';

/** What one check of the collector led to. */
export type StoreGcOutcome =
  /** Enough space: nothing collected. */
  | { kind: 'enough'; freeBytes: number }
  /** A collection ran to its end. `freedBytes` and `deletedPaths` are Nix's own summary. */
  | { kind: 'collected'; freeBytes: number; freeAfterBytes: number; freedBytes: number; deletedPaths: number; durationMs: number }
  /** The collection or the free-space check failed; `cause` names it (Nix's words, trimmed). */
  | { kind: 'failed'; reason: StoreGcFailureReason; cause: string; freeBytes?: number; durationMs: number }
  /** Stopped (the worker is shutting down) while collecting: not a failure. */
  | { kind: 'stopped' };

/** Free bytes (for unprivileged users, as `df` shows them) on the filesystem holding `dir`. */
export async function freeBytesUnder(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

const SUMMARY_RE = /(\d+) store paths deleted, (\d+(?:\.\d+)?) MiB freed/;

/** Reads Nix's closing line ("3 store paths deleted, 1.25 MiB freed") from `nix-store --gc`'s stdout. */
export function parseGcSummary(stdout: string): { deletedPaths: number; freedBytes: number } | undefined {
  const m = SUMMARY_RE.exec(stdout);
  if (!m) return undefined;
  return { deletedPaths: Number(m[1]), freedBytes: Math.round(Number(m[2]) * 2 ** 20) };
}

function failureOf(r: RunResult, timeoutMs: number): { reason: StoreGcFailureReason; cause: string } {
  if (r.timedOut) return { reason: 'timeout', cause: `nix-store --gc timed out after ${timeoutMs} ms` };
  if (r.spawnError !== undefined) return { reason: 'spawn', cause: `nix-store --gc could not start: ${r.spawnError}` };
  // Nix lists every path it deletes on stderr; the error it stopped at comes after them.
  const errorAt = r.stderr.search(/^error:/m);
  const tail = trimNixStderr(errorAt >= 0 ? r.stderr.slice(errorAt) : r.stderr, 1000);
  const how = r.exitSignal ? `killed by ${r.exitSignal}` : `exit ${r.code}`;
  return { reason: r.exitSignal ? 'signal' : 'exit', cause: `nix-store --gc failed (${how})${tail ? `: ${tail}` : ''}` };
}

/** Runs one collection freeing at most `maxFreedBytes`; never throws. */
export async function collectStoreGarbage(
  nix: NixRun,
  opts: { maxFreedBytes: number; timeoutMs: number; signal?: AbortSignal; nixStore?: string },
): Promise<
  | { ok: true; freedBytes: number; deletedPaths: number }
  | { ok: false; aborted: true }
  | { ok: false; aborted: false; reason: StoreGcFailureReason; cause: string }
> {
  const r = await runNix(
    nix,
    { program: opts.nixStore ?? 'nix-store', head: ['--gc'], rest: ['--max-freed', String(Math.max(1, Math.ceil(opts.maxFreedBytes)))] },
    { timeoutMs: opts.timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) },
  );
  if (r.aborted) return { ok: false, aborted: true };
  if (r.code !== 0 || r.timedOut) return { ok: false, aborted: false, ...failureOf(r, opts.timeoutMs) };
  return { ok: true, ...(parseGcSummary(r.stdout) ?? { deletedPaths: 0, freedBytes: 0 }) };
}

/** One check: free space, then a collection of the difference when it is below the threshold. Never throws. */
export async function checkStoreSpace(
  nix: NixRun,
  opts: StoreGcOptions & { storeDir?: string; signal?: AbortSignal; nixStore?: string },
): Promise<StoreGcOutcome> {
  const started = Date.now();
  const dir = opts.storeDir ?? NIX_STORE_DIR;
  let freeBytes: number;
  try {
    freeBytes = await freeBytesUnder(dir);
  } catch (err) {
    return { kind: 'failed', reason: 'free_space', cause: `cannot read the free space under ${dir}: ${(err as Error).message}`, durationMs: Date.now() - started };
  }
  if (freeBytes >= opts.minFreeBytes) return { kind: 'enough', freeBytes };
  const r = await collectStoreGarbage(nix, { ...opts, maxFreedBytes: opts.minFreeBytes - freeBytes });
  const durationMs = Date.now() - started;
  if (!r.ok) return r.aborted ? { kind: 'stopped' } : { kind: 'failed', reason: r.reason, cause: r.cause, freeBytes, durationMs };
  const freeAfterBytes = await freeBytesUnder(dir).catch(() => freeBytes + r.freedBytes);
  return { kind: 'collected', freeBytes, freeAfterBytes, freedBytes: r.freedBytes, deletedPaths: r.deletedPaths, durationMs };
}

/** A running store collector. */
export interface StoreCollector {
  /** Stops checking; a collection in progress is killed (Nix's collection is safe to interrupt). Resolves once it has ended. */
  stop(): Promise<void>;
}

/**
 * Checks the store's free space at once and then every `intervalMs` (after
 * the previous check ended, so checks never overlap), collecting when it is
 * low; each outcome goes to `onOutcome`. With `minFreeBytes` 0 it does
 * nothing. The timer keeps no process alive.
 */
export function startStoreCollector(
  nix: NixRun,
  opts: StoreGcOptions & { storeDir?: string; nixStore?: string; onOutcome: (o: StoreGcOutcome) => void },
): StoreCollector {
  if (opts.minFreeBytes <= 0) return { stop: async () => undefined };
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = checkStoreSpace(nix, { ...opts, signal: abort.signal })
      .then(opts.onOutcome)
      .catch(() => undefined) // onOutcome's own errors must not stop the collector
      .finally(() => {
        if (abort.signal.aborted) return;
        timer = setTimeout(tick, opts.intervalMs);
        timer.unref();
      });
  };
  tick();
  return {
    stop: async () => {
      abort.abort();
      clearTimeout(timer);
      await running;
    },
  };
}
