import type { Digest } from '../core/digest';
import type { ManifestReferences } from './references';

/** A stored object as the collector sees it. */
export interface ListedObject {
  digest: Digest;
  size: number;
  /** Epoch ms of its last write. */
  updated: number;
}

/** A stored manifest and what it refers to (null: unreadable, so kept). */
export interface ListedManifest extends ListedObject {
  refs: ManifestReferences | null;
}

/** What the mark step looks at. */
export interface PlanInput {
  manifests: readonly ListedManifest[];
  blobs: readonly ListedObject[];
  /** Last pull (epoch ms) by manifest digest. */
  pulls: ReadonlyMap<string, number>;
  now: number;
  keepMs: number;
  graceMs: number;
}

/** What the sweep may delete, and why the rest stays. */
export interface CollectionPlan {
  /** Manifests not pulled within the keep time, nor written within the grace. */
  manifests: ListedManifest[];
  /** Blobs no kept manifest refers to, not written within the grace. */
  blobs: ListedObject[];
  /** Kept manifests that have no pull record yet (made before pulls were recorded, or the record was lost): the collector records them as first seen now. */
  unrecorded: Digest[];
  keptManifests: number;
  keptBlobs: number;
}

/**
 * The mark step, pure: a manifest is kept when it was pulled (or built)
 * within `keepMs`, written within `graceMs`, has no pull record at all, or
 * cannot be read; an image index that is kept keeps its manifests, and a
 * kept manifest keeps the artifacts whose subject it is (its SBOM). A blob
 * is kept when a kept manifest refers to it or it was written within
 * `graceMs`. Everything else is in the plan.
 *
 * Example (keep 30 d, grace 1 h, now = day 40): manifest A pulled on day 2
 * refers to L1, L2, C1; manifest B pulled on day 39 refers to L2, L3, C2;
 * L9 (no manifest) was written 10 minutes ago. The plan deletes A, L1 and
 * C1; B, L2, L3, C2 and L9 stay.
 */
export function planCollection(inp: PlanInput): CollectionPlan {
  const keepAfter = inp.now - inp.keepMs;
  const graceAfter = inp.now - inp.graceMs;
  const unrecorded: Digest[] = [];
  const kept = new Set<string>();
  for (const m of inp.manifests) {
    const pulled = inp.pulls.get(m.digest);
    if (pulled === undefined && m.refs) unrecorded.push(m.digest);
    if (!m.refs || pulled === undefined || pulled >= keepAfter || m.updated >= graceAfter) kept.add(m.digest);
  }
  const byDigest = new Map(inp.manifests.map((m) => [m.digest as string, m]));
  const referrers = new Map<string, string[]>();
  for (const m of inp.manifests) {
    const subject = m.refs?.subject;
    if (subject) referrers.set(subject, [...(referrers.get(subject) ?? []), m.digest]);
  }
  const pending = [...kept];
  while (pending.length > 0) {
    const next = pending.pop()!;
    for (const child of [...(byDigest.get(next)?.refs?.manifests ?? []), ...(referrers.get(next) ?? [])]) {
      if (!kept.has(child)) {
        kept.add(child);
        pending.push(child);
      }
    }
  }
  const live = new Set<string>();
  for (const d of kept) for (const b of byDigest.get(d)?.refs?.blobs ?? []) live.add(b);
  const blobs = inp.blobs.filter((b) => !live.has(b.digest) && b.updated < graceAfter);
  const manifests = inp.manifests.filter((m) => !kept.has(m.digest));
  return {
    manifests,
    blobs,
    unrecorded,
    keptManifests: inp.manifests.length - manifests.length,
    keptBlobs: inp.blobs.length - blobs.length,
  };
}
