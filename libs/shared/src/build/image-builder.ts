import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { putStaged } from '../blobs';
import type { Digest } from '../digest';
import type { BuildFailure } from '../errors';
import type { ClosureGraph, Popularity } from '../graph';
import { groupLayers } from '../layering';
import type { Logger } from '../logger';
import { MediaTypes } from '../media-types';
import { prepareImage, type NixInvocation } from '../nix';
import type { BuildJobData, BuildProgress } from '../queue';
import type { StorageDriver } from '../storage/driver';
import { blobKey, manifestKey } from '../storage/keys';
import { compressAndHash, packStorePaths, packSymlinkLayer } from '../tarball';
import type { CachedLayer, LayerCache } from './layer-cache';
import { mapLimit } from './limit';
import { buildImageDocuments, type ManifestLayer } from './manifest';

/** Everything a build needs, passed in (no globals). */
export interface BuildDeps {
  storage: StorageDriver;
  layerCache: LayerCache;
  popularity: () => Promise<Popularity>;
  nixDir: string;
  /** How Nix commands run (options and environment). */
  nix: NixInvocation;
  nixTimeoutMs: number;
  /** Layers the image may have in all, the symlink layer included. */
  layerBudget: number;
  packConcurrency: number;
  log: Logger;
  /** Called when a Nix build (not a cache hit) starts. */
  onNixBuild?: () => void;
  /** Called with the bytes of each layer this build packed. */
  onLayerPacked?: (bytes: number) => void;
  /** Called for every layer found in the layer cache instead of packed. */
  onLayerCacheHit?: () => void;
}

/** A built image: its manifest and facts about it. */
export interface BuiltImage {
  manifest: { body: string; digest: Digest; mediaType: string };
  layers: { digest: Digest; size: number; paths: string[] }[];
  packedLayers: number;
  size: number;
}

export type BuildOutcome = { ok: true; image: BuiltImage } | { ok: false; failure: BuildFailure; transient: boolean };

/** The key of a layer: a hash of its sorted store paths (same paths -> same key on any worker). */
export function layerKey(paths: readonly string[]): string {
  return createHash('sha256').update([...paths].sort().join('\n')).digest('hex');
}

/**
 * Builds one image: Nix (evaluate + build + closure graph), layering, packing
 * the layers the cluster does not have yet (concurrently, each under a Redis
 * lock), the symlink layer, config and manifest. Failures come back as data.
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
  const prepared = await prepareImage({
    gcRootDir,
    nixDir: deps.nixDir,
    source: job.source.nix,
    system: job.image.system,
    packages: [...job.image.packages],
    timeoutMs: deps.nixTimeoutMs,
    signal,
    extraNixOptions: deps.nix.options,
    env: deps.nix.env,
    onStage: (stage) => progress({ stage }),
  });
  if (prepared.kind === 'missing') {
    return { ok: false, failure: { kind: 'unknown_packages', packages: prepared.packages }, transient: false };
  }
  if (prepared.kind === 'failed') {
    return { ok: false, failure: { kind: 'nix_failed', message: prepared.message, transient: prepared.transient }, transient: prepared.transient };
  }

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
  const manifestLayers: ManifestLayer[] = all.map((l) => ({ digest: l.digest, size: l.size, diffId: l.diffId }));
  const docs = buildImageDocuments({
    architecture: job.image.architecture,
    layers: manifestLayers,
    hasBash: roots.some((r) => existsSync(path.join(r, 'bin', 'bash'))),
    labels: {
      'org.opencontainers.image.revision': job.source.revision,
      'org.nixery.packages': job.image.packages.join(' '),
    },
  });
  await putStaged(deps.storage, Readable.from([Buffer.from(docs.config.body)]), blobKey, MediaTypes.dockerConfig);
  await putStaged(deps.storage, Readable.from([Buffer.from(docs.manifest.body)]), manifestKey, docs.manifest.mediaType);
  progress({ stage: 'done' });
  return {
    ok: true,
    image: {
      manifest: { body: docs.manifest.body, digest: docs.manifest.digest, mediaType: docs.manifest.mediaType },
      layers: all.map((l) => ({ digest: l.digest, size: l.size, paths: l.paths })),
      packedLayers,
      size: all.reduce((n, l) => n + l.size, 0),
    },
  };
}

/** The cached layer for `key` when its blob is really in storage (counted as a cache hit), else null. */
async function cachedLayer(deps: BuildDeps, key: string): Promise<CachedLayer | null> {
  const cached = await deps.layerCache.get(key);
  if (!cached || !(await deps.storage.stat(blobKey(cached.digest)))) return null;
  deps.onLayerCacheHit?.();
  return cached;
}

/**
 * Returns the layer for `key` from the cache, or packs it. Only one worker in
 * the cluster packs a given key at a time: the others wait for its result.
 */
async function ensureLayer(
  deps: BuildDeps,
  key: string,
  makeTar: () => Readable,
  signal: AbortSignal,
): Promise<{ layer: CachedLayer; packed: boolean }> {
  for (;;) {
    signal.throwIfAborted();
    const cached = await cachedLayer(deps, key);
    if (cached) return { layer: cached, packed: false };
    const lock = await deps.layerCache.tryLock(key);
    if (!lock) {
      await sleep(200, undefined, { signal });
      continue;
    }
    try {
      const again = await cachedLayer(deps, key);
      if (again) return { layer: again, packed: false };
      const { stream, done } = compressAndHash(makeTar());
      const onAbort = () => stream.destroy(new Error('build aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const blob = await putStaged(deps.storage, stream, blobKey, MediaTypes.dockerLayer);
        const { diffId } = await done;
        const layer: CachedLayer = { digest: blob.digest, diffId, size: blob.size };
        await deps.layerCache.put(key, layer);
        deps.onLayerPacked?.(blob.size);
        deps.log.debug({ layerKey: key, digest: blob.digest, size: blob.size }, 'packed layer');
        return { layer, packed: true };
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } finally {
      await lock.release();
    }
  }
}
