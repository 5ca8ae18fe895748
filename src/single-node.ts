/**
 * Single-node Nixery: gateway, build worker, popularity and storage-collection schedulers in one
 * process, with an embedded redis-server when REDIS_URL is not set and the
 * bundled package set when no package source is configured. Started and
 * stopped like every app (runtime's runProcess).
 */
import { createGateway, serveGateway } from '@nixery/gateway';
import { startGcScheduler, startPopcountScheduler } from '@nixery/popcount-job';
import { runProcess } from '@nixery/shared';
import { startBuildWorker } from '@nixery/worker';

runProcess(
  'nixery',
  async (rt, config) => {
    if (config.source.type === 'path' && config.source.bundled) {
      rt.log.info(
        { path: config.source.path },
        'building from the bundled package set; set NIXERY_CHANNEL (e.g. nixos-unstable), NIXERY_PKGS_REPO or NIXERY_PKGS_PATH to use nixpkgs',
      );
    }
    const worker = startBuildWorker(rt);
    const popcount = await startPopcountScheduler(rt);
    const gc = await startGcScheduler(rt); // storage collection (issue 11)
    const gateway = createGateway({ ...rt, nixHealth: () => worker.nixHealth() });
    for (const s of config.workerSystems) await gateway.builds.warm(s);
    const server = await serveGateway(gateway, { port: config.port, host: config.host, log: rt.log });
    rt.log.info({ port: server.port, storage: config.storage.backend, source: gateway.resolver.describe() }, `Nixery listening on http://localhost:${server.port}`);
    const graceSeconds = Math.max(config.workerGraceSeconds, config.gatewayGraceSeconds);
    return {
      // The gateway drains while the worker finishes (or hands back) its builds: a build done
      // within the grace is still answered; the requests still waiting then get a 503.
      close: async () => {
        await Promise.all([server.close(config.gatewayGraceSeconds * 1000), worker.close()]);
        await popcount.close();
        await gc.close();
      },
      stopTimeoutMs: (graceSeconds + 30) * 1000,
    };
  },
  { redis: 'embedded' },
);
