/**
 * infra: what every room that does I/O may use: the logger, the log throttle, Prometheus
 * metrics and cluster counters, child processes (`runCommand`), Redis
 * connections, key names and key holding, bounded waits on Redis.
 * Never imports config or a domain room (only core).
 */
export * from './logger';
export * from './log-throttle';
export * from './metrics';
export * from './redis';
export * from './reachability';
export * from './run-command';
