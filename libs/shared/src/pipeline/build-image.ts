import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Failure } from '../core/failure';
import type { ClosureGraph, Popularity } from '../core/graph';
import { mapLimit } from '../core/map-limit';
import type { BuildJobData, BuildProgress } from '../jobs';
import { resolvedKey } from '../jobs/build-key';
import { groupLayers } from '../layering';
import type { Preparation } from '../nix';
import { buildImageDocuments, type ImageDocuments, type ManifestLayer, type PublishedImage } from '../protocol';
import type { SbomDocument } from '../sbom';
import { packStorePaths, packSymlinkLayer } from '../tarball';
import { type LayerDeps, ensureLayer, layerKey } from './layers';
import { imageSbom } from './sbom';

/** Everything a build needs, passed in (no globals). */
export interface BuildDeps extends LayerDeps {
  /** Nix: looks the packages up, builds them, gives their closure graph (a fixture in tests). */
  prepare: Preparation;
  popularity: () => Promise<Popularity>;
  /**
   * Layers the image may have in all, the symlink layer included (Nixery's
   * 94 closure layers + 1 symlink layer = 95 by default): the closure gets
   * `layerBudget - 1`.
   */
  layerBudget: number;
  packConcurrency: number;
  /** Called when a Nix build (not a cache hit) starts. */
  onNixBuild?: () => void;
  /**
   * The image already published under a resolved key (see `resolvedKey`):
   * another spelling of the same packages was built before. None in tests
   * without a manifest cache.
   */
  sameImage?: (resolvedKey: string) => Promise<PublishedImage | null>;
}

/** One layer of a built image. */
export interface BuiltLayer {
  digest: ManifestLayer['digest'];
  size: number;
  /** Store paths in the layer (empty for the symlink layer). */
  paths: string[];
}

/** A built image whose layers are in storage; its config and manifest are not published yet (see publishImage). */
export interface BuiltImage {
  documents: ImageDocuments;
  layers: BuiltLayer[];
  packedLayers: number;
  /** Compressed bytes of all layers. */
  layerBytes: number;
  /** The key of the resolved attributes (`resolvedKey`), which the image is published under too. */
  resolvedKey: string;
  /** The SPDX SBOM of the image's closure, attached to its manifest by publishImage. */
  sbom: SbomDocument;
}

/**
 * What a build gives: the image; or the image another spelling of the same
 * packages already has (`shared`, found by resolved key: nothing is laid out
 * or packed); or why not (`transient` when a retry may help).
 */
export type BuildOutcome =
  | { ok: true; image: BuiltImage }
  | { ok: true; shared: PublishedImage; resolvedKey: string }
  | { ok: false; failure: Failure; transient: boolean };

/**
 * Builds one image: Nix (evaluate + build + closure graph, through
 * `deps.prepare`), layering, packing the layers the cluster does not have yet
 * (concurrently, each under a lock), the symlink layer, and the image
 * documents. Failures come back as data.
 */
export async function buildImage(
  deps: BuildDeps,
  job: BuildJobData,
  progress: (p: BuildProgress) => void,
  signal: AbortSignal,
): Promise<BuildOutcome> {
  progress({ stage: 'evaluating' });
  deps.onNixBuild?.();
  // GC roots for the image's store paths while they are packed; removed when the build ends.
  const gcRootDir = await mkdtemp(path.join(os.tmpdir(), 'nixery-gcroots-'));
  try {
    return await buildWithRoots(deps, job, progress, signal, gcRootDir);
  } finally {
    await rm(gcRootDir, { recursive: true, force: true });
  }
}

async function buildWithRoots(
  deps: BuildDeps,
  job: BuildJobData,
  progress: (p: BuildProgress) => void,
  signal: AbortSignal,
  gcRootDir: string,
): Promise<BuildOutcome> {
  const prepared = await deps.prepare({
    gcRootDir,
    source: job.source.nix,
    system: job.image.system,
    packages: [...job.image.packages],
    signal,
    onStage: (stage) => progress({ stage }),
  });
  if (prepared.kind === 'missing') {
    return { ok: false, failure: { kind: 'unknown_packages', packages: prepared.packages }, transient: false };
  }
  if (prepared.kind === 'failed') {
    return { ok: false, failure: { kind: 'nix_failed', message: prepared.message, transient: prepared.transient }, transient: prepared.transient };
  }

  // One set of packages, one image: the attributes the names resolved to, whatever their spelling.
  const attrs = [...new Set(Object.values(prepared.packages).map((p) => p.attr))].sort();
  const resolved = resolvedKey(job.image, job.source, attrs);
  const shared = await deps.sameImage?.(resolved);
  if (shared) return { ok: true, shared, resolvedKey: resolved };

  progress({ stage: 'layering' });
  const graph: ClosureGraph = prepared.graph;
  const groups = groupLayers(graph, { budget: deps.layerBudget - 1, popularity: await deps.popularity() });

  let packed = 0;
  let packedLayers = 0;
  const total = groups.length + 1;
  const layers = await mapLimit(groups, deps.packConcurrency, async (g) => {
    const res = await ensureLayer(deps, layerKey(g.contents), () => packStorePaths(g.contents), signal);
    if (res.packed) packedLayers++;
    progress({ stage: 'packing', packed: ++packed, total });
    return { ...res.layer, paths: g.contents };
  });

  const roots = [...graph.roots].sort();
  const coreutils = Object.values(prepared.packages).find((p) => p.attr === 'coreutils')?.out;
  const symlinkKey = `symlink:${layerKey([...roots, `coreutils=${coreutils ?? ''}`])}`;
  const symlink = await ensureLayer(
    deps,
    symlinkKey,
    () => packSymlinkLayer(roots.map((storePath) => ({ storePath })), coreutils ? { coreutilsPath: coreutils } : {}),
    signal,
  );
  if (symlink.packed) packedLayers++;
  progress({ stage: 'uploading', packed: total, total });

  const all = [...layers, { ...symlink.layer, paths: [] as string[] }];
  const documents = buildImageDocuments({
    architecture: job.image.architecture,
    layers: all.map((l) => ({ digest: l.digest, size: l.size, diffId: l.diffId })),
    hasBash: roots.some((r) => existsSync(path.join(r, 'bin', 'bash'))),
    labels: {
      'org.opencontainers.image.revision': job.source.revision,
      'org.nixery.packages': attrs.join(' '),
    },
  });
  return {
    ok: true,
    image: {
      documents,
      layers: all.map((l) => ({ digest: l.digest, size: l.size, paths: l.paths })),
      packedLayers,
      layerBytes: all.reduce((n, l) => n + l.size, 0),
      resolvedKey: resolved,
      sbom: imageSbom(job, graph, prepared.packages),
    },
  };
}
