import Router from '@koa/router';
import {
  CLUSTER_STATS,
  BuildStatusStore,
  ManifestCache,
  NegativeCache,
  type Liveness,
  type ManifestLookup,
  type NixHealth,
  type ProcessDeps,
  HEALTH_PATHS,
  QueueReader,
  REPO_ROOT,
  SourceResolver,
  StorageUsage,
  healthAnswer,
  readClusterStats,
  redisKeys,
  registerQueueGauges,
  subscribeCollected,
  withTimeout,
  publishIndex,
} from '@nixery/shared';
import Koa from 'koa';
import { Admission } from './admission';
import { BuildClient, type Builds } from './build-client';
import { clientAddress } from './client-address';
import { pathRedactor } from './redact';
import { Waiters } from './waiters';
import { appErrorHandler, errorMiddleware } from './error-middleware';
import { type PlatformDeps, handleRegistry } from './registry';
import { requestLog } from './request-log';
import { adminDashboard } from './web/admin';
import { registerWebRoutes } from './web/routes';
import { RequestDrain } from './drain';
import { createPullAuth } from './auth/pull-auth';

/** What the gateway needs from the process that runs it (a subset of its Runtime). */
export type GatewayDeps = ProcessDeps & {
  /**
   * Nix health of a build worker in the same process (`npm start`): then
   * /readyz also says whether Nix can build. A cluster gateway has no Nix;
   * each worker's own /readyz reports it.
   */
  nixHealth?: () => Promise<NixHealth | undefined>;
  /** The process's /healthz checks (see runtime's `Liveness`); without it /healthz is 200 while the process runs. */
  liveness?: Liveness;
};

/** The gateway: a Koa app plus the resources it owns. */
export interface Gateway {
  app: Koa;
  resolver: SourceResolver;
  builds: Builds;
  /** Requests in flight and the signal that ends their waits when the gateway stops (see `serveGateway`). */
  drain: RequestDrain;
  close(): Promise<void>;
}

/** Parts a caller may hand in instead of the ones made from `deps` (in-process tests: a fake build queue, a manifest map). */
export interface GatewayParts {
  builds?: Builds;
  manifests?: ManifestLookup;
}

