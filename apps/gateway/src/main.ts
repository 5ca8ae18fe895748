import http from 'node:http';
import { runProcess } from '@nixery/shared';
import { createGateway } from './app';

runProcess('gateway', async (rt, config) => {
  const gateway = createGateway(rt);
  const server = http.createServer(gateway.app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  rt.log.info({ port: config.port }, 'gateway listening');
  return {
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await gateway.close();
    },
  };
});
