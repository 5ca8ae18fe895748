import { runProcess } from '@nixery/shared';
import { startMetricsServer } from './metrics-server';
import { startBuildWorker } from './worker';

runProcess('worker', async (rt, config) => {
  const worker = startBuildWorker(rt);
  // /metrics, /healthz, /readyz on NIXERY_WORKER_METRICS_PORT (issue 6).
  const metricsServer = config.workerMetricsPort === null
    ? null
    : await startMetricsServer({ ...rt, port: config.workerMetricsPort, host: config.host, redisPrefix: config.redisPrefix, nixHealth: () => worker.nixHealth() });
  // Running builds get NIXERY_WORKER_GRACE seconds, then are handed back; leave time for that.
  return {
    close: async () => {
      await worker.close();
      await metricsServer?.close(); // issue 6
    },
    stopTimeoutMs: (config.workerGraceSeconds + 30) * 1000,
  };
});
