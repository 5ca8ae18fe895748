import { type Config, ConfigError, loadConfig } from './config';
import { type Runtime, createRuntime } from './runtime';

/** Something a process runs until it is told to stop. */
export interface Service {
  close(): Promise<void>;
  /** Milliseconds `close` may take before the process exits anyway (default 60 000). */
  stopTimeoutMs?: number;
}

/**
 * Runs one app as its own process: loads the config (REDIS_URL is required
 * here; only the single-node launcher embeds Redis), builds the runtime, starts
 * the app and shuts it down gracefully on SIGTERM/SIGINT.
 */
export function runProcess(name: string, start: (rt: Runtime, config: Config) => Promise<Service>): void {
  let config: Config;
  try {
    config = loadConfig();
    if (!config.redisUrl) throw new ConfigError(`${name} needs REDIS_URL (npm start runs everything in one process with an embedded Redis)`);
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  }
  const rt = createRuntime(config, { url: config.redisUrl }, name);
  start(rt, config)
    .then((svc) => {
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        rt.log.info({ signal }, 'shutting down');
        const force = setTimeout(() => process.exit(1), svc.stopTimeoutMs ?? 60_000);
        force.unref();
        await svc.close().catch((err: unknown) => rt.log.error({ err }, 'error while closing'));
        await rt.close();
        process.exit(0);
      };
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
    })
    .catch((err: unknown) => {
      rt.log.fatal({ err }, 'failed to start');
      process.exit(1);
    });
}
