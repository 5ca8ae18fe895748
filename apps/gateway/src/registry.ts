import {
  type Digest,
  Failed,
  type ImageSpec,
  type ManifestDocument,
  type NixSystem,
  type PlatformOutcome,
  type ResolvedSource,
  composeIndex,
  indexKey,
  negotiateManifest,
  platformName,
  withSystem,
  type ManifestLookup,
  MediaTypes,
  type Metrics,
  type NegativeCache,
  type PublishedImage,
  RegistryError,
  type SourceResolver,
  type StorageDriver,
  blobKey,
  buildKey,
  failureOf,
  manifestKey,
  parseImage,
  untilAborted,
} from '@nixery/shared';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Context } from 'koa';
import type { Builds } from './build-client';
import { clientKey } from './client-address';
import { parseRange } from './range';
import { serveReferrers } from './referrers';
import { type PullRecord, addLogFields, requestLogger, warmPull } from './request-log';
import { type RegistryRoute, parseRegistryPath } from './registry-path';
import { nextPageLink, paginateTags, parseTagsQuery } from './tags-list';

/** What the registry handlers need. */
export interface RegistryDeps {
  storage: StorageDriver;
  manifests: ManifestLookup;
  resolver: Pick<SourceResolver, 'resolve' | 'tags'>;
  builds: Builds;
  metrics: Metrics;
  /** Records pulls for storage collection, in the background (issue 11); none in in-process tests. */
  pulls?: { recordPull(digest: string): void };
  /** Images known to have unknown packages (issue 12): answered 404 without a build; none in in-process tests. */
  negative?: Pick<NegativeCache, 'unknownPackages'>;
  /** Aborts when a stopping gateway's grace is over: a build still awaited answers `shutting_down` (503). */
  stopping?: AbortSignal;
  /** Packages one image may hold (NIXERY_MAX_PACKAGES; issue 12); unset = no cap. */
  maxPackages?: number;
  /** Throws when this request may not start a build (pull authentication, issue 12: an anonymous client under NIXERY_ANONYMOUS=pull). */
  authorizeBuild?: (ctx: Context, name: string) => void;
  /** The configured platforms (NIXERY_PLATFORMS, issue 13); none = one image per name, its own system (in-process tests). */
  platforms?: PlatformDeps;
}

/** Multi-platform images (issue 13): the platforms, the one for clients without index support, and where an index is published. */
export interface PlatformDeps {
  systems: readonly NixSystem[];
  defaultSystem: NixSystem;
  publish(indexKey: string, index: PublishedImage): Promise<void>;
}

const READ_METHODS = new Set(['GET', 'HEAD']);

/** Handles every `/v2/` request; returns false when the path is not a registry route. */
export async function handleRegistry(ctx: Context, deps: RegistryDeps): Promise<boolean> {
  if (!ctx.path.startsWith('/v2')) return false;
  const route = parseRegistryPath(ctx.path);
  if (!route) throw new RegistryError('NOT_FOUND');
  // A manifest's answer carries it among its own headers (answerOf); every error gets it from the error middleware.
  if (route.kind !== 'manifest') ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
  ctx.state.route = route.kind;
  if (route.kind === 'upload' || !READ_METHODS.has(ctx.method)) throw new RegistryError('UNSUPPORTED');
  switch (route.kind) {
    case 'base':
      ctx.status = 200;
      ctx.set('Content-Type', 'application/json');
      ctx.body = Buffer.from('{}');
      return true;
    case 'manifest':
      await serveManifest(ctx, deps, route);
      return true;
    case 'blob':
      await serveBlob(ctx, deps, route.digest);
      return true;
    case 'referrers':
      await serveReferrers(ctx, deps.storage, route.digest);
      return true;
    case 'tags': {
      // Per the spec: lexical order, `n` and `last` pagination, a Link header to the next page.
      const q = parseTagsQuery(ctx.query);
      const page = paginateTags(await deps.resolver.tags(), q);
      if (page.nextLast !== undefined && q.n !== undefined) ctx.set('Link', nextPageLink(route.name, q.n, page.nextLast));
      ctx.set('Content-Type', 'application/json');
      ctx.body = Buffer.from(JSON.stringify({ name: route.name, tags: page.tags }));
      return true;
    }
  }
}

