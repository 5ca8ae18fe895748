import { Failed, type Failure } from '../core/failure';
import type { ListPrefix, StorageDriver, StorageKey, StoredObject } from './driver';
import { isValidKey } from './keys';

/**
 * Thrown by a driver handed a key that is not one of the shapes made by
 * `keys.ts`, or whose path would leave the storage root. Never expected in
 * normal operation: it means a bug or an attack upstream.
 */
export class InvalidStorageKeyError extends Error {
  constructor(readonly key: string) {
    super(`invalid storage key: ${JSON.stringify(key)}`);
    this.name = 'InvalidStorageKeyError';
  }
}

function check(key: StorageKey): StorageKey {
  if (typeof key !== 'string' || !isValidKey(key)) throw new InvalidStorageKeyError(String(key));
  return key;
}

/** Errno codes of a full disk or quota. */
const FULL = new Set(['ENOSPC', 'EDQUOT']);

/**
 * The failure a storage backend's error means, or null for errors that are
 * not the backend's (a bug, a stream closed by its reader...):
 * - an errno code (`ENOSPC`, `EIO`, `EROFS`, `ECONNREFUSED`, ...): `storage_full`
 *   for a full disk or quota, else `storage_unavailable`; the cause is the code
 *   and Node's description of it, never the path it names;
 * - an HTTP error status from a cloud client (GCS `ApiError.code`: 5xx, 429,
 *   403, ...): `storage_unavailable` naming the status and the service's message.
 */
export function storageFailure(err: unknown, backend: string): Failure | null {
  if (err instanceof Failed) return err.failure;
  if (typeof err !== 'object' || err === null || err instanceof InvalidStorageKeyError) return null;
  const code = (err as { code?: unknown }).code;
  const message = String((err as { message?: unknown }).message ?? '');
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
    // Node's fs messages read "CODE: description, syscall 'path'": keep the part before the comma.
    const cause = message.startsWith(`${code}: `) ? message.split(',')[0]! : code;
    return FULL.has(code) ? { kind: 'storage_full', message: cause } : { kind: 'storage_unavailable', backend, cause };
  }
  if (typeof code === 'number' && code >= 400) {
    return { kind: 'storage_unavailable', backend, cause: `HTTP ${code}: ${message.slice(0, 300)}` };
  }
  return null;
}

/** A driver's listing, keeping only keys of the shapes `keys.ts` makes under `prefix` (anything else is not ours to collect). */
async function* listed(d: StorageDriver, prefix: ListPrefix): AsyncIterable<StoredObject> {
  for await (const o of d.list(prefix)) if (o.key.startsWith(prefix) && isValidKey(o.key)) yield o;
}

/**
 * The one wrapper every driver goes through: each key is checked against the
 * shapes `keys.ts` makes (`InvalidStorageKeyError` otherwise) before the
 * driver sees it, and a backend error of any operation on a key becomes the
 * failure it means (`storageFailure`: a full disk is `storage_full`, an I/O
 * or cloud error `storage_unavailable`), thrown inside `Failed`. A listing
 * holds only keys of those shapes.
 */
export function checkedDriver(d: StorageDriver): StorageDriver {
  const honest = (err: unknown): never => {
    const f = storageFailure(err, d.name);
    throw f && !(err instanceof Failed) ? new Failed(f) : err;
  };
  return {
    name: d.name,
    write: async (key, source, opts) => d.write(check(key), source, opts).catch(honest),
    read: async (key, range) => d.read(check(key), range).catch(honest),
    stat: async (key) => d.stat(check(key)).catch(honest),
    move: async (from, to) => d.move(check(from), check(to)).catch(honest),
    delete: async (key) => d.delete(check(key)).catch(honest),
    ping: () => d.ping(),
    removeStaging: (olderThan) => d.removeStaging(olderThan),
    list: (prefix) => listed(d, prefix),
    ...(d.redirectUrl ? { redirectUrl: async (key: StorageKey) => d.redirectUrl!(check(key)).catch(honest) } : {}),
  };
}
