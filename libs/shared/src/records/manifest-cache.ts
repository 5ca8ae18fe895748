import type { Redis } from 'ioredis';
import { Failed } from '../core/failure';
import { BoundedMemo } from '../core/memo';
import { type PublishedImage, manifestVariants } from '../protocol/image-documents';
import { type RedisKeys, deleteMatching } from '../infra/redis';

/**
 * A cached manifest: the published image with both its variants (Docker and
 * OCI; for an index, the manifest list and the OCI index), everything needed
 * to answer a manifest request whatever the client accepts. Under a digest
 * the entry is that variant alone (its `oci` is itself).
 */
export type CachedManifest = PublishedImage;

/**
 * Manifests by build key and by digest, in Redis (shared by every gateway)
 * with a small bounded map in process memory in front (core/memo.ts), so warm pulls touch neither Nix nor storage.
 * Entries never go stale: a build key pins the source revision, system and
 * packages, so it always names the same image; but the storage collector
 * drops the manifests whose blobs it deleted (`drop`, and `forget` in every
 * other process, told over Redis pub/sub), so the next pull builds again.
 */
export class ManifestCache {
  private readonly memory: BoundedMemo<string, CachedManifest>;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    memoryEntries = 1000,
  ) {
    this.memory = new BoundedMemo(memoryEntries);
  }

  /**
   * The manifest built for a build key (memory first, then Redis), or null.
   * Throws a `state_unavailable` failure at once when it is not in memory and Redis is
   * unreachable, instead of waiting in the client's offline queue: a cold
   * request could not enqueue its build anyway.
   */
  async byBuildKey(buildKey: string): Promise<CachedManifest | null> {
    return this.lookup(buildKey, () => this.keys.manifestByBuild(buildKey), 'throw');
  }

  /** A manifest (either variant) by its digest (memory first, then Redis), or null; null too when Redis is unreachable (storage still has it). */
  async byDigest(digest: string): Promise<CachedManifest | null> {
    return this.lookup(digest, () => this.keys.manifestByDigest(digest), 'miss');
  }

  /**
   * Records a built manifest under its build key, any further keys naming
   * the same image (`also`: its resolved key, issue 12) and the digest of
   * each of its variants, in Redis and in memory.
   */
  async put(buildKey: string, m: CachedManifest, also: readonly string[] = []): Promise<void> {
    const v = JSON.stringify(m);
    const tx = this.redis.multi();
    for (const k of [buildKey, ...also]) tx.set(this.keys.manifestByBuild(k), v);
    for (const d of byVariant(m)) tx.set(this.keys.manifestByDigest(d.digest), JSON.stringify(d));
    await tx.exec();
    this.learn(buildKey, m);
  }

  /**
   * Keeps a manifest that a build just returned in this process's memory only
   * (the worker's publishImage wrote it to Redis), so the next pull is
   * answered from memory, even while Redis is away, without reading it back.
   */
  learn(buildKey: string, m: CachedManifest): void {
    this.memory.set(buildKey, m);
    for (const d of byVariant(m)) this.memory.set(d.digest, d);
  }

  /**
   * Drops manifests (by digest) from Redis, under their digest and every
   * build key naming them, and from this process's memory. For the storage
   * collector: it scans every build-key entry.
   */
  async drop(digests: ReadonlySet<string>): Promise<void> {
    if (digests.size === 0) return;
    await this.redis.del(...[...digests].map((d) => this.keys.manifestByDigest(d)));
    await deleteMatching(this.redis, this.keys.manifestByBuild('*'), (v) => digestsOf(v).some((d) => digests.has(d)));
    this.forget(digests);
  }

  /** Forgets manifests (by digest) in this process's memory only (another process collected them). */
  forget(digests: ReadonlySet<string>): void {
    this.memory.deleteWhere((m) => digests.has(m.digest) || digests.has(m.oci.digest));
  }

  /** Forgets everything in memory (after missing collection news, e.g. a lost subscription). */
  forgetAll(): void {
    this.memory.clear();
  }

  /** Memory is keyed by the build key or digest itself (64 hex digits or `sha256:...`, never equal): a warm pull builds no Redis key. */
  private async lookup(key: string, redisKey: () => string, whenRedisDown: 'throw' | 'miss'): Promise<CachedManifest | null> {
    const mem = this.memory.find(key);
    if (mem) return mem;
    if (this.redis.status !== 'ready') {
      if (whenRedisDown === 'miss') return null;
      throw new Failed({ kind: 'state_unavailable', what: 'its Redis' });
    }
    const v = await this.redis.get(redisKey());
    if (!v) return null;
    const parsed = JSON.parse(v) as Omit<CachedManifest, 'size' | 'oci'> & { size?: number; oci?: CachedManifest['oci'] };
    // Entries written before both variants were kept (issue 13) are built again: their OCI manifest was never stored.
    if (!parsed.oci) return null;
    // Entries written before the size was kept get it from their body.
    const m: CachedManifest = { ...parsed, oci: parsed.oci, size: parsed.size ?? Buffer.byteLength(parsed.body) };
    this.memory.set(key, m);
    return m;
  }
}

/** Each variant of an image as an entry of its own (served by its digest), with the image's revision. */
function byVariant(m: CachedManifest): CachedManifest[] {
  return manifestVariants(m).map((d) => ({ ...d, oci: d, revision: m.revision }));
}

/** The digests a cached entry names, both variants ([] when it does not parse). */
function digestsOf(raw: string): string[] {
  try {
    const m = JSON.parse(raw) as { digest?: unknown; oci?: { digest?: unknown } };
    return [m.digest, m.oci?.digest].filter((d): d is string => typeof d === 'string');
  } catch {
    return [];
  }
}

/** Reading manifests, as the gateway does (an in-memory map in in-process tests). */
export type ManifestLookup = Pick<ManifestCache, 'byBuildKey' | 'byDigest' | 'learn'>;
