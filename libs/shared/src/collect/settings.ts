/** When the storage collector runs (NIXERY_GC_SCHEDULE): `off`, an interval in ms, or a cron pattern. */
export type GcSchedule = { kind: 'off' } | { kind: 'every'; ms: number } | { kind: 'cron'; pattern: string };

/** Settings of storage garbage collection (NIXERY_GC_*). */
export interface GcConfig {
  /** When the job runs (NIXERY_GC_SCHEDULE, default `24h`; `off` in a process that must not run it). */
  schedule: GcSchedule;
  /** Milliseconds since its last pull after which a manifest, and the blobs only it refers to, are collected (NIXERY_GC_KEEP, default 30 days). */
  keepMs: number;
  /** Milliseconds after its last write (or a build's use) during which an object is never collected (NIXERY_GC_GRACE, default 1 hour). */
  graceMs: number;
  /** Scheduled runs only list what they would delete (NIXERY_GC_DRY_RUN, default false). */
  dryRun: boolean;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration as milliseconds: a number of seconds (`90`) or a number with a unit (`90s`, `15m`, `6h`, `30d`); null for anything else. */
export function parseDurationMs(text: string): number | null {
  const m = /^(\d+)\s*([smhd])?$/.exec(text.trim());
  if (!m) return null;
  const ms = Number(m[1]) * UNITS[m[2] ?? 's']!;
  return Number.isSafeInteger(ms) ? ms : null;
}
