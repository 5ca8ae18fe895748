import type { Redis } from 'ioredis';
import { withTimeout } from '../core/timeout';
import type { StorageDriver } from '../storage/driver';

/** What /readyz reports. */
export interface Readiness {
  ok: boolean;
  redis: boolean;
  storage: boolean;
}

/** Pings Redis and storage, each bounded by `timeoutMs` (default 2 s), so /readyz answers while either is away. */
export async function checkReadiness(redis: Redis, storage: StorageDriver, timeoutMs = 2000): Promise<Readiness> {
  const [r, s] = await Promise.allSettled([
    withTimeout(redis.ping(), timeoutMs, 'redis ping'),
    withTimeout(storage.ping(), timeoutMs, 'storage ping'),
  ]);
  const out = { redis: r.status === 'fulfilled', storage: s.status === 'fulfilled' };
  return { ok: out.redis && out.storage, ...out };
}