async function serveManifest(ctx: Context, deps: RegistryDeps, route: Extract<RegistryRoute, { kind: 'manifest' }>): Promise<void> {
  let doc: ManifestDocument;
  let m: PublishedImage;
  if ('digest' in route.reference) {
    // By digest: whichever stored document has it, with its own media type, whatever the client accepts.
    const found = await manifestByDigest(deps, route.reference.digest);
    if (!found) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { digest: route.reference.digest });
    m = found;
    doc = found;
    deps.pulls?.recordPull(found.digest);
  } else {
    const parsed = parseImage(route.name, route.reference.tag);
    if (!parsed.ok) {
      // A reference that is neither a tag nor a digest names no manifest (the spec and the reference registry: 404).
      if (parsed.error.kind === 'tag_invalid') throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { tag: route.reference.tag, reason: parsed.error.reason });
      throw new RegistryError('NAME_INVALID', parsed.error.reason);
    }
    const image = parsed.spec;
    if (deps.maxPackages !== undefined && image.packages.length > deps.maxPackages) {
      deps.metrics.admissionRefused.inc({ reason: 'too_many_packages' });
      throw new RegistryError('NAME_INVALID', `the image name asks for ${image.packages.length} packages (with meta-packages expanded and cacert and iana-etc added); at most ${deps.maxPackages} per image`, {
        packages: image.packages.length,
        maxPackages: deps.maxPackages,
      });
    }
    const source = await deps.resolver.resolve(image.tag);
    const platforms = deps.platforms;
    // Content negotiation (issue 13): an index only for names that do not choose a system, with several platforms configured.
    const choice = negotiateManifest(ctx.req.headers.accept, { index: !image.explicitSystem && platforms !== undefined && platforms.systems.length > 1 });
    if (choice.index && platforms) {
      m = await indexFor(ctx, deps, platforms, image, source);
    } else {
      m = await imageFor(ctx, deps, image.explicitSystem || !platforms ? image : withSystem(image, platforms.defaultSystem), source);
    }
    doc = choice.family === 'oci' ? m.oci : m;
    // Both variants count as pulled (the collector keeps an image by either digest); no copy of the document.
    deps.pulls?.recordPull(m.digest);
    deps.pulls?.recordPull(m.oci.digest);
  }
  // The cold pull's line (request-log.ts) names the digest served and the package-source revision it was built from.
  const pull = ctx.state.pull as PullRecord | undefined;
  if (pull?.cold) {
    pull.digest = doc.digest;
    pull.revision = m.revision;
  }
  const answer = answerOf(doc, m.revision);
  // Written here, not through Koa's response setters, which measured as a tenth of a warm pull (issue 15).
  // A header already on the response (a draining gateway's Connection: close) goes out with these.
  ctx.respond = false;
  ctx.res.writeHead(200, answer.headers);
  if (ctx.method === 'HEAD') ctx.res.end();
  else ctx.res.end(answer.body);
}

/** A manifest answer's body and headers, made once per cached document. */
interface ManifestAnswer {
  body: Buffer;
  headers: string[];
}

const answers = new WeakMap<ManifestDocument, ManifestAnswer>();

/** Every manifest answer names the package-source revision it was built from (also the image config's org.opencontainers.image.revision label). */
function answerOf(doc: ManifestDocument, revision: string | undefined): ManifestAnswer {
  let answer = answers.get(doc);
  if (!answer) {
    const body = Buffer.from(doc.body);
    const headers = ['Docker-Distribution-API-Version', 'registry/2.0', 'Content-Type', doc.mediaType, 'Content-Length', String(body.length), 'Docker-Content-Digest', doc.digest, 'Etag', `"${doc.digest}"`];
    if (revision) headers.push('Nixery-Revision', revision);
    answers.set(doc, (answer = { body, headers }));
  }
  return answer;
}

