import type { Redis } from 'ioredis';
import type { Config } from '../config/config';
import { type Logger, createLogger } from '../infra/logger';
import { logThrottle } from '../infra/log-throttle';
import { type Metrics, createMetrics } from '../infra/metrics';
import { type RedisTarget, connectRedis } from '../infra/redis';
import type { StorageDriver } from '../storage/driver';
import { createStorage } from '../storage';
import { Liveness } from './liveness';

/** The shared resources of a process: logger, metrics, Redis connections and storage. */
export interface Runtime {
  config: Config;
  log: Logger;
  metrics: Metrics;
  redis: Redis;
  connect: () => Redis;
  storage: StorageDriver;
  /** This process's /healthz checks: parts register what a restart of the process would fix. */
  liveness: Liveness;
  /** Closes every Redis connection made through `connect` and the main one (at once when Redis is away). */
  close(): Promise<void>;
}

/** What an app needs from the process that runs it: config, logging, metrics, Redis and storage. */
export type ProcessDeps = Pick<Runtime, 'config' | 'log' | 'metrics' | 'redis' | 'connect' | 'storage'>;

/** Builds the runtime for a process from its config and a Redis target. */
export function createRuntime(config: Config, target: RedisTarget, name: string): Runtime {
  const log = createLogger({ level: config.logLevel, format: config.logFormat, name });
  const connections: Redis[] = [];
  // Every connection reports each failed reconnect: one line per interval per error.
  const redisErrors = logThrottle(log, config.logRepeatSeconds * 1000);
  const connect = () => {
    const c = connectRedis(target);
    c.on('error', (err) => redisErrors.log('debug', err.message, { err: err.message }, 'redis connection error'));
    connections.push(c);
    return c;
  };
  const redis = connect();
  return {
    config,
    log,
    metrics: createMetrics(),
    redis,
    connect,
    storage: createStorage(config.storage),
    liveness: new Liveness(),
    close: async () => {
      // QUIT on a connection that lost Redis waits in its offline queue until Redis is back: drop it instead.
      await Promise.all(connections.map((c) => (c.status === 'ready' ? c.quit().catch(() => c.disconnect()) : c.disconnect())));
    },
  };
}
