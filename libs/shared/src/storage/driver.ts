import type { Readable, Writable } from 'node:stream';

/**
 * A storage key: a relative, slash-separated path made by this project from
 * validated parts (digests, random staging ids), never from raw user text.
 * Made only by the helpers in `keys.ts`.
 */
export type StorageKey = string & { readonly __brand: 'StorageKey' };

/** Byte range, inclusive at both ends, as in an HTTP `Range: bytes=start-end` header. */
export interface ByteRange {
  start: number;
  end: number;
}

/** What `stat` knows about a stored object. */
export interface ObjectInfo {
  size: number;
  contentType?: string;
}

/** One stored object, as `list` gives it. */
export interface StoredObject {
  key: StorageKey;
  size: number;
  /** When the object was last written (filesystem: mtime; GCS: `updated`). */
  updated: Date;
}

/** The key prefixes `list` walks: one per key shape of `keys.ts`. */
export type ListPrefix = 'layers/' | 'manifests/' | 'staging/';

/** A readable object, or a slice of it when a range was asked for. */
export interface ObjectReader {
  stream: Readable;
  /** Total size of the whole object in bytes. */
  size: number;
  /**
   * Optional (the filesystem driver): writes the bytes to `dest` without a
   * stream, reusing its buffers (issue 15), and does not end `dest`. Use
   * either this or `stream`, not both.
   */
  sendTo?(dest: Writable): Promise<void>;
}

/**
 * The storage driver interface: a small blob store. Every driver passes the
 * shared conformance suite in test/storage-conformance.ts.
 */
export interface StorageDriver {
  /** Short name for logs and metrics ("filesystem", "gcs"). */
  readonly name: string;
  /** Streams `source` into `key` (overwriting) and resolves with the byte count. Never buffers the whole object. */
  write(key: StorageKey, source: Readable, opts?: { contentType?: string }): Promise<{ size: number }>;
  /** Opens `key` for reading, optionally a byte range (already validated against the size). Null when missing. */
  read(key: StorageKey, range?: ByteRange): Promise<ObjectReader | null>;
  /** Size and content type of `key`, or null when missing. */
  stat(key: StorageKey): Promise<ObjectInfo | null>;
  /** Moves `from` to `to` (overwriting `to`); `to` appears complete or not at all. */
  move(from: StorageKey, to: StorageKey): Promise<void>;
  /** Deletes `key`; deleting a missing key is not an error. */
  delete(key: StorageKey): Promise<void>;
  /**
   * Optional capability: a URL a client can fetch `key` from directly (signed or
   * public). When offered, the gateway answers blob GETs with a 307 redirect.
   */
  redirectUrl?(key: StorageKey): Promise<string | null>;
  /**
   * Deletes staging leftovers last changed before `olderThan`: objects under
   * `staging/` (a staged write whose process died before its move), and the
   * driver's own partial files of interrupted writes. Never an object under a
   * digest key. Resolves with how many it removed. Run by the staging
   * sweeper (`startStagingSweeper`) with a cutoff well past any write in progress.
   */
  removeStaging(olderThan: Date): Promise<{ removed: number }>;
  /**
   * Every complete object whose key starts with `prefix`, with its size and
   * last write time, in no particular order (storage garbage collection, the
   * `collect` room). Only keys of the shapes `keys.ts` makes; never a partial
   * file of a write in progress. A prefix with no objects gives nothing.
   */
  list(prefix: ListPrefix): AsyncIterable<StoredObject>;
  /** Checks that the backend is reachable (for /readyz). */
  ping(): Promise<void>;
}

/** Settings of the S3 driver (any S3-compatible service: AWS, MinIO, Ceph, R2, ...); credentials come from the AWS SDK's chain. */
export interface S3Settings {
  /** Bucket name (S3_BUCKET). The bucket must exist. */
  bucket: string;
  /** Region (S3_REGION, default `us-east-1`); also what the signatures name. */
  region: string;
  /** Endpoint of a non-AWS service, e.g. `http://127.0.0.1:9000` (S3_ENDPOINT); default: AWS's for the region. */
  endpoint?: string;
  /** Path-style URLs `<endpoint>/<bucket>/<key>` instead of `<bucket>.<endpoint>` (S3_FORCE_PATH_STYLE, default false). */
  forcePathStyle: boolean;
  /** Whether blob GETs are answered by a 307 to a presigned URL (S3_REDIRECT, default true); else the gateway proxies the bytes. */
  redirect: boolean;
  /** Lifetime of a presigned URL in seconds (S3_SIGNED_URL_TTL, default 300). */
  signedUrlTtlSeconds: number;
  /**
   * Endpoint that presigned URLs name, when clients reach the service under
   * another name than Nixery does (S3_PUBLIC_ENDPOINT, e.g. `http://localhost:4569`
   * for a server that the apps call `http://s3:4569` inside docker-compose).
   * The URL is signed for that host. Default: `endpoint`.
   */
  publicEndpoint?: string;
}

/** Storage backend settings. */
export type StorageConfig =
  | { backend: 'filesystem'; path: string }
  | { backend: 'gcs'; bucket: string; signedUrls: boolean; signedUrlTtlSeconds: number; credentialsFile?: string; publicUrl?: string }
  | ({ backend: 's3' } & S3Settings);
