import { randomUUID } from 'node:crypto';
import { type Digest, digestHex } from '../core/digest';
import type { StorageKey } from './driver';

/** Key of a layer or config blob, as Nixery names them. */
export function blobKey(d: Digest): StorageKey {
  return `layers/${digestHex(d)}` as StorageKey;
}

/** Key of a manifest stored by its digest. */
export function manifestKey(d: Digest): StorageKey {
  return `manifests/${digestHex(d)}` as StorageKey;
}

/**
 * Key of the referrers index of a manifest (OCI referrers API): the
 * artifacts whose subject is that manifest, written by the pipeline with them.
 */
export function referrersKey(subject: Digest): StorageKey {
  return `referrers/${digestHex(subject)}` as StorageKey;
}

/** A fresh staging key; objects here are never served. */
export function stagingKey(): StorageKey {
  return `staging/${randomUUID()}` as StorageKey;
}

/** For tests and drivers: accepts only keys of the shapes above. */
export function isValidKey(key: string): key is StorageKey {
  return /^(layers|manifests|referrers)\/[a-f0-9]{64}$|^staging\/[a-f0-9-]{36}$/.test(key);
}
