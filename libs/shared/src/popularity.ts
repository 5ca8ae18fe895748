import type { Redis } from 'ioredis';
import type { Popularity } from './graph';
import type { Logger } from './logger';
import type { RedisKeys } from './redis';

/** Metadata published with a popularity table. */
export interface PopularityMeta {
  /** Increases with every published table. */
  version: number;
  source: string;
  computedAt: string;
  packages: number;
  paths: number;
  skipped: number;
}

/**
 * Reads the popularity table from Redis, kept in memory and reloaded only when
 * a newer table is published (checked at most every `checkMs`). When Redis has
 * no table, the seed from NIX_POPULARITY_URL (if any) is used.
 */
export class PopularityReader {
  private cached: { version: number; table: Popularity } | null = null;
  private checkedAt = 0;
  private seed: Popularity | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly opts: { seedUrl?: string; checkMs?: number; log: Logger },
  ) {}

  /** The current table ({} when none is known). */
  async get(): Promise<Popularity> {
    const now = Date.now();
    if (this.cached && now - this.checkedAt < (this.opts.checkMs ?? 5000)) return this.cached.table;
    this.checkedAt = now;
    const metaText = await this.redis.get(this.keys.popularityMeta);
    if (metaText) {
      const meta = JSON.parse(metaText) as PopularityMeta;
      if (this.cached?.version === meta.version) return this.cached.table;
      const raw = await this.redis.get(this.keys.popularity);
      if (raw) {
        this.cached = { version: meta.version, table: JSON.parse(raw) as Popularity };
        return this.cached.table;
      }
    }
    return this.loadSeed();
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
