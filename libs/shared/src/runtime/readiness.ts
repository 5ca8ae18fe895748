import type { Redis } from 'ioredis';
import { withTimeout } from '../core/timeout';
import type { NixHealth } from '../nix';
import type { StorageDriver } from '../storage/driver';

/** What /readyz reports. */
export interface Readiness {
  ok: boolean;
  redis: boolean;
  storage: boolean;
  /** Present when this process builds: whether Nix can build, and if not why and how to fix it. */
  nix?: { ok: boolean; cause?: string; hint?: string };
}

/** Options of {@link checkReadiness}. */
export interface ReadinessOptions {
  /** Bound of each check in ms (default 2000). */
  timeoutMs?: number;
  /** This process's Nix health (a process that builds); undefined while the first self-check runs. */
  nix?: () => Promise<NixHealth | undefined>;
}

/** Pings Redis and storage and reads the Nix health, each bounded by `timeoutMs`, so /readyz answers while any is away. */
export async function checkReadiness(redis: Redis, storage: StorageDriver, opts: ReadinessOptions = {}): Promise<Readiness> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const [r, s, n] = await Promise.allSettled([
    withTimeout(redis.ping(), timeoutMs, 'redis ping'),
    withTimeout(storage.ping(), timeoutMs, 'storage ping'),
    opts.nix ? withTimeout(opts.nix(), timeoutMs, 'nix self-check') : Promise.resolve(undefined),
  ]);
  const out: Readiness = { ok: false, redis: r.status === 'fulfilled', storage: s.status === 'fulfilled' };
  if (opts.nix) {
    const h = n.status === 'fulfilled' ? n.value : undefined;
    out.nix = h === undefined ? { ok: false, cause: 'the Nix self-check has not finished yet' } : h.ok ? { ok: true } : { ok: false, cause: h.cause, hint: h.hint };
  }
  out.ok = out.redis && out.storage && (out.nix?.ok ?? true);
  return out;
}
