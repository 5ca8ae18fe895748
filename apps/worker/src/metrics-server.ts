import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type Liveness,
  type Logger,
  type Metrics,
  type NixHealth,
  QueueReader,
  type Redis,
  type StorageDriver,
  healthAnswer,
  registerQueueGauges,
} from '@nixery/shared';

/** What the worker's metrics endpoint needs. */
export interface MetricsServerDeps {
  /** Port to listen on (0 = any free port). */
  port: number;
  host: string;
  metrics: Metrics;
  redis: Redis;
  /** Makes the Redis connection the queue gauges read through. */
  connect: () => Redis;
  redisPrefix: string;
  storage: StorageDriver;
  log: Logger;
  /** The build worker's Nix health, for /readyz. */
  nixHealth: () => Promise<NixHealth | undefined>;
  /** The process's /healthz checks. */
  liveness?: Liveness;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The worker's own HTTP endpoint: `/metrics` (this process's Prometheus
 * registry plus queue gauges read from BullMQ at scrape time), `/healthz`
 * (the process is alive and none of its liveness checks fails) and `/readyz` (Redis and storage answer, Nix can build). When the
 * port is taken it logs a warning and returns null: a worker without its
 * metrics endpoint still builds.
 */
export async function startMetricsServer(deps: MetricsServerDeps): Promise<MetricsServer | null> {
  const queues = new QueueReader(deps.connect, deps.redisPrefix, (err) => deps.log.debug({ err: err.message }, 'queue reader error'));
  registerQueueGauges(deps.metrics.registry, () => queues.all());
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    healthAnswer(path ?? '/', deps).then(
      (a) => (a ? send(a.status, a.contentType, a.body) : send(404, 'text/plain', 'not found: try /metrics, /healthz or /readyz\n')),
      (err: unknown) => send(500, 'text/plain', `failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      deps.log.warn({ err: err.message, port: deps.port }, 'worker metrics endpoint not started');
      resolve(false);
    });
    server.listen(deps.port, deps.host, () => resolve(true));
  });
  if (!listening) {
    await queues.close();
    return null;
  }
  const port = (server.address() as AddressInfo).port;
  deps.log.info({ port }, 'worker metrics on /metrics, /healthz, /readyz');
  return {
    port,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await queues.close();
    },
  };
}
