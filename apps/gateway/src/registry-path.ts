import { BoundedMemo, type Digest, RegistryError, parseDigest, validateName } from '@nixery/shared';

/** A parsed `/v2/...` request path. */
export type RegistryRoute = Readonly<
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: Readonly<{ tag: string } | { digest: Digest }> }
  | { kind: 'blob'; name: string; digest: Digest }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: Digest }
  | { kind: 'upload'; name: string }
>;

const ROUTE_RE = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/(.*)$/;

/**
 * Parses the path of a registry request. Throws RegistryError for malformed
 * names and blob or referrers digests (400) and manifest references that are neither a
 * tag nor a digest (404 MANIFEST_UNKNOWN); returns null for paths that are not
 * registry routes at all.
 */
export function parseRegistryPath(path: string): RegistryRoute | null {
  return routes.get(path, () => parseRoute(path));
}

/** Warm pulls ask for the same few paths (issue 15); routes are never changed, and a path that throws is not kept. */
const routes = new BoundedMemo<string, RegistryRoute | null>(4096);

function parseRoute(path: string): RegistryRoute | null {
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  const m = ROUTE_RE.exec(path);
  if (!m) return null;
  const [, name, section, rest] = m as unknown as [string, string, string, string];
  const nameErr = validateName(name);
  if (nameErr) throw new RegistryError('NAME_INVALID', nameErr.reason);
  if (section === 'tags') {
    if (rest !== 'list') return null;
    return { kind: 'tags', name };
  }
  if (section === 'referrers') {
    const digest = parseDigest(rest);
    if (!digest) throw new RegistryError('DIGEST_INVALID', 'digest must be sha256:<64 lowercase hex>');
    return { kind: 'referrers', name, digest };
  }
  if (section === 'blobs') {
    if (rest === 'uploads' || rest.startsWith('uploads/')) return { kind: 'upload', name };
    const digest = parseDigest(rest);
    if (!digest) throw new RegistryError('DIGEST_INVALID', 'digest must be sha256:<64 lowercase hex>');
    return { kind: 'blob', name, digest };
  }
  if (rest.includes(':')) {
    // Neither a tag (no ':') nor a digest: no manifest has that reference (404, as the reference registry answers).
    const digest = parseDigest(rest);
    if (!digest) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown: the reference is neither a tag nor a sha256 digest', { reference: rest });
    return { kind: 'manifest', name, reference: { digest } };
  }
  return { kind: 'manifest', name, reference: { tag: rest } };
}
