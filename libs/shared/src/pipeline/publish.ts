import { Readable } from 'node:stream';
import { MediaTypes } from '../core/media-types';
import type { BuildJobData } from '../jobs';
import type { Logger } from '../infra/logger';
import { type PublishedImage, manifestVariants, publishedImage } from '../protocol';
import type { BuildStatusStore, ManifestCache, StorageUsage } from '../records';
import { blobKey, manifestKey, putStaged, type StorageDriver } from '../storage';
import type { BuiltImage } from './build-image';
import { publishSbom, sbomArtifact } from './sbom';

/** Where a built image is published. */
export interface PublishDeps {
  storage: StorageDriver;
  status: Pick<BuildStatusStore, 'recordSuccess'>;
  manifests: Pick<ManifestCache, 'put'>;
  /** The storage collector's records: publishing counts as a pull of the manifest and a use of each blob (none in tests without Redis). */
  usage?: Pick<StorageUsage, 'use'>;
  log: Logger;
}

/**
 * Publishes a built image, in this order:
 * 0. usage: the manifest counts as pulled and its blobs as used now (waiting
 *    while the storage collector is deleting one of them: it is written
 *    again after), so the collector keeps what is published;
 * 1. storage: the image config as a blob and both manifests (Docker schema 2
 *    and OCI) under `manifests/<hex>`, so each can be fetched by its digest,
 *    then the image's SBOM, attached to each of them (the SPDX blob, per
 *    manifest an artifact manifest whose subject it is and its referrers
 *    index: `publishSbom`);
 * 2. status: the build record and the image's layer facts for the web page
 *    (a failure here is logged, not fatal: the page is not the registry);
 * 3. cache: the manifest under its build key, its resolved key and its digest.
 * So whoever finds the manifest in the cache finds its blobs and its layer
 * facts. Returns the published image, which the build job hands to the gateway.
 */
export async function publishImage(deps: PublishDeps, job: BuildJobData, built: BuiltImage, durationMs: number): Promise<PublishedImage> {
  const { config, manifest } = built.documents;
  const image = publishedImage(built.documents, job.source.revision);
  const subjects = manifestVariants(image).map((v) => ({ mediaType: v.mediaType, digest: v.digest, size: v.size }));
  await deps.usage?.use([config.digest, ...built.layers.map((l) => l.digest), built.sbom.digest], { pulled: manifest.digest });
  await deps.usage?.use([], { pulled: built.documents.oci.digest });
  // The SBOM artifacts count as pulled with their image, so the collector takes them with it, not one keep time later.
  for (const s of subjects) await deps.usage?.use([], { pulled: sbomArtifact(built.sbom, s).digest });
  await putStaged(deps.storage, Readable.from([Buffer.from(config.body)]), blobKey, MediaTypes.dockerConfig);
  await storeManifests(deps.storage, image);
  await publishSbom(deps.storage, built.sbom, subjects);
  await deps.status
    .recordSuccess(
      {
        image: job.image.name,
        tag: job.image.tag,
        system: job.image.system,
        buildKey: job.buildKey,
        manifestDigest: image.digest,
        revision: image.revision,
        layers: built.layers.length,
        packedLayers: built.packedLayers,
        size: built.layerBytes,
        durationMs,
        finishedAt: Date.now(),
      },
      built.layers,
      built.sbom.digest,
    )
    .catch((err: unknown) => deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not record build status'));
  await deps.manifests.put(job.buildKey, image, [built.resolvedKey]);
  return image;
}

/** Writes every variant of a published image (or index) under `manifests/<hex>`, each with its own media type. */
async function storeManifests(storage: StorageDriver, image: PublishedImage): Promise<void> {
  for (const v of manifestVariants(image)) await putStaged(storage, Readable.from([Buffer.from(v.body)]), manifestKey, v.mediaType);
}

/** Where a composed image index is published (the gateway's storage and manifest cache). */
export interface IndexPublishDeps {
  storage: StorageDriver;
  manifests: Pick<ManifestCache, 'put'>;
}

/**
 * Publishes a multi-platform image's index (issue 13), composed only of
 * manifests already published: both variants (Docker manifest list and OCI
 * index) to storage, then to the manifest cache under `indexKey`, so a pull
 * by tag finds it and each variant is served by its digest. (The gateway
 * records its pulls as it serves it; the collector's grace covers the
 * moment between.)
 */
export async function publishIndex(deps: IndexPublishDeps, indexKey: string, index: PublishedImage): Promise<void> {
  await storeManifests(deps.storage, index);
  await deps.manifests.put(indexKey, index);
}
