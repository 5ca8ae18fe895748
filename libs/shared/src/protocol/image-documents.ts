import { type Digest, sha256Digest } from '../core/digest';
import { MediaTypes } from '../core/media-types';

/**
 * An image as published: its manifest and what a manifest response needs
 * (`Content-Type` = `mediaType`, `Docker-Content-Digest`, `Content-Length` =
 * `size`, `Nixery-Revision`). Written once by the pipeline's publishImage,
 * returned by the build job and kept in the manifest cache.
 */
export interface PublishedImage extends ManifestDocument {
  /** The package-source revision it was built from ('' when unknown). */
  revision: string;
  /**
   * The same image as an OCI image manifest (issue 13): OCI media types for
   * its config and layers, the same blobs. The outer fields are the Docker
   * schema 2 variant (for an index: the Docker manifest list).
   */
  oci: ManifestDocument;
}

/** One serialised manifest (or index) with what a response needs. */
export interface ManifestDocument {
  digest: Digest;
  mediaType: string;
  /** Bytes of `body`. */
  size: number;
  /** The document itself. */
  body: string;
}

/** A layer as it appears in a manifest, plus its uncompressed digest for the config. */
export interface ManifestLayer {
  digest: Digest;
  size: number;
  diffId: Digest;
}

/** Serialised image config and its two manifests (Docker schema 2 and OCI), with their digests. */
export interface ImageDocuments {
  config: { body: string; digest: Digest; size: number };
  /** The Docker schema 2 manifest. */
  manifest: ManifestDocument;
  /** The OCI image manifest of the same config and layer blobs. */
  oci: ManifestDocument;
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
 * Builds the image config and both manifests of it: Docker schema 2 and OCI
 * (the same config and layer blobs, each family's media types). Pure: the
 * same inputs give the same bytes, so the same image gets the same digests
 * on any worker.
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
  const configRef = { size: Buffer.byteLength(configBody), digest: sha256Digest(configBody) };
  const manifestOf = (types: { manifest: string; config: string; layer: string }): ManifestDocument =>
    documentOf(types.manifest, {
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: types.config, ...configRef },
      layers: inp.layers.map((l) => ({ mediaType: types.layer, size: l.size, digest: l.digest })),
    });
  return {
    config: { body: configBody, ...configRef },
    manifest: manifestOf({ manifest: MediaTypes.dockerManifest, config: MediaTypes.dockerConfig, layer: MediaTypes.dockerLayer }),
    oci: manifestOf({ manifest: MediaTypes.ociManifest, config: MediaTypes.ociConfig, layer: MediaTypes.ociLayer }),
  };
}

/** The platform of one entry of an image index (the image spec's `platform` object). */
export interface IndexPlatform {
  os: 'linux';
  architecture: 'amd64' | 'arm64';
  /** `v8` for arm64 (what Docker and containerd match `linux/arm64` against). */
  variant?: string;
}

/** One image of an index: its platform and its two manifests. */
export interface IndexEntry {
  platform: IndexPlatform;
  image: Pick<PublishedImage, 'digest' | 'mediaType' | 'size' | 'oci'>;
}

/**
 * Builds both indexes of a multi-platform image from its platforms' images,
 * in the order given: the Docker manifest list naming the Docker manifests,
 * and the OCI image index naming the OCI manifests. Pure and deterministic.
 * The result is a `PublishedImage` whose outer fields are the manifest list
 * and whose `oci` is the index.
 */
export function buildIndexDocuments(entries: readonly IndexEntry[], revision: string): PublishedImage {
  const indexOf = (mediaType: string, pick: (e: IndexEntry) => Pick<ManifestDocument, 'digest' | 'mediaType' | 'size'>): ManifestDocument =>
    documentOf(mediaType, {
      schemaVersion: 2,
      mediaType,
      manifests: entries.map((e) => {
        const m = pick(e);
        return { mediaType: m.mediaType, size: m.size, digest: m.digest, platform: { ...e.platform } };
      }),
    });
  return {
    ...indexOf(MediaTypes.dockerManifestList, (e) => e.image),
    oci: indexOf(MediaTypes.ociIndex, (e) => e.image.oci),
    revision,
  };
}

/** The published image of built documents: the Docker manifest outside, the OCI one in `oci`. */
export function publishedImage(docs: Pick<ImageDocuments, 'manifest' | 'oci'>, revision: string): PublishedImage {
  return { ...docs.manifest, oci: docs.oci, revision };
}

/** The variants of a published image (Docker first), each with its own digest. */
export function manifestVariants(m: PublishedImage): ManifestDocument[] {
  const { oci, revision: _revision, ...docker } = m;
  return [docker, oci];
}

function documentOf(mediaType: string, doc: object): ManifestDocument {
  const body = JSON.stringify(doc);
  return { body, digest: sha256Digest(body), size: Buffer.byteLength(body), mediaType };
}

function sortedObject(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
