/**
 * When the popularity job runs (NIXERY_POPCOUNT_SCHEDULE):
 * - `off`: this process neither schedules nor runs popcount jobs;
 * - an interval: a number of milliseconds, or a number with a unit
 *   (`90s`, `15m`, `6h`, `1d`);
 * - anything else with 5 or 6 space-separated fields: a cron pattern
 *   (`0 3 * * *`), as BullMQ's job scheduler reads it.
 */
export type PopcountSchedule =
  | { kind: 'off' }
  | { kind: 'every'; ms: number }
  | { kind: 'cron'; pattern: string };

/** Default schedule: once a day. */
export const DEFAULT_POPCOUNT_SCHEDULE = '24h';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a schedule; returns an error message for text that is neither `off`, an interval nor a cron pattern. */
export function parsePopcountSchedule(text: string): PopcountSchedule | { error: string } {
  const t = text.trim();
  if (t === 'off') return { kind: 'off' };
  const m = /^(\d+)\s*(ms|s|m|h|d)?$/.exec(t);
  if (m) {
    const ms = Number(m[1]) * UNITS[m[2] ?? 'ms']!;
    if (!Number.isSafeInteger(ms) || ms < 100) return { error: `popcount interval must be at least 100 ms: ${text}` };
    return { kind: 'every', ms };
  }
  const fields = t.split(/\s+/);
  if ((fields.length === 5 || fields.length === 6) && fields.every((f) => /^[0-9A-Za-z*?,/#LW-]+$/.test(f))) {
    return { kind: 'cron', pattern: fields.join(' ') };
  }
  return { error: `not "off", an interval (e.g. 24h, 15m, 5000) or a cron pattern (e.g. "0 3 * * *"): ${text}` };
}

/** Settings of the popularity job (NIXERY_POPCOUNT_*). */
export interface PopcountConfig {
  /** When the job runs (NIXERY_POPCOUNT_SCHEDULE, default `24h`). */
  schedule: PopcountSchedule;
  /** Binary cache whose narinfo files give references, for channel sources (NIXERY_POPCOUNT_CACHE_URL, default https://cache.nixos.org). */
  cacheUrl: string;
  /**
   * The channel's list of store paths, xz-compressed or plain text (NIXERY_POPCOUNT_STORE_PATHS_URL).
   * Default `<NIXERY_CHANNEL_URL>/<channel>/store-paths.xz`.
   */
  storePathsUrl?: string;
  /** narinfo downloads at once (NIXERY_POPCOUNT_CONCURRENCY, default 32). */
  concurrency: number;
  /** Seconds one run may take, Nix builds included (NIXERY_POPCOUNT_TIMEOUT, default 3600). */
  timeoutSeconds: number;
  /** Whether git and local package sets are built before counting (NIXERY_POPCOUNT_REALISE, default true); otherwise only what is already in the store counts. */
  realise: boolean;
}
