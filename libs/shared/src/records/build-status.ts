/**
 * What the web page shows about finished builds, kept in Redis so every
 * gateway of a cluster sees the same: capped lists of recent builds and
 * recent failures, per-image layer facts (digest, size, store path names) by
 * manifest digest, and per layer the set of images that use it. Written by
 * the worker after each build, read by the gateway. In-progress builds are
 * not kept here: they are the BullMQ jobs themselves (see `queue-status.ts`).
 */
import type { Redis } from 'ioredis';
import type { Failure } from '../core/failure';
import type { RedisKeys } from '../infra/redis';

/** One layer of a built image, as the image page draws it. */
export interface ImageLayerInfo {
  digest: string;
  /** Compressed bytes. */
  size: number;
  /** Store paths in the layer (empty for the symlink layer). */
  paths: string[];
}

/** A finished build, newest first in `recentBuilds`. */
export interface BuildRecord {
  image: string;
  tag: string;
  system: string;
  buildKey: string;
  manifestDigest: string;
  revision: string;
  layers: number;
  packedLayers: number;
  /** Compressed bytes of all layers. */
  size: number;
  durationMs: number;
  /** Epoch milliseconds. */
  finishedAt: number;
}

/** A failed build attempt, newest first in `recentFailures`. */
export interface FailureRecord {
  image: string;
  tag: string;
  system: string;
  buildKey: string;
  failure: Failure;
  /** Attempt number (1-based) that failed. */
  attempt: number;
  /** True when BullMQ will try the job again. */
  willRetry: boolean;
  durationMs: number;
  finishedAt: number;
}

/** Layer facts of one built image, stored by manifest digest (several image names may share it). */
export interface ImageRecord {
  layers: ImageLayerInfo[];
  builtAt: number;
  /** Digest of the image's SPDX SBOM blob (the image page links it); absent for images built before SBOMs. */
  sbom?: string;
}

/** Options of the store; the defaults suit the web page. */
export interface BuildStatusOptions {
  /** Entries kept in each of the recent lists (default 50). */
  recentLimit?: number;
  /** Seconds image and layer-use records live after the last build that wrote them (default 30 days). */
  ttlSeconds?: number;
  /** Characters of a failure message kept (default 4000; the tail is kept). */
  messageLimit?: number;
}

/** Reads a JSON list entry; entries that do not parse are skipped. */
function parseAll<T>(raw: string[]): T[] {
  const out: T[] = [];
  for (const r of raw) {
    try {
      out.push(JSON.parse(r) as T);
    } catch {
      /* skip a corrupt entry */
    }
  }
  return out;
}

/** Keeps the last `limit` characters of a message, marking the cut. */
function trimMessage(message: string, limit: number): string {
  const t = message.trim();
  return t.length > limit ? `...${t.slice(t.length - limit)}` : t;
}

/** Recent builds, failures and image layer facts in Redis (see the module comment). */
export class BuildStatusStore {
  private readonly limit: number;
  private readonly ttl: number;
  private readonly messageLimit: number;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    opts: BuildStatusOptions = {},
  ) {
    this.limit = opts.recentLimit ?? 50;
    this.ttl = opts.ttlSeconds ?? 30 * 24 * 3600;
    this.messageLimit = opts.messageLimit ?? 4000;
  }

  /** Records a successful build: the recent list, the image's layers, and which images use each layer. */
  async recordSuccess(rec: BuildRecord, layers: ImageLayerInfo[], sbom?: string): Promise<void> {
    const image: ImageRecord = { layers, builtAt: rec.finishedAt, ...(sbom ? { sbom } : {}) };
    const m = this.redis.multi();
    m.lpush(this.keys.statusRecent, JSON.stringify(rec));
    m.ltrim(this.keys.statusRecent, 0, this.limit - 1);
    m.set(this.keys.statusImage(rec.manifestDigest), JSON.stringify(image), 'EX', this.ttl);
    for (const l of layers) {
      m.sadd(this.keys.statusLayerUsers(l.digest), rec.image);
      m.expire(this.keys.statusLayerUsers(l.digest), this.ttl);
    }
    await m.exec();
  }

  /** Drops the layer facts of collected images and the image sets of collected layers (the storage collector). */
  async forget(manifestDigests: Iterable<string>, layerDigests: Iterable<string>): Promise<void> {
    const keys = [...[...manifestDigests].map((d) => this.keys.statusImage(d)), ...[...layerDigests].map((d) => this.keys.statusLayerUsers(d))];
    if (keys.length > 0) await this.redis.del(...keys);
  }

  /** Records a failed attempt (the message is trimmed to its tail). */
  async recordFailure(rec: FailureRecord): Promise<void> {
    const f = rec.failure;
    const failure: Failure = f.kind === 'nix_failed' || f.kind === 'internal' || f.kind === 'storage_full'
      ? { ...f, message: trimMessage(f.message, this.messageLimit) }
      : f;
    await this.redis
      .multi()
      .lpush(this.keys.statusFailures, JSON.stringify({ ...rec, failure }))
      .ltrim(this.keys.statusFailures, 0, this.limit - 1)
      .exec();
  }

  /** The newest finished builds, newest first. */
  async recentBuilds(count = this.limit): Promise<BuildRecord[]> {
    return parseAll<BuildRecord>(await this.redis.lrange(this.keys.statusRecent, 0, count - 1));
  }

  /** The newest failed attempts, newest first. */
  async recentFailures(count = this.limit): Promise<FailureRecord[]> {
    return parseAll<FailureRecord>(await this.redis.lrange(this.keys.statusFailures, 0, count - 1));
  }

  /** The layer facts of the image with this manifest digest, if a worker recorded them. */
  async image(manifestDigest: string): Promise<ImageRecord | null> {
    const raw = await this.redis.get(this.keys.statusImage(manifestDigest));
    return raw ? (parseAll<ImageRecord>([raw])[0] ?? null) : null;
  }

  /**
   * For each layer digest, how many images other than `exclude` use it, and
   * up to `max` of their names.
   */
  async layerUsers(digests: string[], exclude = '', max = 10): Promise<Map<string, { count: number; images: string[] }>> {
    const out = new Map<string, { count: number; images: string[] }>();
    if (digests.length === 0) return out;
    const p = this.redis.pipeline();
    for (const d of digests) {
      p.scard(this.keys.statusLayerUsers(d));
      p.sismember(this.keys.statusLayerUsers(d), exclude);
      p.srandmember(this.keys.statusLayerUsers(d), max + 1);
    }
    const res = (await p.exec()) ?? [];
    digests.forEach((d, i) => {
      const total = Number(res[3 * i]?.[1] ?? 0);
      const self = Number(res[3 * i + 1]?.[1] ?? 0);
      const names = ((res[3 * i + 2]?.[1] as string[] | null) ?? []).filter((n) => n !== exclude).sort().slice(0, max);
      out.set(d, { count: Math.max(0, total - self), images: names });
    });
    return out;
  }
}
