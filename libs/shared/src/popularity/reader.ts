import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { Popularity } from '../core/graph';
import { DEFAULT_POPULARITY_THRESHOLD } from '../layering';
import type { Logger } from '../infra/logger';
import { popcountKeys } from './keys';
import type { RedisKeys } from '../infra/redis';

/** Metadata published with a popularity table (by apps/popcount-job). */
export interface PopularityMeta {
  /** Increases with every published table. */
  version: number;
  /** Identity of the package source counted (as the resolver pins it: "nixpkgs:<rev>", "path:<dir>#<fingerprint>", "git:<url>@<commit>"). */
  source: string;
  /** `narinfo`: a channel's store-paths list and binary cache; `nix`: a package set evaluated and queried with Nix. */
  method: 'narinfo' | 'nix';
  computedAt: string;
  /** Packages (store paths of the list, top-level packages of the set) whose references were counted. */
  packages: number;
  /** Names in the table. */
  paths: number;
  /** Packages left out (missing from the cache, failed to evaluate or build). */
  skipped: number;
  /**
   * The count that makes a path popular in this package set (popularityThresholdFor):
   * 100 for nixpkgs, less for a small set. Readers scale counts by 100 / threshold.
   */
  threshold: number;
  durationMs: number;
}

/** Options of {@link PopularityReader}. */
export interface PopularityReaderOptions {
  /** NIX_POPULARITY_URL: a popularity JSON file used while Redis has no table. */
  seedUrl?: string;
  log: Logger;
}

/**
 * When Redis has no table yet but a popularity run is in progress (the first
 * run of a fresh single node), a build waits this long for it, so the first
 * images are layered with popularity data too.
 */
const FIRST_RUN_WAIT_MS = 60_000;

/**
 * Reads the popularity table from Redis, kept in memory and reloaded only when
 * a newer table is published (its version changes). When Redis has no table,
 * the seed from NIX_POPULARITY_URL (if any) is used.
 *
 * Counts of a small package set are scaled by 100 / `meta.threshold`, so that
 * layering's fixed threshold (Nixery's 100 references) means the same share
 * of the set as it does for nixpkgs; nixpkgs tables and seeds are used as
 * they are.
 */
export class PopularityReader {
  private cached: { version: number; table: Popularity } | null = null;
  private seed: Popularity | null = null;
  private readonly runningKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly opts: PopularityReaderOptions,
  ) {
    this.runningKey = popcountKeys(keys).running;
  }

  /** The current table ({} when none is known), as layering should use it. Checks the version on every call (one small GET). */
  async get(): Promise<Popularity> {
    const loaded = await this.loadFromRedis();
    if (loaded) return loaded;
    if (!this.opts.seedUrl && (await this.redis.exists(this.runningKey))) {
      const until = Date.now() + FIRST_RUN_WAIT_MS;
      this.opts.log.info('no popularity table yet, but a popularity run is in progress: waiting for it');
      while (Date.now() < until && (await this.redis.exists(this.runningKey))) {
        await sleep(250);
        const table = await this.loadFromRedis();
        if (table) return table;
      }
      const table = await this.loadFromRedis();
      if (table) return table;
    }
    return this.loadSeed();
  }

  /** The table in Redis if there is one (reloaded only when its version changed). */
  private async loadFromRedis(): Promise<Popularity | null> {
    const metaText = await this.redis.get(this.keys.popularityMeta);
    if (!metaText) return null;
    const meta = JSON.parse(metaText) as PopularityMeta;
    if (this.cached?.version === meta.version) return this.cached.table;
    // One MGET: the table and the metadata of the same publication.
    const [raw, metaNow] = await this.redis.mget(this.keys.popularity, this.keys.popularityMeta);
    if (!raw || !metaNow) return null;
    const current = JSON.parse(metaNow) as PopularityMeta;
    this.cached = { version: current.version, table: scaleTable(JSON.parse(raw) as Popularity, current.threshold) };
    this.opts.log.info({ version: current.version, source: current.source, paths: current.paths }, 'loaded popularity table');
    return this.cached.table;
  }

  private async loadSeed(): Promise<Popularity> {
    if (this.seed) return this.seed;
    if (!this.opts.seedUrl) return {};
    try {
      const res = await fetch(this.opts.seedUrl, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.seed = (await res.json()) as Popularity;
    } catch (err) {
      this.opts.log.warn({ err, url: this.opts.seedUrl }, 'cannot load popularity seed; layering without it');
      this.seed = {};
    }
    return this.seed;
  }
}

/** Counts scaled so that `threshold` becomes layering's DEFAULT_POPULARITY_THRESHOLD (unchanged when the threshold is 100 or unknown). */
export function scaleTable(table: Popularity, threshold: number | undefined): Popularity {
  if (!threshold || threshold >= DEFAULT_POPULARITY_THRESHOLD) return table;
  const k = DEFAULT_POPULARITY_THRESHOLD / threshold;
  const out: Popularity = {};
  for (const [name, n] of Object.entries(table)) out[name] = n * k;
  return out;
}
