import type { RedisKeys } from '../infra/redis';

/** Redis keys of the popularity job, next to the table (`<prefix>:popularity`). */
export function popcountKeys(keys: RedisKeys) {
  const base = keys.popularity;
  return {
    /** The table: JSON object name -> count. */
    table: base,
    /** The table's metadata (PopularityMeta JSON). */
    meta: keys.popularityMeta,
    /** Counter giving each published table its version. */
    version: `${base}:version`,
    /** Set (with an expiry) while a run is computing a table. */
    running: `${base}:running`,
    /** The last runs (JSON lines, newest first). */
    runs: `${base}:runs`,
    /** narinfo references of the last run's store paths: hash field -> JSON list of references. */
    narinfo: `${base}:narinfo`,
    /** A staging key, renamed into place when complete. */
    staging: (id: string) => `${base}:staging:${id}`,
  };
}
export type PopcountKeys = ReturnType<typeof popcountKeys>;
