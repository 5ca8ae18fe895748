import { runProcess } from '@nixery/shared';
import { createGateway } from './app';
import { serveGateway } from './serve';

runProcess('gateway', async (rt, config) => {
  const gateway = createGateway(rt);
  const server = await serveGateway(gateway, { port: config.port, host: config.host, log: rt.log });
  rt.log.info({ port: server.port }, 'gateway listening');
  // Requests in flight get NIXERY_GATEWAY_GRACE seconds, then a 503; leave time for writing those.
  return {
    close: () => server.close(config.gatewayGraceSeconds * 1000),
    stopTimeoutMs: (config.gatewayGraceSeconds + 15) * 1000,
  };
});
