import http from 'node:http';
import type { Logger } from '@nixery/shared';
import type { Gateway } from './app';

/** A gateway answering HTTP. */
export interface GatewayServer {
  /** The port it listens on (the configured one, or the one picked for port 0). */
  port: number;
  /**
   * Stops gracefully: no new connections; requests in flight get `graceMs`
   * to finish (a build they wait for included); then those still waiting
   * are answered `503` with `Retry-After`, and after a few seconds more any
   * connection left is closed. Then the gateway's own resources close.
   */
  close(graceMs: number): Promise<void>;
}

/** Seconds after the grace for the 503 answers to be written before connections are cut. */
const ANSWER_MS = 5000;

/** Serves `gateway` on `port`/`host` (the gateway alone and npm start alike). */
export async function serveGateway(gateway: Gateway, opts: { port: number; host: string; log: Logger }): Promise<GatewayServer> {
  const server = http.createServer(gateway.app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(opts.port, opts.host, resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const { drain } = gateway;
  return {
    port,
    close: async (graceMs) => {
      drain.start();
      const closed = new Promise<boolean>((resolve) => server.close(() => resolve(true)));
      server.closeIdleConnections();
      // A keep-alive connection whose answer went out before draining began is idle now or soon.
      const idle = setInterval(() => server.closeIdleConnections(), 500);
      const within = (ms: number) =>
        Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())]);
      try {
        if (drain.active > 0) opts.log.info({ inFlight: drain.active, graceMs }, 'draining: letting requests in flight finish');
        if (!(await within(graceMs))) {
          opts.log.info({ inFlight: drain.active }, 'gateway grace over: answering requests still waiting with 503');
          drain.abort();
          if (!(await within(ANSWER_MS))) server.closeAllConnections();
        }
      } finally {
        clearInterval(idle);
      }
      await gateway.close();
    },
  };
}
