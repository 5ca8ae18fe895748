/**
 * Single-node Nixery: gateway, build worker and popularity scheduler in one
 * process, with an embedded redis-server when REDIS_URL is not set and the
 * bundled package set when no package source is configured. Started and
 * stopped like every app (runtime's runProcess).
 */
import http from 'node:http';
import { createGateway } from '@nixery/gateway';
import { startPopcountScheduler } from '@nixery/popcount-job';
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
    const gateway = createGateway({ ...rt, nixHealth: () => worker.nixHealth() });
    for (const s of config.workerSystems) await gateway.builds.warm(s);
    const server = http.createServer(gateway.app.callback());
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : config.port;
    rt.log.info({ port, storage: config.storage.backend, source: gateway.resolver.describe() }, `Nixery listening on http://localhost:${port}`);
    return {
      close: async () => {
        server.close();
        server.closeIdleConnections();
        await worker.close();
        await popcount.close();
        await gateway.close();
      },
      stopTimeoutMs: (config.workerGraceSeconds + 30) * 1000,
    };
  },
  { redis: 'embedded' },
);