/**
 * One platform's image: from the manifest cache, else the negative cache's
 * 404, else a build job (admitted, bounded by the build wait).
 */
async function imageFor(ctx: Context, deps: RegistryDeps, image: ImageSpec, source: ResolvedSource, log = true): Promise<PublishedImage> {
  const key = buildKey(image, source);
  const cached = await deps.manifests.byBuildKey(key);
  if (cached) {
    deps.metrics.manifestCacheHits.inc();
    if (log) ctx.state.pull = warmPull(image, key);
    return cached;
  }
  if (log) {
    // The request's logger names the image, tag, build key and job id (= build key) from here on (issue 6).
    addLogFields(ctx, { image: image.name, tag: image.tag, buildKey: key, jobId: key });
    ctx.state.pull = { image: image.name, tag: image.tag, buildKey: key, cold: true } satisfies PullRecord;
  }
  deps.metrics.manifestCacheMisses.inc();
  // Known not to exist for this source revision: the same 404 as its build gave, without Nix or a job.
  const unknown = await deps.negative?.unknownPackages(key);
  if (unknown) {
    deps.metrics.negativeCacheHits.inc();
    throw new Failed({ kind: 'unknown_packages', packages: unknown });
  }
  deps.authorizeBuild?.(ctx, image.name);
  const built = deps.builds.build({ buildKey: key, image, source }, { client: clientKey(ctx), gone: hangUp(ctx) }).catch((err: unknown) => {
    const kind = failureOf(err)?.kind;
    if (kind === 'rate_limited' || kind === 'queue_full') deps.metrics.admissionRefused.inc({ reason: kind });
    throw err;
  });
  const m = await (deps.stopping ? untilAborted(built, deps.stopping, { kind: 'shutting_down' }) : built);
  deps.manifests.learn(key, m);
  return m;
}

/**
 * A multi-platform image's index (issue 13): from the manifest cache under
 * its index key, else every platform's image at once (one build job per
 * platform, in parallel, each in its system's queue), composed by the
 * pipeline's policy (`composeIndex`) and published before it is served.
 */
async function indexFor(ctx: Context, deps: RegistryDeps, platforms: PlatformDeps, image: ImageSpec, source: ResolvedSource): Promise<PublishedImage> {
  const specs = platforms.systems.map((s) => withSystem(image, s));
  const key = indexKey(specs.map((s) => buildKey(s, source)));
  const cached = await deps.manifests.byBuildKey(key);
  if (cached) {
    deps.metrics.manifestCacheHits.inc();
    ctx.state.pull = warmPull(image, key);
    return cached;
  }
  addLogFields(ctx, { image: image.name, tag: image.tag, indexKey: key });
  ctx.state.pull = { image: image.name, tag: image.tag, buildKey: key, cold: true } satisfies PullRecord;
  const outcomes = await Promise.all(
    specs.map((spec) =>
      imageFor(ctx, deps, spec, source, false).then(
        (img): PlatformOutcome => ({ system: spec.system, ok: true, image: img }),
        (err: unknown): PlatformOutcome => {
          const failure = failureOf(err);
          if (!failure) throw err;
          return { system: spec.system, ok: false, failure };
        },
      ),
    ),
  );
  const composed = composeIndex(outcomes, platforms.defaultSystem, source.revision);
  if (!composed.ok) {
    requestLogger(ctx)?.info({ platform: platformName(composed.system), failure: composed.failure.kind }, 'a platform of the image index failed: no index');
    throw new Failed(composed.failure);
  }
  for (const o of composed.omitted) {
    const platform = platformName(o.system);
    deps.metrics.platformsOmitted.inc({ platform });
    requestLogger(ctx)?.info({ platform, unknownPackages: o.packages }, 'platform left out of the image index: its packages do not exist there');
  }
  await platforms.publish(key, composed.index);
  deps.manifests.learn(key, composed.index);
  return composed.index;
}

