import { Readable } from 'node:stream';
import { MediaTypes } from '../core/media-types';
import type { BuildJobData } from '../jobs';
import type { Logger } from '../infra/logger';
import type { PublishedImage } from '../protocol';
import type { BuildStatusStore, ManifestCache, StorageUsage } from '../records';
import { blobKey, manifestKey, putStaged, type StorageDriver } from '../storage';
import type { BuiltImage } from './build-image';
import { publishSbom } from './sbom';

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
 * 1. storage: the image config and the manifest as blobs (the manifest under
 *    `manifests/<hex>` too, so it can be fetched by digest), then its SBOM
 *    (the SPDX blob, the artifact manifest whose subject is the manifest, and
 *    the manifest's referrers index: `publishSbom`);
 * 2. status: the build record and the image's layer facts for the web page
 *    (a failure here is logged, not fatal: the page is not the registry);
 * 3. cache: the manifest under its build key, its resolved key and its digest.
 * So whoever finds the manifest in the cache finds its blobs and its layer
 * facts. Returns the published image, which the build job hands to the gateway.
 */
export async function publishImage(deps: PublishDeps, job: BuildJobData, built: BuiltImage, durationMs: number): Promise<PublishedImage> {
  const { config, manifest } = built.documents;
  await deps.usage?.use([config.digest, ...built.layers.map((l) => l.digest), built.sbom.digest], { pulled: manifest.digest });
  await putStaged(deps.storage, Readable.from([Buffer.from(config.body)]), blobKey, MediaTypes.dockerConfig);
  await putStaged(deps.storage, Readable.from([Buffer.from(manifest.body)]), manifestKey, manifest.mediaType);
  await publishSbom(deps.storage, built.sbom, [{ mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size }]);
  const image: PublishedImage = {
    digest: manifest.digest,
    mediaType: manifest.mediaType,
    size: manifest.size,
    body: manifest.body,
    revision: job.source.revision,
  };
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
