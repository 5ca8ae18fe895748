/**
 * records: state the cluster keeps about built images, in Redis: the
 * manifest cache (memory in front of Redis) and the build status store
 * (recent builds and failures, per-image layer facts), and the storage
 * collector's records (pulls, blob uses, deletion claims: `usage.ts`), and
 * the negative cache (images with unknown packages, per build key: issue 12).
 * Never imports config, BullMQ, storage or the pipeline.
 */
export * from './build-status';
export * from './manifest-cache';
export * from './negative-cache';
export * from './usage';