/** Builds the gateway's Koa app: registry protocol, metrics, health checks and the start page. */
export function createGateway(deps: GatewayDeps, parts: GatewayParts = {}): Gateway {
  const { config, redis, metrics, log } = deps;
  const keys = redisKeys(config.redisPrefix);
  const manifests = parts.manifests ?? new ManifestCache(redis, keys);
  // --- storage collection (issue 11): pull records, and collected manifests dropped from memory ---
  const pulls = new StorageUsage(redis, keys, Math.min(60_000, Math.max(1000, config.gc.keepMs / 10)));
  if (manifests instanceof ManifestCache) {
    const cache = manifests;
    subscribeCollected(deps.connect(), keys, { collected: (d) => cache.forget(d), resubscribed: () => cache.forgetAll() }).catch((err: unknown) =>
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot subscribe to storage collection news'),
    );
  }
  // --- end storage collection ---
  const resolver = new SourceResolver(config.source, {
    ttlSeconds: config.resolveTtlSeconds,
    fallbackSeconds: config.resolveFallbackSeconds,
    timeoutMs: 30_000,
    log,
  });
  const builds = parts.builds ?? new BuildClient({
      connect: deps.connect,
      prefix: config.redisPrefix,
      waitMs: config.buildWaitSeconds * 1000,
      onError: (err) => log.debug({ err: err.message }, 'build queue error'),
      // admission of cold builds (issue 12)
      admission: {
        admit: new Admission(redis, config.redisPrefix, config.admission),
        waiters: new Waiters(redis, config.redisPrefix),
        abandonAfterMs: config.admission.abandonAfterMs,
        onDropped: (system, ids) => {
          metrics.buildsAbandoned.inc(ids.length);
          log.info({ system, jobIds: ids.slice(0, 20), count: ids.length }, 'removed abandoned builds from the queue');
        },
      },
    });
  if (builds instanceof BuildClient) builds.startSweeping(Math.max(500, Math.min(5000, config.admission.abandonAfterMs / 2))); // issue 12
  // --- web page and observability (issue 6): read-only queue handles, build status, queue gauges ---
  const queues = new QueueReader(deps.connect, config.redisPrefix, (err) => log.debug({ err: err.message }, 'queue reader error'));
  const buildStatus = new BuildStatusStore(redis, keys);
  registerQueueGauges(metrics.registry, () => queues.all());
  // --- end issue 6 ---

  const negative = new NegativeCache(redis, keys, config.negativeTtlSeconds * 1000, log); // issue 12
  // Server paths never reach clients: error bodies, pages, /api/status (issue 12).
  const redact = pathRedactor([
    ...(config.source.type === 'path' ? [{ path: config.source.path, label: '<package set>' }] : []),
    { path: config.nixDir, label: '<nix>' },
    { path: REPO_ROOT, label: '<nixery>' },
    ...(config.storage.backend === 'filesystem' ? [{ path: config.storage.path, label: '<storage>' }] : []),
  ]);
  // Multi-platform images (issue 13): the index is composed here and published with the gateway's storage and cache.
  const platforms: PlatformDeps = {
    systems: config.platforms,
    defaultSystem: config.defaultPlatform,
    // A manifest map handed in (in-process tests) learns the index from the registry handler itself.
    publish: (key, index) =>
      publishIndex({ storage: deps.storage, manifests: manifests instanceof ManifestCache ? manifests : { put: async () => undefined }}, key, index),
  };
  const drain = new RequestDrain();
  // X-Forwarded-* count only from NIXERY_TRUSTED_PROXIES (client-address.ts), never through Koa's app.proxy (issue 12).
  const app = new Koa({ proxy: false });
  app.on('error', appErrorHandler(log));
  app.use(drain.middleware());
  app.use(clientAddress(config.trustedProxies));
  app.use(requestLog(log, metrics, config.logWarmEvery)); // issue 15: at most one short info line per request
  app.use(errorMiddleware(log, config.logRepeatSeconds * 1000, redact));
  // Pull authentication (issue 12): before the registry routes and the status pages; sets ctx.state.user.
  const auth = createPullAuth(config.auth, { redis, redisPrefix: config.redisPrefix, log, metrics, ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}) });
  if (auth) app.use(auth.middleware);
  app.use(async (ctx, next) => {
    if (!(await handleRegistry(ctx, { storage: deps.storage, manifests, resolver, builds, metrics, pulls, negative, stopping: drain.signal, maxPackages: config.admission.maxPackages, ...(auth ? { authorizeBuild: auth.authorizeBuild } : {}), platforms }))) await next();
  });

  // Queue dashboard, only when NIXERY_ADMIN_PASSWORD is set (otherwise /admin/queues is a 404). Issue 6.
  if (config.admin.password) {
    app.use(adminDashboard({ user: config.admin.user, password: config.admin.password, queues: queues.all() }));
  }

  const router = new Router();
  // /metrics, /healthz, /readyz: the same answers as every other process (runtime/health.ts).
  const health = {
    redis,
    storage: deps.storage,
    metrics,
    ...(deps.nixHealth ? { nixHealth: deps.nixHealth } : {}),
    ...(deps.liveness ? { liveness: deps.liveness } : {}),
    beforeMetrics: async () => {
      const stats = await withTimeout(readClusterStats(redis, keys), 1500, 'reading cluster stats').catch(() => null);
      if (stats) for (const s of CLUSTER_STATS) metrics.clusterStats.set({ counter: s }, stats[s]);
    },
  };
  router.get([...HEALTH_PATHS], async (ctx) => {
    const a = await healthAnswer(ctx.path, health);
    if (!a) return;
    ctx.status = a.status;
    ctx.set('Content-Type', a.contentType);
    ctx.body = a.body;
  });
  // Web pages: /, /api/status, /image/<name> (issue 6; apps/gateway/src/web/).
  registerWebRoutes(router, {
    fallbackHost: `localhost:${config.port}`,
    ...(config.publicUrl ? { publicHost: new URL(config.publicUrl).host } : {}), // issue 12
    resolver,
    manifests,
    queues,
    store: buildStatus,
    log,
    redact, // issue 12
  });
  app.use(router.routes());
  app.use(router.allowedMethods());

  return {
    app,
    resolver,
    builds,
    drain,
    close: async () => {
      resolver.close();
      await builds.close();
      await queues.close(); // issue 6
    },
  };
}
