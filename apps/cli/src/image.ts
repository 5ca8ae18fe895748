import type { Digest } from '@nixery/shared';

/** One blob of a local image: where its bytes are and how a manifest names it. */
export interface LocalBlob {
  digest: Digest;
  size: number;
  mediaType: string;
  /** The file holding exactly these bytes. */
  file: string;
}

/** A manifest as bytes, with its digest and media type. */
export interface LocalManifest {
  body: string;
  digest: Digest;
  mediaType: string;
}

/**
 * An image on this machine, ready to be written out or pushed: its manifest,
 * its config and its layers, each blob in a file. Built by `buildLocalImage`
 * or read from an OCI layout (`readOciLayout`).
 */
export interface LocalImage {
  /** The manifest pushed: the Docker schema 2 one the registry serves by default, or what a layout holds. */
  manifest: LocalManifest;
  /** The OCI image manifest of the same blobs (what the registry serves for an OCI Accept), written into OCI layouts. */
  oci: LocalManifest;
  config: LocalBlob;
  layers: LocalBlob[];
  /** The image config's architecture (amd64, arm64). */
  architecture: string;
}
