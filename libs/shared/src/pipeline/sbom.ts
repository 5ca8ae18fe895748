import { Readable } from 'node:stream';
import type { PreparedPackage } from '../nix';
import type { ClosureGraph } from '../core/graph';
import type { BuildJobData } from '../jobs';
import { type ArtifactManifest, type Descriptor, ArtifactMediaTypes, EMPTY_BLOB, buildArtifactManifest, referrersIndex } from '../protocol';
import { SBOM_CREATED, SPDX_MEDIA_TYPE, type SbomDocument, buildSpdxDocument } from '../sbom';
import { MediaTypes } from '../core/media-types';
import { blobKey, manifestKey, putStaged, referrersKey, type StorageDriver } from '../storage';

/**
 * The SBOM of one image (one platform): the SPDX document of its closure,
 * its requested packages and its package source. The source is named by its
 * kind and revision only (its identity may hold a server path).
 */
export function imageSbom(job: BuildJobData, graph: ClosureGraph, packages: Record<string, PreparedPackage>): SbomDocument {
  const kind = /^[a-z0-9-]+(?=:)/.exec(job.source.identity)?.[0] ?? 'unknown';
  return buildSpdxDocument({
    graph,
    topLevel: Object.values(packages).map((p) => ({ attr: p.attr, storePath: p.out })),
    source: { kind, revision: job.source.revision },
    system: job.image.system,
  });
}

/** The artifact manifest saying that `sbom` describes the image manifest `subject`. */
export function sbomArtifact(sbom: SbomDocument, subject: Descriptor): ArtifactManifest {
  return buildArtifactManifest({
    artifactType: SPDX_MEDIA_TYPE,
    blob: { mediaType: SPDX_MEDIA_TYPE, digest: sbom.digest, size: sbom.size },
    subject,
    annotations: { 'org.opencontainers.image.created': SBOM_CREATED, 'org.opencontainers.image.description': 'SPDX 2.3 SBOM of the image\'s Nix closure' },
  });
}

/**
 * Writes an image's SBOM and attaches it to each of the image's manifests
 * (one per media type variant and platform of the same closure): the SPDX
 * blob and the empty config blob, then per subject the artifact manifest
 * (`manifests/<hex>`) and the subject's referrers index
 * (`referrers/<subject hex>`), so a listed artifact is always fetchable.
 * Returns the artifact manifests.
 */
export async function publishSbom(storage: StorageDriver, sbom: SbomDocument, subjects: readonly Descriptor[]): Promise<ArtifactManifest[]> {
  await putStaged(storage, Readable.from([Buffer.from(sbom.body)]), blobKey, SPDX_MEDIA_TYPE);
  await putStaged(storage, Readable.from([Buffer.from(EMPTY_BLOB)]), blobKey, ArtifactMediaTypes.empty);
  const artifacts: ArtifactManifest[] = [];
  for (const subject of subjects) {
    const artifact = sbomArtifact(sbom, subject);
    await putStaged(storage, Readable.from([Buffer.from(artifact.body)]), manifestKey, artifact.mediaType);
    const index = referrersIndex([artifact.descriptor]);
    await putStaged(storage, Readable.from([Buffer.from(index.body)]), () => referrersKey(subject.digest), MediaTypes.ociIndex);
    artifacts.push(artifact);
  }
  return artifacts;
}
