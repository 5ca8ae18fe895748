import { createHash } from 'node:crypto';

/** A validated `sha256:<64 lowercase hex>` content digest. Only `parseDigest` and `sha256Digest` make one. */
export type Digest = string & { readonly __brand: 'Digest' };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** Parses untrusted text into a Digest, or returns null when it is not a well-formed sha256 digest. */
export function parseDigest(text: string): Digest | null {
  return DIGEST_RE.test(text) ? (text as Digest) : null;
}

/** Wraps a hex sha256 produced by this process (never user text) as a Digest. */
export function digestFromHex(hex: string): Digest {
  const d = `sha256:${hex}`;
  if (!DIGEST_RE.test(d)) throw new Error(`not a sha256 hex: ${hex}`);
  return d as Digest;
}

/** The sha256 digest of a buffer or string. */
export function sha256Digest(data: Buffer | string): Digest {
  return digestFromHex(createHash('sha256').update(data).digest('hex'));
}

/** The hex part of a digest, safe to use in a storage key. */
export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}
