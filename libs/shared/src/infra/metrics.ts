import type { Redis } from 'ioredis';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RedisKeys } from './redis';
import { RequestMetrics } from './request-metrics';

/** Cluster-wide counters kept in Redis (a hash), so any gateway can report them. */
export const CLUSTER_STATS = ['builds_started', 'builds_succeeded', 'builds_failed', 'layers_packed'] as const;
export type ClusterStat = (typeof CLUSTER_STATS)[number];

/** Increments a cluster-wide counter. */
export async function bumpClusterStat(redis: Redis, keys: RedisKeys, stat: ClusterStat, by = 1): Promise<void> {
  await redis.hincrby(keys.stats, stat, by);
}

/** Reads every cluster-wide counter. */
export async function readClusterStats(redis: Redis, keys: RedisKeys): Promise<Record<ClusterStat, number>> {
  const raw = await redis.hgetall(keys.stats);
  return Object.fromEntries(CLUSTER_STATS.map((s) => [s, Number(raw[s] ?? 0)])) as Record<ClusterStat, number>;
}

/** This process's Prometheus metrics. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'nixery_process_' });
  const m = {
    registry,
    http: new RequestMetrics(registry), // nixery_http_requests_total, nixery_http_request_duration_seconds
    manifestCacheHits: new Counter({ name: 'nixery_manifest_cache_hits_total', help: 'Manifest requests answered from the cache', registers: [registry] }),
    manifestCacheMisses: new Counter({ name: 'nixery_manifest_cache_misses_total', help: 'Manifest requests that needed a build job', registers: [registry] }),
    buildsStarted: new Counter({ name: 'nixery_builds_started_total', help: 'Nix image builds started by this process', registers: [registry] }),
    buildsSucceeded: new Counter({ name: 'nixery_builds_succeeded_total', help: 'Image builds that succeeded in this process', registers: [registry] }),
    buildsFailed: new Counter({ name: 'nixery_builds_failed_total', help: 'Image builds that failed in this process', labelNames: ['reason'], registers: [registry] }),
    buildDuration: new Histogram({ name: 'nixery_build_duration_seconds', help: 'Build duration by stage', labelNames: ['stage'], buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300], registers: [registry] }),
    layerCacheHits: new Counter({ name: 'nixery_layer_cache_hits_total', help: 'Layers reused from the layer cache', registers: [registry] }),
    layerCacheMisses: new Counter({ name: 'nixery_layer_cache_misses_total', help: 'Layers not in the layer cache, so packed by this process', registers: [registry] }),
    layersPacked: new Counter({ name: 'nixery_layers_packed_total', help: 'Layers packed', registers: [registry] }),
    bytesPacked: new Counter({ name: 'nixery_layer_bytes_packed_total', help: 'Compressed bytes of packed layers', registers: [registry] }),
    bytesServed: new Counter({ name: 'nixery_blob_bytes_served_total', help: 'Blob bytes streamed to clients', registers: [registry] }),
    gcRuns: new Counter({ name: 'nixery_gc_runs_total', help: 'Storage collection runs by outcome (collected, dry_run, skipped: another run held the lock, failed)', labelNames: ['outcome'], registers: [registry] }),
    gcObjectsDeleted: new Counter({ name: 'nixery_gc_objects_deleted_total', help: 'Objects deleted by storage collection, by kind (manifest, blob)', labelNames: ['kind'], registers: [registry] }),
    gcBytesFreed: new Counter({ name: 'nixery_gc_bytes_freed_total', help: 'Bytes of the objects deleted by storage collection', registers: [registry] }),
    embeddedRedisRestarts: new Counter({ name: 'nixery_embedded_redis_restarts_total', help: 'Restarts of the embedded redis-server after it exited unasked, by outcome (ok, failed)', labelNames: ['outcome'], registers: [registry] }),
    clusterStats: new Gauge({ name: 'nixery_cluster_total', help: 'Cluster-wide counters from Redis (builds_started, ...)', labelNames: ['counter'], registers: [registry] }),
    nixGcRuns: new Counter({ name: 'nixery_nix_gc_runs_total', help: 'Nix store garbage collections that ran to their end', registers: [registry] }),
    nixGcFailures: new Counter({ name: 'nixery_nix_gc_failures_total', help: 'Nix store garbage collections (or free-space checks) that failed, by reason', labelNames: ['reason'], registers: [registry] }),
    nixGcBytesFreed: new Counter({ name: 'nixery_nix_gc_bytes_freed_total', help: 'Bytes the Nix store garbage collections freed (as Nix reports them)', registers: [registry] }),
    buildsAbandoned: new Counter({ name: 'nixery_builds_abandoned_total', help: 'Queued builds removed before they started because nobody waited for them any more (issue 12)', registers: [registry] }),
    admissionRefused: new Counter({ name: 'nixery_admission_refused_total', help: 'Cold pulls refused by admission, by reason (rate_limited, queue_full, too_many_packages)', labelNames: ['reason'], registers: [registry] }),
    nixStoreFreeBytes: new Gauge({ name: 'nixery_nix_store_free_bytes', help: 'Free bytes on the filesystem holding the Nix store, at the last check', registers: [registry] }),
    negativeCacheHits: new Counter({ name: 'nixery_negative_cache_hits_total', help: 'Manifest requests answered 404 from the negative cache (unknown packages), without a build', registers: [registry] }),
    imagesShared: new Counter({ name: 'nixery_images_shared_total', help: 'Builds whose packages resolved to an image already built under another spelling, answered with that image', registers: [registry] }),
    // multi-platform images (issue 13)
    platformsOmitted: new Counter({ name: 'nixery_index_platforms_omitted_total', help: 'Platforms left out of a multi-platform image index because their packages do not exist there, by platform', labelNames: ['platform'], registers: [registry] }),
    authRefused: new Counter({ name: 'nixery_auth_refused_total', help: 'Requests refused by pull authentication, by reason (password, malformed, invalid_token, expired_token, scheme, scope, anonymous, busy)', labelNames: ['reason'], registers: [registry] }), // issue 12
  };
  return m;
}
export type Metrics = ReturnType<typeof createMetrics>;
