import { Failed } from '../core/failure';
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

/** A full disk (or bucket quota) as the `storage_full` failure; anything else as it is. */
function full(err: unknown): never {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') throw new Failed({ kind: 'storage_full', message: (err as Error).message });
  throw err;
}

/** A driver's listing, keeping only keys of the shapes `keys.ts` makes under `prefix` (anything else is not ours to collect). */
async function* listed(d: StorageDriver, prefix: ListPrefix): AsyncIterable<StoredObject> {
  for await (const o of d.list(prefix)) if (o.key.startsWith(prefix) && isValidKey(o.key)) yield o;
}

/**
 * The one wrapper every driver goes through: each key is checked against the
 * shapes `keys.ts` makes (`InvalidStorageKeyError` otherwise) before the
 * driver sees it, and a full disk on write or move becomes a `storage_full`
 * failure. A listing holds only keys of those shapes.
 */
export function checkedDriver(d: StorageDriver): StorageDriver {
  return {
    name: d.name,
    write: async (key, source, opts) => d.write(check(key), source, opts).catch(full),
    read: async (key, range) => d.read(check(key), range),
    stat: async (key) => d.stat(check(key)),
    move: async (from, to) => d.move(check(from), check(to)).catch(full),
    delete: async (key) => d.delete(check(key)),
    ping: () => d.ping(),
    removeStaging: (olderThan) => d.removeStaging(olderThan),
    list: (prefix) => listed(d, prefix),
    ...(d.redirectUrl ? { redirectUrl: async (key: StorageKey) => d.redirectUrl!(check(key)) } : {}),
  };
}
