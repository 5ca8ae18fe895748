import type { Logger } from './logger';

/** Levels a throttled line may have. */
export type ThrottledLevel = 'debug' | 'info' | 'warn' | 'error';

/** Default length of one throttling window: 60 s (NIXERY_LOG_REPEAT_INTERVAL). */
export const LOG_REPEAT_INTERVAL_MS = 60_000;

/**
 * Logs an error that can repeat per request or per job once per interval:
 * the first line of a `key` is written at once and opens a window of
 * `intervalMs`; further lines of the same key inside it are only counted;
 * when the window ends, one line says how often it repeated (the first
 * line's message with ` (repeated N times in T s)` and a `repeated` field),
 * and the next occurrence is written at once again. A key seen only once
 * costs one line. `flush` writes what is counted (at shutdown); timers never
 * hold the process open.
 */
export interface LogThrottle {
  /**
   * Logs `msg` under `key` (identical errors share a key), or counts it when
   * its window is open. `via` (a request's or job's child logger) writes the
   * line instead of the throttle's logger; the count goes through the latest `via`.
   */
  log(level: ThrottledLevel, key: string, fields: Record<string, unknown>, msg: string, via?: Logger): void;
  /** Writes the pending "repeated" lines now and closes every window. */
  flush(): void;
}

interface Window {
  via: Logger;
  level: ThrottledLevel;
  fields: Record<string, unknown>;
  msg: string;
  repeated: number;
  opened: number;
  timer: NodeJS.Timeout;
}

/** A {@link LogThrottle} writing to `log`. */
export function logThrottle(log: Logger, intervalMs: number = LOG_REPEAT_INTERVAL_MS): LogThrottle {
  const open = new Map<string, Window>();

  const close = (key: string) => {
    const w = open.get(key);
    if (!w) return;
    open.delete(key);
    clearTimeout(w.timer);
    if (w.repeated === 0) return;
    const seconds = Math.max(1, Math.round((Date.now() - w.opened) / 1000));
    w.via[w.level]({ ...w.fields, repeated: w.repeated }, `${w.msg} (repeated ${w.repeated} times in ${seconds} s)`);
  };

  return {
    log(level, key, fields, msg, via = log) {
      const w = open.get(key);
      if (w) {
        w.repeated++;
        w.fields = fields; // the latest occurrence's fields and logger (job id, ...) go with the count
        w.via = via;
        return;
      }
      via[level](fields, msg);
      const timer = setTimeout(() => close(key), intervalMs);
      timer.unref();
      open.set(key, { via, level, fields, msg, repeated: 0, opened: Date.now(), timer });
    },
    flush() {
      for (const key of [...open.keys()]) close(key);
    },
  };
}

/** The message of an error, for a throttle key or a log field. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
