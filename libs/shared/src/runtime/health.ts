import type { Redis } from 'ioredis';
import type { Metrics } from '../infra/metrics';
import type { NixHealth } from '../nix';
import type { StorageDriver } from '../storage/driver';
import type { Liveness } from './liveness';
import { checkReadiness } from './readiness';

/** An answer of a health endpoint, for whichever HTTP server serves it. */
export interface HealthAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** What the health endpoints read. */
export interface HealthDeps {
  redis: Redis;
  storage: StorageDriver;
  metrics: Metrics;
  /** The Nix health of a build worker in this process: then /readyz also says whether Nix can build. */
  nixHealth?: () => Promise<NixHealth | undefined>;
  /** States a restart of this process would fix (see `liveness.ts`): /healthz is 503 while any holds. */
  liveness?: Liveness;
  /** Runs before each /metrics answer (e.g. to copy cluster counters into gauges). */
  beforeMetrics?: () => Promise<void>;
}

/** The paths {@link healthAnswer} serves. */
export const HEALTH_PATHS = ['/metrics', '/healthz', '/readyz'] as const;

/**
 * The health endpoints of every process, in one place: `/healthz` (200
 * while the process is alive and none of its {@link Liveness} checks fails,
 * else 503 naming the broken parts: a restart would fix them), `/readyz` (Redis and storage answer and, in a
 * process that builds, Nix can build; each within a bounded time: 503
 * otherwise) and `/metrics` (this process's Prometheus
 * registry). Null for any other path.
 */
export async function healthAnswer(path: string, deps: HealthDeps): Promise<HealthAnswer | null> {
  switch (path) {
    case '/healthz': {
      const broken = deps.liveness?.broken() ?? [];
      return { status: broken.length ? 503 : 200, contentType: 'application/json', body: JSON.stringify(broken.length ? { ok: false, broken } : { ok: true }) };
    }
    case '/readyz': {
      const r = await checkReadiness(deps.redis, deps.storage, deps.nixHealth ? { nix: deps.nixHealth } : {});
      const body = { redis: r.redis, storage: r.storage, ...(r.nix ? { nix: r.nix } : {}) };
      return { status: r.ok ? 200 : 503, contentType: 'application/json', body: JSON.stringify(body) };
    }
    case '/metrics':
      await deps.beforeMetrics?.().catch(() => undefined);
      return { status: 200, contentType: deps.metrics.registry.contentType, body: await deps.metrics.registry.metrics() };
    default:
      return null;
  }
}
