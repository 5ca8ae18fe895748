import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import {
  CLUSTER_STATS,
  ManifestCache,
  type ProcessDeps,
  SourceResolver,
  readClusterStats,
  redisKeys,
} from '@nixery/shared';
import Koa from 'koa';
import { BuildClient } from './build-client';
import { errorMiddleware } from './error-middleware';
import { handleRegistry } from './registry';

/** What the gateway needs from the process that runs it (a subset of its Runtime). */
export type GatewayDeps = ProcessDeps;

/** The gateway: a Koa app plus the resources it owns. */
export interface Gateway {
  app: Koa;
  resolver: SourceResolver;
  builds: BuildClient;
  close(): Promise<void>;
}

/** Builds the gateway's Koa app: registry protocol, metrics, health checks and the start page. */
export function createGateway(deps: GatewayDeps): Gateway {
  const { config, redis, metrics, log } = deps;
  const keys = redisKeys(config.redisPrefix);
  const manifests = new ManifestCache(redis, keys);
  const resolver = new SourceResolver(config.source, { ttlSeconds: config.resolveTtlSeconds, timeoutMs: 30_000 });
  const builds = new BuildClient({ connect: deps.connect, prefix: config.redisPrefix, waitMs: config.buildWaitSeconds * 1000 });

  const app = new Koa({ proxy: true });
  app.use(async (ctx, next) => {
    const start = process.hrtime.bigint();
    const reqLog = log.child({ reqId: randomUUID().slice(0, 8), method: ctx.method, path: ctx.path.slice(0, 300) });
    ctx.state.log = reqLog;
    try {
      await next();
    } finally {
      const route = (ctx.state.route as string | undefined) ?? (ctx.status === 404 ? 'other' : ctx.path.split('/')[1] || 'root');
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      metrics.httpRequests.inc({ method: ctx.method, route, status: String(ctx.status) });
      metrics.httpDuration.observe({ method: ctx.method, route }, seconds);
      reqLog.debug({ status: ctx.status, ms: Math.round(seconds * 1000) }, 'request');
    }
  });
  app.use(errorMiddleware(log));
  app.use(async (ctx, next) => {
    if (!(await handleRegistry(ctx, { storage: deps.storage, manifests, resolver, builds, metrics }))) await next();
  });

  const router = new Router();
  router.get('/metrics', async (ctx) => {
    const stats = await readClusterStats(redis, keys).catch(() => null);
    if (stats) for (const s of CLUSTER_STATS) metrics.clusterStats.set({ counter: s }, stats[s]);
    ctx.set('Content-Type', metrics.registry.contentType);
    ctx.body = await metrics.registry.metrics();
  });
  router.get('/healthz', (ctx) => {
    ctx.body = { ok: true };
  });
  router.get('/readyz', async (ctx) => {
    const checks = await Promise.allSettled([
      Promise.race([redis.ping(), new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 2000))]),
      deps.storage.ping(),
    ]);
    const [r, s] = checks;
    const ok = r?.status === 'fulfilled' && s?.status === 'fulfilled';
    ctx.status = ok ? 200 : 503;
    ctx.body = { redis: r?.status === 'fulfilled', storage: s?.status === 'fulfilled' };
  });
  router.get('/', (ctx) => {
    const host = ctx.host || `localhost:${config.port}`;
    ctx.type = 'text/plain';
    ctx.body = `Nixery: container images built on demand with Nix.\n\nPull an image: docker pull ${host}/shell/git/htop\nPackage source: ${resolver.describe()}\n`;
  });
  app.use(router.routes());
  app.use(router.allowedMethods());

  return {
    app,
    resolver,
    builds,
    close: () => builds.close(),
  };
}
