import { Failed } from '../core/failure';

/** What a loader reports: a value, or why it could not get one (errors are data). */
export type LoadOutcome<T> = { ok: true; value: T } | { ok: false; error: string };

/** Options of {@link RefreshingValue}. */
export interface RefreshOptions {
  /** How long a loaded value is reused before the next load (ms; 0 = load on every call, concurrent calls share one load). */
  ttlMs: number;
  /**
   * How long after the last successful load a stale value may still be served
   * while loading fails (ms). After that, or with no value at all, `get`
   * throws a `source_unavailable` failure.
   */
  fallbackMs: number;
  /** What is being resolved, for messages ("nixpkgs channel nixos-unstable"). */
  what: string;
  /** Called every time a failed load is answered with the last good value (for a warning log). */
  onFallback?: (info: { error: string; staleForMs: number; value: unknown }) => void;
  /** Called when a load fails and there is nothing to fall back to. */
  onFailure?: (info: { error: string }) => void;
  /** Clock (tests). Default Date.now. */
  now?: () => number;
}

/**
 * A value resolved from something that moves (a git repository's refs, a
 * channel's revision): reused for `ttlMs`, reloaded after that with one load
 * shared by all concurrent callers. When a reload fails, the last good value is
 * served for at most `fallbackMs` after it was last confirmed (retrying every
 * `ttlMs`, at least every second), and `onFallback` says so. With no usable
 * value a `source_unavailable` failure is thrown, naming the source and
 * the error; failures are retried at most once a second.
 */
export class RefreshingValue<T> {
  private good: { value: T; confirmedAt: number } | undefined;
  private checkAfter = 0;
  private failure: { error: string; until: number } | undefined;
  private inflight: Promise<T> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly load: () => Promise<LoadOutcome<T>>,
    private readonly opts: RefreshOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** The current value. Cheap (no I/O) while it is fresh. */
  get(): Promise<T> {
    if (this.good && this.now() < this.checkAfter) return Promise.resolve(this.good.value);
    this.inflight ??= this.refresh().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async refresh(): Promise<T> {
    const t0 = this.now();
    if (!this.good && this.failure && t0 < this.failure.until) throw this.unavailable(this.failure.error);
    let outcome: LoadOutcome<T>;
    try {
      outcome = await this.load();
    } catch (e) {
      outcome = { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    const t = this.now();
    if (outcome.ok) {
      this.good = { value: outcome.value, confirmedAt: t };
      this.failure = undefined;
      this.checkAfter = t + this.opts.ttlMs;
      return outcome.value;
    }
    const retryMs = Math.max(this.opts.ttlMs, 1000);
    this.failure = { error: outcome.error, until: t + retryMs };
    if (this.good && t - this.good.confirmedAt <= this.opts.fallbackMs) {
      this.checkAfter = Math.min(t + retryMs, this.good.confirmedAt + this.opts.fallbackMs + 1);
      this.opts.onFallback?.({ error: outcome.error, staleForMs: t - this.good.confirmedAt, value: this.good.value });
      return this.good.value;
    }
    this.good = undefined;
    this.opts.onFailure?.({ error: outcome.error });
    throw this.unavailable(outcome.error);
  }

  private unavailable(error: string): Failed {
    return new Failed({ kind: 'source_unavailable', source: this.opts.what, error });
  }
}

/** Text with the user name and password of every URL in it replaced by `***`, safe for logs and error details. */
export function redactUrl(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@');
}
