import { type Readable, Transform } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { ByteCounter } from '../core/counters';
import { Failed, type Failure } from '../core/failure';
import { checkedDriver } from './checked';
import type { ByteRange, ObjectInfo, ObjectReader, S3Settings, StorageDriver, StorageKey, StoredObject } from './driver';

/** Options of the S3 driver: the settings, and explicit credentials for tests. */
export interface S3DriverOptions extends S3Settings {
  /** Explicit credentials; default: the SDK's credential chain (environment, shared files, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** Size of one multipart part: objects larger than this go up in parts, at most `QUEUE` parts in memory at once. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE = 2;
/** Connecting may take this long; a socket silent this long is given up (no request waits without bound). */
const CONNECT_TIMEOUT_MS = 5000;
const IDLE_TIMEOUT_MS = 60_000;
/** Time limit of one `ping`, without retries. */
const PING_TIMEOUT_MS = 5000;
/** Where staged objects live (see keys.ts `stagingKey`). */
const STAGING_PREFIX = 'staging/';

/** What the SDK's errors carry. */
interface SdkError {
  name?: string;
  message?: string;
  code?: unknown;
  $metadata?: { httpStatusCode?: number };
}

function sdkError(err: unknown): SdkError {
  return typeof err === 'object' && err !== null ? (err as SdkError) : {};
}

/** Whether the service said the object (or upload) does not exist. */
function isMissing(err: unknown): boolean {
  const e = sdkError(err);
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/**
 * The failure an S3 error means, or null when it is not the service's: an
 * HTTP error answer other than 404 (403 bad credentials, 5xx, 429 ...) and a
 * timeout are `storage_unavailable` naming the status and S3's error code;
 * errno codes (ECONNREFUSED ...) are left to `storageFailure` (checked.ts).
 */
export function s3Failure(err: unknown): Failure | null {
  if (err instanceof Failed) return err.failure;
  const e = sdkError(err);
  if (e.name === 'TimeoutError') return { kind: 'storage_unavailable', backend: 's3', cause: `timeout: ${String(e.message ?? '').slice(0, 200)}` };
  const status = e.$metadata?.httpStatusCode;
  if (typeof status === 'number' && status >= 400 && status !== 404) {
    // A HEAD answer has no body: the SDK then knows only the status.
    const said = e.name && e.name !== 'Unknown' ? ` ${e.name}: ${String(e.message ?? '').slice(0, 300)}` : '';
    return { kind: 'storage_unavailable', backend: 's3', cause: `HTTP ${status}${said}` };
  }
  return null;
}

/** Rethrows an S3 service error as the failure it means (see `s3Failure`). */
function rethrow(err: unknown): never {
  const f = s3Failure(err);
  throw f && !(err instanceof Failed) ? new Failed(f) : err;
}

/** The slice a ranged GET answered: from its Content-Range, or the whole object when the service ignored the range. */
function answeredRange(contentRange: string | undefined, length: number): { start: number; end: number; total: number } {
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(contentRange ?? '');
  if (m) return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
  return { start: 0, end: length - 1, total: length };
}

/**
 * A listed write time, as the latest instant it can stand for: S3 gives
 * whole seconds, and the storage collector's grace and the staging sweep's
 * age must never be cut short by up to a second (seen with a 1 s grace).
 */
function latestInstant(t: Date | undefined): Date {
  const ms = t?.getTime() ?? 0;
  return new Date(ms % 1000 === 0 ? ms + 999 : ms);
}

/** Passes on `length` bytes after skipping `skip`, then ends. */
class ByteSlice extends Transform {
  constructor(private skip: number, private left: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    const from = Math.min(this.skip, chunk.length);
    this.skip -= from;
    const part = chunk.subarray(from, from + this.left);
    this.left -= part.length;
    cb(null, part.length ? part : undefined);
  }
}

/**
 * A storage driver over one S3 bucket, through the official SDK.
 *
 * - `write` streams through `@aws-sdk/lib-storage`'s `Upload`: one PutObject
 *   for objects up to 8 MiB, else a multipart upload with at most two 8 MiB
 *   parts in memory. An object appears only when its upload completes; a
 *   failed upload is aborted by the helper.
 * - Staging design: `putStaged` writes to `staging/<uuid>` and then `move`s,
 *   which is a server-side CopyObject then DeleteObject. Why not a multipart
 *   completion straight to the digest key: the digest is known only after the
 *   last byte, but a multipart upload names its key when it starts, and the
 *   driver interface (shared with filesystem and GCS, and the conformance
 *   suite) writes under a key given first. The copy costs one request inside
 *   the service and never crosses the network; CopyObject handles objects up
 *   to 5 GiB, far above any layer Nixery makes.
 * - `removeStaging` deletes old `staging/` objects (a process killed between
 *   write and move) and aborts multipart uploads under `staging/` initiated
 *   before the cutoff (a process killed mid-upload); services without
 *   ListMultipartUploads (some emulators) skip the second part, and a bucket
 *   lifecycle rule `AbortIncompleteMultipartUpload` does it there.
 * - `redirectUrl` (unless `redirect` is false) presigns a GET (SigV4 in the
 *   query string) valid for `signedUrlTtlSeconds`.
 * - `ping` lists at most one key, one attempt, within 5 s.
 */
export function createS3Driver(opts: S3DriverOptions): StorageDriver {
  const base: S3ClientConfig = {
    region: opts.region,
    forcePathStyle: opts.forcePathStyle,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
  };
  const client = new S3Client({ ...base, requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, socketTimeout: IDLE_TIMEOUT_MS } });
  const pingClient = new S3Client({
    ...base,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: PING_TIMEOUT_MS, requestTimeout: PING_TIMEOUT_MS, throwOnRequestTimeout: true },
  });
  // Presigning is local (no request): a client of its own names the public endpoint.
  const presigner = opts.publicEndpoint ? new S3Client({ ...base, endpoint: opts.publicEndpoint }) : client;
  const Bucket = opts.bucket;

