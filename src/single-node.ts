/**
 * Single-node Nixery: gateway, build worker and popularity scheduler in one
 * process, with an embedded redis-server when REDIS_URL is not set and the
 * bundled package set when no package source is configured.
 */
import http from 'node:http';
import { createGateway } from '@nixery/gateway';
import { startPopcountScheduler } from '@nixery/popcount-job';
import { createRuntime, loadConfig, redisForConfig } from '@nixery/shared';
import { startBuildWorker } from '@nixery/worker';

async function main(): Promise<void> {
  const config = loadConfig();
  const { target, embedded } = await redisForConfig(config);
  const rt = createRuntime(config, target, 'nixery');
  if (embedded) rt.log.info({ socket: embedded.socket }, 'started embedded redis-server (set REDIS_URL to use your own)');
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

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    rt.log.info({ signal }, 'shutting down');
    server.close();
    server.closeIdleConnections();
    await worker.close();
    await popcount.close();
    await gateway.close();
    await rt.close();
    await embedded?.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
