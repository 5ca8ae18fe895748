/**
 * The registry protocol as a table of cases against a gateway created in
 * this process: a fake build queue (images made from fixture bytes, failures
 * by package name), a manifest map, filesystem storage, and a Redis client
 * that never connects. No child process; the end-to-end tables with real Nix
 * are test/integration/registry.test.ts and test/e2e/.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { type Gateway, createGateway } from '../../apps/gateway/src/app';
import type { Builds } from '../../apps/gateway/src/build-client';
import { loadConfig } from '../../libs/shared/src/config';
import { type Digest, Failed, MediaTypes, sha256Digest } from '../../libs/shared/src/core';
import { createMetrics } from '../../libs/shared/src/infra';
import type { BuildJobData } from '../../libs/shared/src/jobs';
import { type PublishedImage, buildImageDocuments, publishedImage } from '../../libs/shared/src/protocol';
import type { ManifestLookup } from '../../libs/shared/src/records';
import { blobKey, createFilesystemDriver, manifestKey, putStaged, type StorageDriver } from '../../libs/shared/src/storage';

/** A Redis client that never connects (nothing in the registry routes may need it). */
const offline = () => new Redis({ lazyConnect: true, host: '127.0.0.1', port: 1, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });

const LAYER = Buffer.from('a layer, not really gzipped, but bytes are bytes: 0123456789');

/** The fake build queue: `nosuch` is unknown, `slow` never finishes in time, `broken` finds Nix broken; anything else builds. */
function fakeBuilds(storage: StorageDriver, cache: Map<string, PublishedImage>): Builds & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    warm: async () => undefined,
    close: async () => undefined,
    build: async (data: BuildJobData) => {
      calls.push(data.image.name);
      const names = data.image.packages;
      if (names.includes('nosuch')) throw new Failed({ kind: 'unknown_packages', packages: ['nosuch'] });
      if (names.includes('slow')) throw new Failed({ kind: 'timeout', what: 'the image build', ms: 300_000 });
      if (names.includes('broken')) throw new Failed({ kind: 'nix_unavailable', cause: 'nix-build: build users group missing', hint: 'run as root' });
      const layer = await putStaged(storage, Readable.from([LAYER]), blobKey, MediaTypes.dockerLayer);
      const docs = buildImageDocuments({
        architecture: data.image.architecture,
        layers: [{ digest: layer.digest, size: layer.size, diffId: sha256Digest(`diff ${names.join(' ')}`) }],
        hasBash: false,
        labels: { 'org.opencontainers.image.revision': data.source.revision },
      });
      await putStaged(storage, Readable.from([Buffer.from(docs.config.body)]), blobKey, MediaTypes.dockerConfig);
      for (const m of [docs.manifest, docs.oci]) await putStaged(storage, Readable.from([Buffer.from(m.body)]), manifestKey, m.mediaType);
      const image = publishedImage(docs, data.source.revision);
      cache.set(data.buildKey, image);
      cache.set(image.digest, image);
      return image;
    },
  };
}

/** One protocol case: a request and what its answer must hold. */
interface Case {
  name: string;
  method?: string;
  path: () => string;
  headers?: Record<string, string>;
  status: number;
  /** Registry error code of the body. */
  code?: string;
  /** Headers the answer must have (a RegExp matches the value). */
  expect?: Record<string, string | RegExp | (() => string)>;
  /** Checks of the body. */
  body?: (b: Buffer) => void;
}

