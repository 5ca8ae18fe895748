import { type Digest, sha256Digest } from '../core/digest';
import { MediaTypes } from '../core/media-types';

/**
 * An image as published: its manifest and what a manifest response needs
 * (`Content-Type` = `mediaType`, `Docker-Content-Digest`, `Content-Length` =
 * `size`, `Nixery-Revision`). Written once by the pipeline's publishImage,
 * returned by the build job and kept in the manifest cache.
 */
export interface PublishedImage {
  digest: Digest;
  mediaType: string;
  /** Bytes of `body`. */
  size: number;
  /** The manifest itself. */
  body: string;
  /** The package-source revision it was built from ('' when unknown). */
  revision: string;
}

/** A layer as it appears in a manifest, plus its uncompressed digest for the config. */
export interface ManifestLayer {
  digest: Digest;
  size: number;
  diffId: Digest;
}

/** Serialised image config and manifest, with their digests. */
export interface ImageDocuments {
  config: { body: string; digest: Digest; size: number };
  manifest: { body: string; digest: Digest; size: number; mediaType: string };
}

/** Inputs of the image config (Docker image spec v1). */
export interface ConfigInputs {
  architecture: 'amd64' | 'arm64';
  /** Layers in manifest order (lowest first). */
  layers: ManifestLayer[];
  /** Whether bash is in the image (then Cmd is ["bash"], as in Nixery). */
  hasBash: boolean;
  /** Image labels (e.g. the package-source revision). */
  labels: Record<string, string>;
}

/**
 * Builds the image config and the Docker schema 2 manifest. Pure: the same
 * inputs give the same bytes, so the same image gets the same digest on any worker.
 */
export function buildImageDocuments(inp: ConfigInputs): ImageDocuments {
  const config = {
    architecture: inp.architecture,
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: inp.layers.map((l) => l.diffId) },
    config: {
      Env: ['PATH=/bin:/usr/bin:/sbin:/usr/sbin', 'SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt'],
      ...(inp.hasBash ? { Cmd: ['bash'] } : {}),
      ...(Object.keys(inp.labels).length ? { Labels: sortedObject(inp.labels) } : {}),
    },
  };
  const configBody = JSON.stringify(config);
  const configDigest = sha256Digest(configBody);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.dockerManifest,
    config: { mediaType: MediaTypes.dockerConfig, size: Buffer.byteLength(configBody), digest: configDigest },
    layers: inp.layers.map((l) => ({ mediaType: MediaTypes.dockerLayer, size: l.size, digest: l.digest })),
  };
  const manifestBody = JSON.stringify(manifest);
  return {
    config: { body: configBody, digest: configDigest, size: Buffer.byteLength(configBody) },
    manifest: {
      body: manifestBody,
      digest: sha256Digest(manifestBody),
      size: Buffer.byteLength(manifestBody),
      mediaType: MediaTypes.dockerManifest,
    },
  };
}

function sortedObject(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
