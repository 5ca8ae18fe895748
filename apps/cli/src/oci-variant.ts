import { type Digest, MediaTypes, sha256Digest } from '@nixery/shared';
import type { LocalImage, LocalManifest } from './image';

/** The OCI media types of the same config and layer bytes. */
export const OciTypes = {
  manifest: MediaTypes.ociManifest,
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  index: 'application/vnd.oci.image.index.v1+json',
} as const;

/**
 * The OCI image manifest of an image built as Docker schema 2: the same
 * config and layer blobs (byte for byte), OCI media types. umoci and other
 * OCI tools take only this variant from an OCI layout. Until the registry
 * negotiates manifest variants (issue 17 notes), this is the CLI's own.
 */
export function ociManifestOf(image: Pick<LocalImage, 'config' | 'layers'>): LocalManifest {
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OciTypes.manifest,
    config: { mediaType: OciTypes.config, digest: image.config.digest, size: image.config.size },
    layers: image.layers.map((l) => ({ mediaType: OciTypes.layer, digest: l.digest, size: l.size })),
  });
  return { body, digest: sha256Digest(body) as Digest, mediaType: OciTypes.manifest };
}
