import type { Readable } from 'node:stream';
import { ByteCounter } from '../core/counters';
import { pipeline } from 'node:stream/promises';
import { Storage, type StorageOptions } from '@google-cloud/storage';
import { checkedDriver } from './checked';
import type { ByteRange, ObjectInfo, ObjectReader, StorageDriver, StorageKey } from './driver';

/** Options of the Google Cloud Storage driver. */
export interface GcsDriverOptions {
  /** Bucket name (GCS_BUCKET). The bucket must exist. */
  bucket: string;
  /**
   * Whether `redirectUrl` hands out V4 signed URLs (GCS_SIGNED_URLS). Signing
   * needs credentials that can sign (a service-account key, or a service
   * account whose token may call IAM signBlob); when none are found the
   * driver falls back to public object URLs, as with `false`.
   */
  signedUrls: boolean;
  /** Lifetime of a signed URL in seconds (GCS_SIGNED_URL_TTL, e.g. 300). */
  signedUrlTtlSeconds: number;
  /** Service-account key file (GOOGLE_APPLICATION_CREDENTIALS); default: application default credentials. */
  keyFilename?: string;
  /** Project id; default: taken from the credentials. */
  projectId?: string;
  /**
   * Base URL of unsigned redirect URLs, instead of the storage endpoint
   * (GCS_PUBLIC_URL), for clients that reach the storage under another name
   * than the gateway does: e.g. an emulator that gateways call `http://gcs:4443`
   * inside docker-compose and clients on the host `http://localhost:4443`.
   * Signed URLs always use the storage endpoint (the host is signed).
   */
  publicUrl?: string;
}

/** Time limit of one `ping` request, in milliseconds. */
const PING_TIMEOUT_MS = 5000;

/** HTTP status of an error thrown by the GCS client, if any. */
function statusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

/**
 * A storage driver over one Google Cloud Storage bucket, for clusters: every
 * gateway and worker sees the same objects.
 *
 * - `write` is a single streamed request (`resumable: false`): the body is
 *   piped through, never held whole in memory, and the object appears only
 *   when the request completes.
 * - `move` is a server-side copy then delete; the target appears whole.
 * - `ping` lists at most one object, without retries, within 5 s.
 * - `list` pages through the bucket listing (`updated` is the object's
 *   `updated` time: a `move` makes a new object, so the time of the move).
 * - `redirectUrl` gives a V4 signed URL (GET, `signedUrlTtlSeconds`) when
 *   `signedUrls` is set and the credentials can sign, else the public URL
 *   `<endpoint>/<bucket>/<key>`. With STORAGE_EMULATOR_HOST set (tests),
 *   `<endpoint>` is the emulator, which serves objects at that path too.
 */
/** Where staged objects live (see keys.ts `stagingKey`). */
const STAGING_PREFIX = 'staging/';

export function createGcsDriver(opts: GcsDriverOptions): StorageDriver {
  const clientOpts: StorageOptions = {};
  if (opts.keyFilename) clientOpts.keyFilename = opts.keyFilename;
  if (opts.projectId) clientOpts.projectId = opts.projectId;
  const storage = new Storage(clientOpts);
  const bucket = storage.bucket(opts.bucket);
  // Readiness checks must answer fast: no retries with backoff, a short timeout.
  const pingBucket = new Storage({ ...clientOpts, retryOptions: { autoRetry: false }, timeout: PING_TIMEOUT_MS }).bucket(
    opts.bucket,
  );
  const file = (key: StorageKey) => bucket.file(key);

  /** Resolves once to whether the credentials can sign URLs (have a client email). */
  let canSign: Promise<boolean> | undefined;
  function signingAvailable(): Promise<boolean> {
    canSign ??= storage.authClient
      .getCredentials()
      .then((c) => Boolean(c.client_email))
      .catch(() => false);
    return canSign;
  }

  function publicUrl(key: StorageKey): string {
    // Keys are [a-z0-9/-] only; keep the slashes so the URL is the plain object path.
    const endpoint = (opts.publicUrl ?? storage.apiEndpoint).replace(/\/+$/, '');
    return `${endpoint}/${encodeURIComponent(opts.bucket)}/${key.split('/').map(encodeURIComponent).join('/')}`;
  }

  async function stat(key: StorageKey): Promise<ObjectInfo | null> {
    try {
      const [md] = await file(key).getMetadata();
      const info: ObjectInfo = { size: Number(md.size ?? 0) };
      if (md.contentType) info.contentType = md.contentType;
      return info;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  return checkedDriver({
    name: 'gcs',

    async write(key, source: Readable, wopts) {
      const counter = new ByteCounter();
      const contentType = wopts?.contentType ?? 'application/octet-stream';
      const sink = file(key).createWriteStream({
        resumable: false,
        contentType,
        metadata: { contentType },
      });
      await pipeline(source, counter, sink);
      return { size: counter.bytes };
    },

    async read(key, range?: ByteRange): Promise<ObjectReader | null> {
      const info = await stat(key);
      if (!info) return null;
      const stream = file(key).createReadStream(range ? { start: range.start, end: range.end } : {});
      return { stream, size: info.size };
    },

    stat,

    async move(from, to) {
      await file(from).move(file(to));
    },

    async delete(key) {
      await file(key).delete({ ignoreNotFound: true });
    },

    async redirectUrl(key) {
      if (opts.signedUrls && (await signingAvailable())) {
        const [url] = await file(key).getSignedUrl({
          version: 'v4',
          action: 'read',
          expires: Date.now() + opts.signedUrlTtlSeconds * 1000,
        });
        return url;
      }
      return publicUrl(key);
    },

    async removeStaging(olderThan) {
      // A failed upload leaves no object in GCS; a staged object whose move never came does.
      const [files] = await bucket.getFiles({ prefix: STAGING_PREFIX });
      let removed = 0;
      for (const f of files) {
        const changed = Date.parse(String(f.metadata.updated ?? f.metadata.timeCreated ?? ''));
        if (!(changed < olderThan.getTime())) continue;
        await f.delete({ ignoreNotFound: true });
        removed++;
      }
      return { removed };
    },

    async *list(prefix) {
      for (let pageToken: string | undefined, first = true; first || pageToken; first = false) {
        const [files, next] = await bucket.getFiles({ prefix, autoPaginate: false, maxResults: 1000, ...(pageToken ? { pageToken } : {}) });
        for (const f of files) {
          yield { key: f.name as StorageKey, size: Number(f.metadata.size ?? 0), updated: new Date(String(f.metadata.updated ?? f.metadata.timeCreated ?? 0)) };
        }
        pageToken = (next as { pageToken?: string } | null)?.pageToken;
      }
    },

    async ping() {
      await pingBucket.getFiles({ maxResults: 1, autoPaginate: false });
    },
  });
}
