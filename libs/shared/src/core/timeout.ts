import { Failed, type Failure } from './failure';

/** Rejects with a `timeout` failure after `ms` unless `p` settles first. The timer never holds the process open. */
export function withTimeout<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Failed({ kind: 'timeout', what, ms })), ms);
    t.unref?.();
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/**
 * Settles like `p`, or rejects with a `Failed` carrying `failure` as soon as
 * `signal` aborts (at once when it already has). `p` itself goes on; only
 * the caller stops waiting for it.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal, failure: Failure): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(new Failed(failure));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Failed(failure));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
