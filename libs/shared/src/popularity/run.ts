import os from 'node:os';
import type { Redis } from 'ioredis';
import { describeFailure, failureOf } from '../core/failure';
import type { Logger } from '../infra/logger';
import type { PopularityMeta } from './reader';
import { redisKeys } from '../infra/redis';
import type { NixInvocation } from '../nix';
import { type PackageSourceConfig, SourceResolver } from '../sources/resolver';
import { isCommit } from '../sources/git';
import { countChannel } from './channel';
import { popularityThresholdFor } from './counts';
import { PopcountError } from './errors';
import { popcountKeys } from './keys';
import { countLocalSet } from './local';
import { NarinfoCache, markRunning, publishPopularity, recordPopcountRun } from './publish';
import type { PopcountConfig } from './schedule';
import type { PopcountProgress } from './types';

/**
 * What a popularity run needs to know (a subset of the configuration; the
 * config object itself fits).
 */
export interface PopcountSettings {
  source: PackageSourceConfig;
  popcount: PopcountConfig;
  redisPrefix: string;
  nixDir: string;
  /** The first is the system local package sets are evaluated for. */
  workerSystems: readonly string[];
  nix: NixInvocation;
}

/** What a successful run published. */
export interface PopcountResult {
  meta: PopularityMeta;
}

/** Options of {@link runPopcount}. */
export interface RunPopcountOptions {
  config: PopcountSettings;
  redis: Redis;
  log: Logger;
  /** Recorded in the run log: the BullMQ job id, or "cli". */
  jobId: string;
  onProgress?: (p: PopcountProgress) => void;
  signal?: AbortSignal;
  /** Pins the package source (default: a resolver made from the config). */
  resolver?: SourceResolver;
}

/** The store-paths list of a channel source: NIXERY_POPCOUNT_STORE_PATHS_URL or `<channel URL>/<channel>/store-paths.xz`. */
export function storePathsUrlFor(config: PopcountSettings): string {
  const s = config.source;
  if (config.popcount.storePathsUrl) return config.popcount.storePathsUrl;
  if (s.type !== 'channel') throw new PopcountError('SOURCE', 'only channel sources have a store-paths list');
  if (isCommit(s.channel)) {
    throw new PopcountError('SOURCE', `channel "${s.channel}" is a commit, which has no store-paths list: set NIXERY_POPCOUNT_STORE_PATHS_URL`);
  }
  return `${s.channelBaseUrl}/${encodeURIComponent(s.channel)}/store-paths.xz`;
}

/** The resolver a popularity run pins its source with: no caching, no fallback, no watchers (each run resolves afresh). */
export function popcountResolver(config: Pick<PopcountSettings, 'source'>, log: Logger): SourceResolver {
  return new SourceResolver(config.source, { ttlSeconds: 0, fallbackSeconds: 0, timeoutMs: 30_000, log, watchPaths: false });
}

/**
 * One popularity run: pins the package source, counts references (channel:
 * narinfo method; git or local set: Nix), publishes the table atomically with
 * its metadata and logs the run. On failure the previous table stays, the run
 * is logged as failed and the PopcountError is thrown.
 */
export async function runPopcount(opts: RunPopcountOptions): Promise<PopcountResult> {
  const { config, redis, log } = opts;
  const keys = popcountKeys(redisKeys(config.redisPrefix));
  const started = Date.now();
  const deadline = started + config.popcount.timeoutSeconds * 1000;
  const timeout = AbortSignal.timeout(config.popcount.timeoutSeconds * 1000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const runner = `${os.hostname()}:${process.pid}`;
  const marker = await markRunning(redis, keys);
  const ownResolver = !opts.resolver;
  const resolver = opts.resolver ?? popcountResolver(config, log);
  try {
    opts.onProgress?.({ stage: 'resolving' });
    const source = await resolver.resolve('latest').catch((e: unknown) => {
      const f = failureOf(e);
      const why = f?.kind === 'source_unavailable' ? f.error : f ? describeFailure(f) : String(e);
      throw new PopcountError('SOURCE', `cannot pin the package source (${resolver.describe()}): ${why}`);
    });
    log.info({ source: source.identity, jobId: opts.jobId }, 'popcount: counting references');

    let counted: { table: Record<string, number>; seen: number; skipped: number };
    let method: PopularityMeta['method'];
    if (config.source.type === 'channel') {
      method = 'narinfo';
      counted = await countChannel({
        storePathsUrl: storePathsUrlFor(config),
        cacheUrl: config.popcount.cacheUrl,
        concurrency: config.popcount.concurrency,
        cache: new NarinfoCache(redis, keys),
        signal,
        log,
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
    } else {
      method = 'nix';
      counted = await countLocalSet({
        source: source.nix,
        nixDir: config.nixDir,
        system: config.workerSystems[0] ?? 'x86_64-linux',
        nix: config.nix,
        realise: config.popcount.realise,
        deadline,
        signal,
        log,
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
    }

    opts.onProgress?.({ stage: 'publishing' });
    const meta: Omit<PopularityMeta, 'version'> = {
      source: source.identity,
      method,
      computedAt: new Date().toISOString(),
      packages: counted.seen,
      paths: Object.keys(counted.table).length,
      skipped: counted.skipped,
      threshold: popularityThresholdFor(counted.seen),
      durationMs: Date.now() - started,
    };
    const version = await publishPopularity(redis, keys, counted.table, meta);
    await recordPopcountRun(redis, keys, {
      jobId: opts.jobId, runner, startedAt: new Date(started).toISOString(), durationMs: Date.now() - started, ok: true, version,
    });
    log.info({ ...meta, version }, 'popcount: published a popularity table');
    opts.onProgress?.({ stage: 'done' });
    return { meta: { version, ...meta } };
  } catch (e) {
    const err =
      e instanceof PopcountError
        ? e
        : signal.aborted
          ? new PopcountError('TIMEOUT', `popcount run took longer than ${config.popcount.timeoutSeconds} s or was cancelled`)
          : e;
    const message = err instanceof Error ? err.message : String(err);
    await recordPopcountRun(redis, keys, {
      jobId: opts.jobId, runner, startedAt: new Date(started).toISOString(), durationMs: Date.now() - started, ok: false, error: message,
    }).catch(() => undefined);
    log.error({ error: message, code: err instanceof PopcountError ? err.code : undefined }, 'popcount: run failed; the previous table stays');
    throw err;
  } finally {
    await marker.release();
    if (ownResolver) resolver.close();
  }
}