describe('registry protocol, in process', () => {
  let dir: string;
  let storage: StorageDriver;
  let gateway: Gateway;
  let server: http.Server;
  let base: string;
  let builds: ReturnType<typeof fakeBuilds>;
  let hello: PublishedImage;
  let layerDigest: Digest;
  /** A manifest only storage has (not the cache), stored as an OCI manifest. */
  let stored: { digest: Digest; body: string };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-gw-'));
    await mkdir(path.join(dir, 'pkgs'));
    await writeFile(path.join(dir, 'pkgs', 'default.nix'), '{ }: { }\n');
    storage = createFilesystemDriver(path.join(dir, 'data'));
    const cache = new Map<string, PublishedImage>();
    const manifests: ManifestLookup = { byBuildKey: async (k) => cache.get(k) ?? null, byDigest: async (d) => cache.get(d) ?? null, learn: () => undefined };
    builds = fakeBuilds(storage, cache);
    const config = loadConfig({ STORAGE_PATH: path.join(dir, 'data'), NIXERY_PKGS_PATH: path.join(dir, 'pkgs'), LOG_LEVEL: 'silent' });
    gateway = createGateway({ config, log: pino({ level: 'silent' }), metrics: createMetrics(), redis: offline(), connect: offline, storage }, { builds, manifests });
    server = http.createServer(gateway.app.callback());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    layerDigest = sha256Digest(LAYER);
    const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: {}, layers: [] });
    stored = { digest: sha256Digest(body), body };
    await putStaged(storage, Readable.from([Buffer.from(body)]), manifestKey, 'application/octet-stream');
  });
  after(async () => {
    await new Promise((r) => server?.close(r));
    await gateway?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const request = async (c: Case) => {
    const res = await fetch(`${base}${c.path()}`, { method: c.method ?? 'GET', headers: c.headers ?? {}, redirect: 'manual' });
    return { res, body: Buffer.from(await res.arrayBuffer()) };
  };

  it('builds an image on the first pull and answers from the build result', async () => {
    const { res, body } = await request({ name: 'first pull', path: () => '/v2/hello/manifests/latest', status: 200 });
    assert.equal(res.status, 200, body.toString());
    hello = JSON.parse(JSON.stringify({ digest: res.headers.get('docker-content-digest'), body: body.toString() }));
    assert.deepEqual(builds.calls, ['hello']);
    assert.equal(res.headers.get('content-type'), MediaTypes.dockerManifest);
    assert.equal(Number(res.headers.get('content-length')), body.length);
    assert.equal(res.headers.get('docker-content-digest'), sha256Digest(body));
  });

  const cases: Case[] = [
    { name: 'GET /v2/', path: () => '/v2/', status: 200, expect: { 'docker-distribution-api-version': 'registry/2.0' } },
    { name: 'HEAD /v2/', method: 'HEAD', path: () => '/v2/', status: 200 },
    {
      name: 'GET manifest by tag (cached now)',
      path: () => '/v2/hello/manifests/latest',
      status: 200,
      // The handler writes this answer itself (issue 15): every header a registry answer carries.
      expect: { 'content-type': MediaTypes.dockerManifest, 'docker-content-digest': () => hello.digest, 'nixery-revision': /^[0-9a-f]{16}$/, 'docker-distribution-api-version': 'registry/2.0', etag: () => `"${hello.digest}"` },
      body: (b) => assert.equal(b.toString(), hello.body),
    },
    {
      name: 'HEAD manifest by tag: the headers of GET, no body',
      method: 'HEAD',
      path: () => '/v2/hello/manifests/latest',
      status: 200,
      expect: { 'content-type': MediaTypes.dockerManifest, 'docker-content-digest': () => hello.digest, 'content-length': () => String(Buffer.byteLength(hello.body)) },
      body: (b) => assert.equal(b.length, 0),
    },
    { name: 'GET manifest by digest', path: () => `/v2/hello/manifests/${hello.digest}`, status: 200, expect: { 'docker-distribution-api-version': 'registry/2.0', 'content-length': () => String(Buffer.byteLength(hello.body)) }, body: (b) => assert.equal(b.toString(), hello.body) },
    {
      name: 'GET manifest by tag with a strict OCI Accept: the OCI manifest of the same layer blobs (issue 13)',
      path: () => '/v2/hello/manifests/latest',
      headers: { Accept: MediaTypes.ociManifest },
      status: 200,
      expect: { 'content-type': MediaTypes.ociManifest },
      body: (b) => {
        const m = JSON.parse(b.toString());
        assert.equal(m.mediaType, MediaTypes.ociManifest);
        assert.equal(m.layers[0].mediaType, MediaTypes.ociLayer);
        assert.equal(m.layers[0].digest, JSON.parse(hello.body).layers[0].digest);
        assert.equal(m.config.digest, JSON.parse(hello.body).config.digest);
      },
    },
    {
      name: 'Docker refused with q=0 beside */*: the OCI manifest; its digest is its own',
      path: () => '/v2/hello/manifests/latest',
      headers: { Accept: `*/*, ${MediaTypes.dockerManifest};q=0` },
      status: 200,
      expect: { 'content-type': MediaTypes.ociManifest, 'docker-content-digest': /^sha256:/ },
      body: (b) => assert.notEqual(sha256Digest(b), hello.digest),
    },
    {
      name: 'no Accept: Docker schema 2 (Nixery-compatible)',
      path: () => '/v2/hello/manifests/latest',
      status: 200,
      expect: { 'content-type': MediaTypes.dockerManifest, 'docker-content-digest': () => hello.digest },
    },
    {
      name: 'GET manifest by digest from storage only: the media type it names itself',
      path: () => `/v2/anything/manifests/${stored.digest}`,
      status: 200,
      expect: { 'content-type': MediaTypes.ociManifest, 'docker-content-digest': () => stored.digest },
    },
    { name: 'unknown manifest digest', path: () => `/v2/hello/manifests/${sha256Digest('nothing')}`, status: 404, code: 'MANIFEST_UNKNOWN' },
    // A reference that is neither a tag nor a digest names no manifest: 404, as the spec and the reference registry answer.
    { name: 'malformed manifest digest: 404', path: () => '/v2/hello/manifests/sha256:abc', status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'manifest digest of another algorithm: 404', path: () => '/v2/hello/manifests/md5:d41d8cd98f00b204e9800998ecf8427e', status: 404, code: 'MANIFEST_UNKNOWN' },
    { name: 'invalid name', path: () => '/v2/Bad..Name/manifests/latest', status: 400, code: 'NAME_INVALID' },
    { name: 'invalid tag: 404', path: () => '/v2/hello/manifests/-tag', status: 404, code: 'MANIFEST_UNKNOWN' },
    {
      name: 'unknown package: 404 naming it',
      path: () => '/v2/nosuch/manifests/latest',
      status: 404,
      code: 'MANIFEST_UNKNOWN',
      body: (b) => assert.deepEqual(JSON.parse(b.toString()).errors[0].detail, { unknownPackages: ['nosuch'] }),
    },
    { name: 'build still running when the wait ends: 503 with Retry-After', path: () => '/v2/slow/manifests/latest', status: 503, code: 'UNAVAILABLE', expect: { 'retry-after': '10' } },
    {
      name: 'Nix broken on the worker: 503 naming the cause',
      path: () => '/v2/broken/manifests/latest',
      status: 503,
      code: 'UNAVAILABLE',
      body: (b) => assert.deepEqual(JSON.parse(b.toString()).errors[0].detail, { cause: 'nix-build: build users group missing', hint: 'run as root' }),
    },
    {
      name: 'GET blob',
      path: () => `/v2/hello/blobs/${layerDigest}`,
      status: 200,
      expect: { 'docker-content-digest': () => layerDigest, 'content-length': String(LAYER.length), 'content-type': MediaTypes.octetStream },
      body: (b) => assert.deepEqual(b, LAYER),
    },
    { name: 'HEAD blob', method: 'HEAD', path: () => `/v2/hello/blobs/${layerDigest}`, status: 200, expect: { 'content-length': String(LAYER.length) } },
    {
      name: 'GET blob with Range',
      path: () => `/v2/hello/blobs/${layerDigest}`,
      headers: { Range: 'bytes=2-5' },
      status: 206,
      expect: { 'content-range': `bytes 2-5/${LAYER.length}`, 'content-length': '4' },
      body: (b) => assert.deepEqual(b, LAYER.subarray(2, 6)),
    },
    { name: 'unsatisfiable Range', path: () => `/v2/hello/blobs/${layerDigest}`, headers: { Range: 'bytes=999-' }, status: 416, code: 'RANGE_INVALID' },
    { name: 'unknown blob', path: () => `/v2/hello/blobs/${sha256Digest('none')}`, status: 404, code: 'BLOB_UNKNOWN' },
    { name: 'malformed blob digest', path: () => '/v2/hello/blobs/sha256:abc', status: 400, code: 'DIGEST_INVALID' },
    { name: 'PUT manifest: pull-only', method: 'PUT', path: () => '/v2/hello/manifests/latest', status: 405, code: 'UNSUPPORTED' },
    { name: 'blob upload: pull-only', method: 'POST', path: () => '/v2/hello/blobs/uploads/', status: 405, code: 'UNSUPPORTED' },
    {
      name: 'tags list',
      path: () => '/v2/hello/tags/list',
      status: 200,
      body: (b) => assert.deepEqual(JSON.parse(b.toString()), { name: 'hello', tags: ['latest'] }),
    },
    // No endpoint: 404 with a registry error body (the reference registry answers 404 too), whatever the method.
    { name: 'unknown registry endpoint', path: () => '/v2/hello/nothing/here', status: 404, code: 'NOT_FOUND' },
    { name: 'unknown registry endpoint, PUT', method: 'PUT', path: () => '/v2/hello/nothing/here', status: 404, code: 'NOT_FOUND' },
    { name: 'tags: no endpoint but list', path: () => '/v2/hello/tags/other', status: 404, code: 'NOT_FOUND' },
    { name: '/healthz', path: () => '/healthz', status: 200, body: (b) => assert.deepEqual(JSON.parse(b.toString()), { ok: true }) },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const { res, body } = await request(c);
      assert.equal(res.status, c.status, body.toString().slice(0, 300));
      if (c.code) {
        assert.equal(res.headers.get('content-type'), 'application/json');
        assert.equal(JSON.parse(body.toString()).errors[0].code, c.code);
      }
      for (const [h, want] of Object.entries(c.expect ?? {})) {
        const got = res.headers.get(h) ?? '';
        if (want instanceof RegExp) assert.match(got, want, h);
        else assert.equal(got, typeof want === 'function' ? want() : want, h);
      }
      c.body?.(body);
    });
  }

  it('built each image once: later pulls came from the manifest map', () => {
    assert.deepEqual(builds.calls, ['hello', 'nosuch', 'slow', 'broken']);
  });
});
