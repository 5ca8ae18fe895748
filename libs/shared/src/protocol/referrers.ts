import { type Digest, parseDigest, sha256Digest } from '../core/digest';
import { MediaTypes } from '../core/media-types';

/**
 * Artifacts and the referrers API (OCI distribution spec 1.1, image spec
 * 1.1 artifact guidance): an artifact is an OCI image manifest with an
 * `artifactType`, the empty config, its content as layers, and a `subject`
 * naming the manifest it is about; `GET /v2/<name>/referrers/<digest>`
 * lists the artifacts whose subject is that digest as an OCI image index.
 */
export const ArtifactMediaTypes = {
  /** The empty descriptor's media type: an artifact without a config. */
  empty: 'application/vnd.oci.empty.v1+json',
} as const;

/** The empty JSON blob (`{}`) an artifact's config descriptor points at. */
export const EMPTY_BLOB = '{}';

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** The content itself, base64 (the empty descriptor carries it). */
  data?: string;
}

/** The descriptor of the empty blob, with its data inline as the image spec suggests. */
export function emptyDescriptor(): Descriptor {
  return { mediaType: ArtifactMediaTypes.empty, digest: sha256Digest(EMPTY_BLOB), size: 2, data: Buffer.from(EMPTY_BLOB).toString('base64') };
}

/** A serialised artifact manifest and the descriptor a referrers index lists it by. */
export interface ArtifactManifest {
  body: string;
  digest: Digest;
  size: number;
  mediaType: string;
  /** mediaType, digest, size, artifactType and annotations, as a referrers index lists it. */
  descriptor: Descriptor;
}

/**
 * The artifact manifest for one blob about one subject manifest (annotations
 * in the order given). Pure: the
 * same blob and subject give the same bytes, so one image's SBOM artifact
 * has the same digest on every worker.
 */
export function buildArtifactManifest(inp: { artifactType: string; blob: Descriptor; subject: Descriptor; annotations?: Record<string, string> }): ArtifactManifest {
  const subject: Descriptor = { mediaType: inp.subject.mediaType, digest: inp.subject.digest, size: inp.subject.size };
  const annotations = inp.annotations && Object.keys(inp.annotations).length ? inp.annotations : undefined;
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    artifactType: inp.artifactType,
    config: emptyDescriptor(),
    layers: [{ mediaType: inp.blob.mediaType, digest: inp.blob.digest, size: inp.blob.size }],
    subject,
    ...(annotations ? { annotations } : {}),
  };
  const body = JSON.stringify(manifest);
  const digest = sha256Digest(body);
  const size = Buffer.byteLength(body);
  return {
    body,
    digest,
    size,
    mediaType: MediaTypes.ociManifest,
    descriptor: { mediaType: MediaTypes.ociManifest, digest, size, artifactType: inp.artifactType, ...(annotations ? { annotations } : {}) },
  };
}

/**
 * The referrers answer: an OCI image index of `descriptors`, only those of
 * `artifactType` when one is asked for (`filtered` then, for the
 * `OCI-Filters-Applied: artifactType` header). Sorted by digest, so the same
 * referrers give the same bytes.
 */
export function referrersIndex(descriptors: readonly Descriptor[], artifactType?: string): { body: string; filtered: boolean } {
  const chosen = artifactType === undefined ? descriptors : descriptors.filter((d) => d.artifactType === artifactType);
  const manifests = [...new Map(chosen.map((d) => [d.digest, d])).values()].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  return { body: JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests }), filtered: artifactType !== undefined };
}

/** The descriptors of a stored referrers index; null when the text is not one. */
export function parseReferrersIndex(text: string): Descriptor[] | null {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return null;
  }
  const list = (doc as { manifests?: unknown } | null)?.manifests;
  if (!Array.isArray(list)) return null;
  const out: Descriptor[] = [];
  for (const raw of list) {
    const d = raw as Partial<Record<keyof Descriptor, unknown>> | null;
    const digest = parseDigest(String(d?.digest ?? ''));
    if (!d || !digest || typeof d.mediaType !== 'string' || typeof d.size !== 'number') return null;
    out.push({
      mediaType: d.mediaType,
      digest,
      size: d.size,
      ...(typeof d.artifactType === 'string' ? { artifactType: d.artifactType } : {}),
      ...(d.annotations && typeof d.annotations === 'object' ? { annotations: d.annotations as Record<string, string> } : {}),
    });
  }
  return out;
}
