import { type Digest, parseDigest } from '../core/digest';

/** What one stored manifest refers to. */
export interface ManifestReferences {
  /** Blobs: the config and every layer (`layers/<hex>`). */
  blobs: Digest[];
  /** Other manifests (the entries of an image index), kept with it. */
  manifests: Digest[];
  /** The manifest an artifact (an SBOM) is about: it is kept while its subject is. */
  subject?: Digest;
}

/** The digests of a list of descriptors, skipping what is not a valid digest. */
function digestsOf(list: unknown): Digest[] {
  if (!Array.isArray(list)) return [];
  const out: Digest[] = [];
  for (const d of list) {
    const parsed = parseDigest(String((d as { digest?: unknown } | null)?.digest ?? ''));
    if (parsed) out.push(parsed);
  }
  return out;
}

/**
 * The blobs and manifests a manifest body (Docker v2 schema 2, OCI manifest
 * or image index) refers to; null when the body is not a JSON object, so
 * the collector keeps what it cannot read.
 */
export function manifestReferences(body: string): ManifestReferences | null {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return null;
  const m = doc as { config?: unknown; layers?: unknown; manifests?: unknown; subject?: unknown };
  const [subject] = digestsOf(m.subject ? [m.subject] : []);
  return { blobs: [...digestsOf(m.config ? [m.config] : []), ...digestsOf(m.layers)], manifests: digestsOf(m.manifests), ...(subject ? { subject } : {}) };
}
