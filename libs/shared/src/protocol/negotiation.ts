/**
 * Content negotiation of manifests (issue 13), as the reference registry
 * does it: the `Accept` headers (any number, each a comma list, with
 * parameters and q-values) pick which document of an image is sent.
 *
 * - Only the four types this registry makes count: Docker schema 2, OCI
 *   image manifest, Docker manifest list, OCI image index. Wildcards
 *   (`*\/*`, `application/*`) and other types choose nothing; `q=0` refuses.
 * - Among the accepted ones the highest q wins; on a tie the order is
 *   Docker manifest list, OCI index (when an index may be sent at all),
 *   Docker schema 2, OCI manifest.
 * - Nothing accepted (no Accept, `*\/*`, or only other types) gives Docker
 *   schema 2, as Nixery did; OCI when schema 2 was refused with q=0 and OCI was not.
 * An index's entries are manifests of its own family (a Docker list names
 * Docker manifests, an OCI index OCI manifests).
 */
import { MediaTypes } from '../core/media-types';
import { BoundedMemo } from '../core/memo';

/** What a manifest request gets: an index or a single manifest, of one family. */
export interface ManifestChoice {
  index: boolean;
  family: 'docker' | 'oci';
}

/** Media types a client accepts with their q (refused ones with 0), lowercase, parameters dropped. */
export function parseAccept(headers: string | readonly string[] | undefined): Map<string, number> {
  const out = new Map<string, number>();
  const lines = headers === undefined ? [] : typeof headers === 'string' ? [headers] : headers;
  for (const line of lines) {
    for (const item of line.split(',')) {
      const [type, ...params] = item.split(';').map((p) => p.trim());
      if (!type) continue;
      let q = 1;
      for (const p of params) {
        const m = /^q\s*=\s*([0-9.]+)$/i.exec(p);
        if (m) q = Math.min(1, Math.max(0, Number(m[1]) || 0));
      }
      const key = type.toLowerCase();
      // The same type twice: the larger q counts.
      out.set(key, Math.max(out.get(key) ?? 0, q));
    }
  }
  return out;
}

const CANDIDATES: ReadonlyArray<{ type: string; choice: ManifestChoice }> = [
  { type: MediaTypes.dockerManifestList, choice: { index: true, family: 'docker' } },
  { type: MediaTypes.ociIndex, choice: { index: true, family: 'oci' } },
  { type: MediaTypes.dockerManifest, choice: { index: false, family: 'docker' } },
  { type: MediaTypes.ociManifest, choice: { index: false, family: 'oci' } },
];

/** Picks the document for a request's `Accept` headers; `index`: whether this image has an index to offer. */
export function negotiateManifest(headers: string | readonly string[] | undefined, opts: { index: boolean }): ManifestChoice {
  // Node joins repeated Accept headers into one string; a list (handed in directly) is not memoised.
  if (typeof headers === 'string' || headers === undefined) return choices.get(`${opts.index ? 'i' : 's'}${headers ?? ''}`, () => choose(headers, opts));
  return choose(headers, opts);
}

/** Clients send a handful of distinct Accept headers (issue 15: no parsing on a warm pull). */
const choices = new BoundedMemo<string, ManifestChoice>(512);

function choose(headers: string | readonly string[] | undefined, opts: { index: boolean }): ManifestChoice {
  const accept = parseAccept(headers);
  let best: { q: number; choice: ManifestChoice } | null = null;
  for (const c of CANDIDATES) {
    if (c.choice.index && !opts.index) continue;
    const q = accept.get(c.type) ?? 0;
    if (q > 0 && (!best || q > best.q)) best = { q, choice: c.choice };
  }
  if (best) return best.choice;
  const refusedDocker = accept.get(MediaTypes.dockerManifest) === 0;
  const refusedOci = accept.get(MediaTypes.ociManifest) === 0;
  return { index: false, family: refusedDocker && !refusedOci ? 'oci' : 'docker' };
}
