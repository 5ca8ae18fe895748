import { type Config, ConfigError, loadConfig } from '../config';
import { type EmbeddedRedis, redisForConfig } from './embedded-redis';
import { withTimeout } from '../core';
import { type Runtime, createRuntime } from './runtime';

/** Time for each shutdown step after the service's own (connections, embedded Redis). */
const STEP_MS = 8000;

/** Something a process runs until it is told to stop. */
export interface Service {
  close(): Promise<void>;
  /** Milliseconds `close` may take before the process exits anyway (default 60 000). */
  stopTimeoutMs?: number;
}

/** How a process finds Redis. */
export interface ProcessOptions {
  /**
   * `required` (default): REDIS_URL must be set (apps run alone);
   * `embedded`: without REDIS_URL the embedded redis-server under the storage path is used (npm start, npm run popcount).
   */
  redis?: 'required' | 'embedded';
}

/** Loads the config and the runtime, or exits with 2 on a configuration problem. */
async function boot(name: string, opts: ProcessOptions): Promise<{ rt: Runtime; config: Config; embedded?: EmbeddedRedis }> {
  let config: Config;
  try {
    config = loadConfig();
    if (!config.redisUrl && opts.redis !== 'embedded') {
      throw new ConfigError(`${name} needs REDIS_URL (npm start runs everything in one process with an embedded Redis)`);
    }
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  }
  const { target, embedded } = await redisForConfig(config);
  const rt = createRuntime(config, target, name);
  if (embedded) {
    rt.log.info({ socket: embedded.socket, pid: embedded.pid }, 'started embedded redis-server (set REDIS_URL to use your own)');
    superviseLogged(embedded, rt);
  }
  return { rt, config, ...(embedded ? { embedded } : {}) };
}

/**
 * Reports the embedded redis-server's supervision: one warn line per exit
 * (code or signal) and per failed restart, an info line per restart, the
 * `nixery_embedded_redis_restarts_total` counter, and the `embedded-redis`
 * liveness check (/healthz 503 while its restarts keep failing: a restart
 * of the process is worth trying then, e.g. by systemd or Kubernetes).
 */
function superviseLogged(embedded: EmbeddedRedis, rt: Runtime): void {
  embedded.onEvent((e) => {
    switch (e.kind) {
      case 'exited':
        rt.log.warn({ pid: e.pid, code: e.code, signal: e.signal, socket: embedded.socket }, 'embedded redis-server exited; restarting it');
        break;
      case 'restarted':
        rt.metrics.embeddedRedisRestarts.inc({ outcome: 'ok' });
        rt.log.info({ pid: e.pid, failuresInARow: e.failuresInARow }, 'embedded redis-server restarted');
        break;
      case 'restart_failed':
        rt.metrics.embeddedRedisRestarts.inc({ outcome: 'failed' });
        rt.log.warn({ err: e.error, failuresInARow: e.failuresInARow }, 'embedded redis-server restart failed');
        break;
      case 'gave_up':
        rt.log.error({ failuresInARow: e.failuresInARow }, 'embedded redis-server keeps failing to start; /healthz answers 503 (still retrying)');
        break;
    }
  });
  rt.liveness.watch('embedded-redis', () =>
    embedded.state() === 'failed' ? `the embedded redis-server could not be restarted (${embedded.failuresInARow} failures in a row)` : null,
  );
}

/**
 * Runs a service as this process: loads the config, builds the runtime,
 * starts the service and, on SIGTERM/SIGINT, stops it gracefully (the
 * service, then the runtime's connections, then an embedded redis-server),
 * exiting 0, or 1 when a step fails or takes longer than it may (the
 * service: its `stopTimeoutMs`; the others a few seconds). Every
 * process (each app alone, and npm start) stops this one way.
 */
export function runProcess(name: string, start: (rt: Runtime, config: Config) => Promise<Service>, opts: ProcessOptions = {}): void {
  boot(name, opts)
    .then(async ({ rt, config, embedded }) => {
      const svc = await start(rt, config).catch(async (err: unknown) => {
        rt.log.fatal({ err }, 'failed to start');
        await embedded?.stop();
        process.exit(1);
      });
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        rt.log.info({ signal }, 'shutting down');
        // Every step is bounded (a Redis that went away must not hold the exit); the service's
        // step gets what it asked for, the connections and an embedded Redis a few seconds more.
        const serviceMs = svc.stopTimeoutMs ?? 60_000;
        const force = setTimeout(() => process.exit(1), serviceMs + 2 * STEP_MS);
        force.unref();
        let code = 0;
        const step = async (what: string, ms: number, fn: () => Promise<void>) => {
          await withTimeout(fn(), ms, what).catch((err: unknown) => {
            code = 1;
            rt.log.error({ err: err instanceof Error ? err.message : String(err) }, `shutdown: ${what} did not finish cleanly`);
          });
        };
        await step('closing the service', serviceMs, () => svc.close());
        await step('closing connections', STEP_MS, () => rt.close());
        if (embedded) await step('stopping the embedded redis-server', STEP_MS, () => embedded.stop());
        process.exit(code);
      };
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}

/**
 * Runs `main` once as this process (a command such as `npm run popcount`) and
 * exits with the code it returns: 2 on a configuration problem, 1 when it throws.
 */
export function runOnce(name: string, main: (rt: Runtime, config: Config) => Promise<number>, opts: ProcessOptions = {}): void {
  boot(name, opts)
    .then(async ({ rt, config, embedded }) => {
      let code = 1;
      try {
        code = await main(rt, config);
      } catch (err) {
        console.error(err);
      } finally {
        await rt.close();
        await embedded?.stop();
      }
      process.exit(code);
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}