/** A signal that aborts when the client closes its connection before its response is written. */
function hangUp(ctx: Context): AbortSignal {
  const ac = new AbortController();
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) ac.abort();
  });
  return ac.signal;
}

/**
 * A manifest by digest: from the cache, else from storage, whose media type
 * is the one the manifest names itself (its `mediaType` field) or the one it
 * was stored with. The revision is unknown then ('').
 */
async function manifestByDigest(deps: RegistryDeps, digest: Digest): Promise<PublishedImage | null> {
  const cached = await deps.manifests.byDigest(digest);
  if (cached) return cached;
  const obj = await deps.storage.read(manifestKey(digest));
  if (!obj) return null;
  const chunks: Buffer[] = [];
  for await (const c of obj.stream) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  const named = (() => {
    try {
      return (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType;
    } catch {
      return undefined;
    }
  })();
  const info = typeof named === 'string' ? null : await deps.storage.stat(manifestKey(digest));
  const mediaType = typeof named === 'string' ? named : info?.contentType;
  if (!mediaType) throw new RegistryError('MANIFEST_INVALID', 'stored manifest names no media type', { digest });
  const doc = { digest, mediaType, size: body.length, body: body.toString('utf8') };
  return { ...doc, oci: doc, revision: '' };
}

async function serveBlob(ctx: Context, deps: RegistryDeps, digest: Digest): Promise<void> {
  const key = blobKey(digest);
  const info = await deps.storage.stat(key);
  if (!info) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
  ctx.set('Docker-Content-Digest', digest);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Cache-Control', 'max-age=31536000');
  if (ctx.method === 'GET' && deps.storage.redirectUrl) {
    const url = await deps.storage.redirectUrl(key);
    if (url) {
      ctx.status = 307;
      ctx.set('Location', url);
      // Not `null`: Koa turns a null body into 204 No Content, which loses the redirect.
      ctx.type = 'text/plain';
      ctx.body = 'Temporary Redirect';
      return;
    }
  }
  const range = parseRange(ctx.get('Range') || undefined, info.size);
  const contentType = info.contentType ?? MediaTypes.octetStream;
  if (ctx.method === 'HEAD') {
    ctx.status = range ? 206 : 200;
    ctx.set('Content-Type', contentType);
    ctx.set('Content-Length', String(range ? range.end - range.start + 1 : info.size));
    if (range) ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${info.size}`);
    return;
  }
  const obj = await deps.storage.read(key, range);
  if (!obj) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
  const length = range ? range.end - range.start + 1 : obj.size;
  ctx.status = range ? 206 : 200;
  if (range) ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${obj.size}`);
  ctx.set('Content-Type', contentType);
  ctx.length = length;
  if (obj.sendTo) {
    // Filesystem blobs go out without a stream, from reused buffers (issue 15): the headers are written
    // here and Koa leaves the response alone. The request counts as in flight until its last byte.
    ctx.respond = false;
    ctx.res.writeHead(ctx.status, ctx.response.headers as OutgoingHttpHeaders);
    try {
      await obj.sendTo(ctx.res);
      ctx.res.end();
      deps.metrics.bytesServed.inc(length);
    } catch (err) {
      // The status line went out: a read that fails or a client that goes away can only cut the connection.
      ctx.res.destroy();
      requestLogger(ctx)?.debug({ err: err instanceof Error ? err.message : String(err) }, 'blob not sent to the end');
    }
    return;
  }
  obj.stream.on('end', () => deps.metrics.bytesServed.inc(length));
  ctx.body = obj.stream;
}
