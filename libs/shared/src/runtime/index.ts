/**
 * runtime: a process's wiring: the `Runtime` built from the config (logger,
 * metrics, Redis connections, storage), running a process (signals, graceful
 * stop, exit codes), readiness and health endpoints, the embedded redis-server.
 * Never imports a domain room (sources, pipeline, records, jobs, popularity;
 * from nix only the type of its self-check's health).
 */
export * from './embedded-redis';
export * from './process-main';
export * from './health';
export * from './liveness';
export * from './redis-supervisor';
export * from './readiness';
export * from './runtime';
