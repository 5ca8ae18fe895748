/**
 * collect: storage garbage collection. Its settings (`NIXERY_GC_*`), the
 * references a manifest makes, the pure mark step (`planCollection`) and the
 * collector that sweeps with claims against builds (`collectStorage`).
 * Never imports config, BullMQ, Koa, the pipeline or an app: the process
 * that hosts the job hands it storage, Redis records and caches.
 */
export * from './collector';
export * from './plan';
export * from './references';
export * from './settings';