  async function stat(key: StorageKey): Promise<ObjectInfo | null> {
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
      const info: ObjectInfo = { size: Number(head.ContentLength ?? 0) };
      if (head.ContentType) info.contentType = head.ContentType;
      return info;
    } catch (err) {
      if (isMissing(err)) return null;
      return rethrow(err);
    }
  }

  async function* listed(prefix: string): AsyncIterable<StoredObject> {
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of page.Contents ?? []) {
        if (o.Key) yield { key: o.Key as StorageKey, size: Number(o.Size ?? 0), updated: latestInstant(o.LastModified) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Aborts multipart uploads under `staging/` started before `olderThan`; 0 where the service cannot list them. */
  async function abortStaleUploads(olderThan: Date): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    do {
      let page;
      try {
        page = await client.send(
          new ListMultipartUploadsCommand({ Bucket, Prefix: STAGING_PREFIX, ...(keyMarker ? { KeyMarker: keyMarker } : {}), ...(idMarker ? { UploadIdMarker: idMarker } : {}) }),
        );
      } catch (err) {
        if (sdkError(err).name === 'NotImplemented' || sdkError(err).$metadata?.httpStatusCode === 501) return aborted;
        throw err;
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !(u.Initiated && u.Initiated < olderThan)) continue;
        await client.send(new AbortMultipartUploadCommand({ Bucket, Key: u.Key, UploadId: u.UploadId })).catch((err: unknown) => {
          if (!isMissing(err)) throw err;
        });
        aborted++;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      idMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return aborted;
  }

  return checkedDriver({
    name: 's3',

    async write(key, source: Readable, wopts) {
      const counter = new ByteCounter();
      source.once('error', (e) => counter.destroy(e));
      const upload = new Upload({
        client,
        params: { Bucket, Key: key, Body: source.pipe(counter), ContentType: wopts?.contentType ?? 'application/octet-stream' },
        partSize: PART_SIZE,
        queueSize: QUEUE,
        leavePartsOnError: false,
      });
      await upload.done().catch(rethrow);
      return { size: counter.bytes };
    },

    async read(key, range?: ByteRange): Promise<ObjectReader | null> {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }));
        const body = res.Body as Readable;
        if (!range) return { stream: body, size: Number(res.ContentLength ?? 0) };
        const got = answeredRange(res.ContentRange, Number(res.ContentLength ?? 0));
        if (got.start > range.start || got.end < range.end) {
          body.destroy();
          throw new Error(`S3 answered bytes ${got.start}-${got.end} for a read of ${range.start}-${range.end}`);
        }
        // Services that answer more than was asked (the whole object, or a wider slice) are trimmed here.
        const exact = got.start === range.start && got.end === range.end;
        return { stream: exact ? body : body.pipe(new ByteSlice(range.start - got.start, range.end - range.start + 1)), size: got.total };
      } catch (err) {
        if (isMissing(err)) return null;
        return rethrow(err);
      }
    },

    stat,

    async move(from, to) {
      // Keys are [a-z0-9/.-] only; the copy source is "<bucket>/<key>", URL-encoded per segment.
      const CopySource = [Bucket, ...from.split('/')].map(encodeURIComponent).join('/');
      await client.send(new CopyObjectCommand({ Bucket, Key: to, CopySource, MetadataDirective: 'COPY' })).catch(rethrow);
      await client.send(new DeleteObjectCommand({ Bucket, Key: from })).catch(rethrow);
    },

    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket, Key: key })).catch((err: unknown) => {
        if (!isMissing(err)) rethrow(err);
      });
    },

    ...(opts.redirect
      ? { redirectUrl: (key: StorageKey) => getSignedUrl(presigner, new GetObjectCommand({ Bucket, Key: key }), { expiresIn: opts.signedUrlTtlSeconds }) }
      : {}),

    async removeStaging(olderThan) {
      let removed = 0;
      try {
        for await (const o of listed(STAGING_PREFIX)) {
          if (!(o.updated < olderThan)) continue;
          await client.send(new DeleteObjectCommand({ Bucket, Key: o.key }));
          removed++;
        }
        removed += await abortStaleUploads(olderThan);
      } catch (err) {
        rethrow(err);
      }
      return { removed };
    },

    async *list(prefix) {
      try {
        yield* listed(prefix);
      } catch (err) {
        rethrow(err);
      }
    },

    async ping() {
      await pingClient.send(new ListObjectsV2Command({ Bucket, MaxKeys: 1 })).catch(rethrow);
    },
  });
}
