/**
 * Storage garbage collection, one run: mark, then sweep with claims.
 *
 * 1. Mark: list `manifests/` and `layers/` (the driver's `list`), read every
 *    manifest's references, read the pull records, and plan
 *    (`planCollection`): manifests not pulled within the keep time, and blobs
 *    (layers and image configs) that no kept manifest refers to, both
 *    written before the grace.
 * 2. Manifests: each is claimed (`StorageUsage.claim`: refused when it was
 *    pulled since the cutoff, e.g. during the mark); the claimed ones are
 *    dropped from the Redis manifest cache (by digest and every build key),
 *    the status store and the finished build jobs whose result they are
 *    (BullMQ keeps a completed job an hour, and a pull would get its result), announced on `<prefix>:gc:collected` (every
 *    gateway drops them from memory), then deleted from storage. The blobs
 *    of a manifest whose claim was refused are kept.
 * 3. Blobs: each is claimed (refused when a build used it within the grace)
 *    and deleted; then the layer-cache entries and layer facts pointing at
 *    deleted blobs are dropped.
 * A dry run does the mark and reports the plan; it writes and deletes nothing.
 *
 * Races, and why nothing published loses a blob:
 * - A blob being written is not listed (the driver lists complete objects)
 *   or was written within the grace: never in the plan.
 * - A build reusing a blob through the layer cache records the use (Lua:
 *   record, then look for a claim) before it checks the blob exists; the
 *   collector's claim (Lua: look for a use since the grace cutoff, then
 *   claim) runs before or after it in Redis. Before: the build sees the
 *   claim, waits until the blob is deleted and the claim released, finds it
 *   missing and packs it again. After: the claim sees the use and the blob
 *   stays.
 * - A build packing a blob the collector is deleting (same digest) records
 *   the use between its hash and its move (`putStaged`'s `beforeMove`): the
 *   move happens after the deletion, or the deletion is refused.
 * - Publishing records the manifest as pulled and every blob as used before
 *   writing anything, with the same claim check: a rebuilt manifest is
 *   never deleted under its build, nor its config blob.
 * - A pull of a manifest during a run: its record (at most a minute late)
 *   refuses the manifest's claim if it comes first, and its blobs stay.
 * Left open: a client that was handed a manifest in the moment before its
 *   claim, and fetches a blob after the deletion, gets a 404 (the reference
 *   registry's collector has the same window without read-only mode); a
 *   retry builds it again. A build must publish within the grace of its
 *   layer-cache hits (builds last minutes; the grace is an hour).
 */
import { type Digest, digestFromHex } from '../core/digest';
import { mapLimit } from '../core/map-limit';
import type { BuildStatusStore, ManifestCache, StorageUsage } from '../records';
import { type ListPrefix, type StorageDriver, blobKey, manifestKey, referrersKey } from '../storage';
import { type ListedManifest, type ListedObject, planCollection } from './plan';
import { manifestReferences } from './references';

/** What a run needs, handed in by the process that hosts the job. */
export interface CollectorDeps {
  storage: StorageDriver;
  usage: Pick<StorageUsage, 'pullTimes' | 'firstSeen' | 'claim' | 'release' | 'announceCollected'>;
  manifests: Pick<ManifestCache, 'drop'>;
  layers: { forgetBlobs(digests: ReadonlySet<string>): Promise<number> };
  status: Pick<BuildStatusStore, 'forget'>;
  /** Forgets finished build jobs whose result is one of these manifests (a gateway would hand out a kept result instead of building again). */
  builds: { forget(manifestDigests: ReadonlySet<string>): Promise<void> };
}

/** How a run collects. */
export interface CollectOptions {
  keepMs: number;
  graceMs: number;
  /** Only report what would be deleted. */
  dryRun: boolean;
  /** Storage requests at once (default 8). */
  concurrency?: number;
}

/** One object a run deleted (or, dry, would delete). */
export interface CollectedObject {
  key: string;
  digest: Digest;
  size: number;
}

/** The outcome of one run. */
export interface GcReport {
  dryRun: boolean;
  /** Manifests and blobs deleted (or that a dry run would delete). */
  manifests: CollectedObject[];
  blobs: CollectedObject[];
  /** Bytes of them. */
  bytes: number;
  listed: { manifests: number; blobs: number };
  kept: { manifests: number; blobs: number };
  /** Objects in the plan kept after all: pulled or used by a build during the run. */
  refused: number;
  /** Manifests seen for the first time without a pull record (kept, recorded now). */
  firstSeen: number;
  durationMs: number;
}

/** Every object under one prefix, by digest. */
async function listed(storage: StorageDriver, prefix: ListPrefix): Promise<ListedObject[]> {
  const out: ListedObject[] = [];
  for await (const o of storage.list(prefix)) {
    out.push({ digest: digestFromHex(o.key.slice(prefix.length)), size: o.size, updated: o.updated.getTime() });
  }
  return out;
}

/** A manifest's body, or null when it went away meanwhile. */
async function readBody(storage: StorageDriver, digest: Digest): Promise<string | null> {
  const r = await storage.read(manifestKey(digest));
  if (!r) return null;
  const chunks: Buffer[] = [];
  for await (const c of r.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const line = (key: string, o: ListedObject): CollectedObject => ({ key, digest: o.digest, size: o.size });

/** Runs one collection (see the module comment). The caller makes sure only one runs at a time in the cluster. */
export async function collectStorage(deps: CollectorDeps, opts: CollectOptions): Promise<GcReport> {
  const started = Date.now();
  const limit = opts.concurrency ?? 8;
  const { storage, usage } = deps;
  const manifestObjects = await listed(storage, 'manifests/');
  const manifests: ListedManifest[] = (
    await mapLimit(manifestObjects, limit, async (m) => {
      const body = await readBody(storage, m.digest);
      return body === null ? null : { ...m, refs: manifestReferences(body) };
    })
  ).filter((m): m is ListedManifest => m !== null);
  const blobs = await listed(storage, 'layers/');
  const now = Date.now();
  const plan = planCollection({ manifests, blobs, pulls: await usage.pullTimes(), now, keepMs: opts.keepMs, graceMs: opts.graceMs });
  const report: GcReport = {
    dryRun: opts.dryRun,
    manifests: plan.manifests.map((m) => line(manifestKey(m.digest), m)),
    blobs: plan.blobs.map((b) => line(blobKey(b.digest), b)),
    bytes: 0,
    listed: { manifests: manifests.length, blobs: blobs.length },
    kept: { manifests: plan.keptManifests, blobs: plan.keptBlobs },
    refused: 0,
    firstSeen: plan.unrecorded.length,
    durationMs: 0,
  };
  if (opts.dryRun) {
    report.bytes = [...report.manifests, ...report.blobs].reduce((n, o) => n + o.size, 0);
    report.durationMs = Date.now() - started;
    return report;
  }
  await usage.firstSeen(plan.unrecorded, now);

  // Manifests first: once one is claimed and dropped from every cache, nothing hands it out any more.
  const claimed: ListedManifest[] = [];
  const keepBlobs = new Set<string>();
  for (const m of plan.manifests) {
    if (await usage.claim('manifest', m.digest, now - opts.keepMs)) claimed.push(m);
    else for (const b of m.refs?.blobs ?? []) keepBlobs.add(b);
  }
  const goneManifests: CollectedObject[] = [];
  try {
    const digests = new Set<string>(claimed.map((m) => m.digest));
    await deps.manifests.drop(digests);
    await deps.builds.forget(digests);
    await deps.status.forget(digests, []);
    await usage.announceCollected([...digests]);
    await mapLimit(claimed, limit, async (m) => {
      await storage.delete(manifestKey(m.digest));
      await storage.delete(referrersKey(m.digest));
      await usage.release('manifest', m.digest, true);
      goneManifests.push(line(manifestKey(m.digest), m));
    });
  } finally {
    const done = new Set(goneManifests.map((m) => m.digest));
    await Promise.all(claimed.filter((m) => !done.has(m.digest)).map((m) => usage.release('manifest', m.digest, false).catch(() => undefined)));
  }

  const goneBlobs: CollectedObject[] = [];
  await mapLimit(plan.blobs.filter((b) => !keepBlobs.has(b.digest)), limit, async (b) => {
    if (!(await usage.claim('blob', b.digest, now - opts.graceMs))) return;
    let deleted = false;
    try {
      await storage.delete(blobKey(b.digest));
      deleted = true;
      goneBlobs.push(line(blobKey(b.digest), b));
    } finally {
      await usage.release('blob', b.digest, deleted);
    }
  });
  const blobDigests = new Set<string>(goneBlobs.map((b) => b.digest));
  await deps.layers.forgetBlobs(blobDigests);
  await deps.status.forget([], blobDigests);

  report.manifests = goneManifests;
  report.blobs = goneBlobs;
  report.bytes = [...goneManifests, ...goneBlobs].reduce((n, o) => n + o.size, 0);
  report.refused = plan.manifests.length + plan.blobs.length - goneManifests.length - goneBlobs.length;
  report.durationMs = Date.now() - started;
  return report;
}
