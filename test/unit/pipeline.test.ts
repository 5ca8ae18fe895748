/**
 * The build pipeline without Nix: a fixture closure (directories standing in
 * for store paths) is handed in as the pipeline's Nix preparation, the layer
 * cache is a map, storage is the filesystem driver. The image is built,
 * published (storage, then status, then cache) and checked blob by blob.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { parseDigest } from '../../libs/shared/src/core/digest';
import type { BuildJobData } from '../../libs/shared/src/jobs';
import type { PrepareRequest, PrepareResult } from '../../libs/shared/src/nix';
import { type CachedLayer, type LayerStore, buildImage, publishImage } from '../../libs/shared/src/pipeline';
import { type PublishedImage, parseImage } from '../../libs/shared/src/protocol';
import { blobKey, createFilesystemDriver, manifestKey, type StorageDriver } from '../../libs/shared/src/storage';

const log = pino({ level: 'silent' });

/** A layer cache in memory: get/put a map, locks always free. */
function memoryLayers(): LayerStore & { map: Map<string, CachedLayer> } {
  const map = new Map<string, CachedLayer>();
  return {
    map,
    get: async (k) => map.get(k) ?? null,
    put: async (k, l) => void map.set(k, l),
    tryLock: async () => ({ release: async () => undefined }),
  };
}

async function readAll(storage: StorageDriver, key: ReturnType<typeof blobKey>): Promise<Buffer> {
  const obj = await storage.read(key);
  assert.ok(obj, `${key} is in storage`);
  const chunks: Buffer[] = [];
  for await (const c of obj.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('pipeline without Nix', () => {
  let dir: string;
  let store: string;
  let storage: StorageDriver;
  let hello: string;
  let libc: string;
  let bash: string;
  const asked: PrepareRequest[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-pipeline-'));
    store = path.join(dir, 'store');
    storage = createFilesystemDriver(path.join(dir, 'blobs'));
    libc = path.join(store, 'cccccccccccccccccccccccccccccccc-libc-2.40');
    hello = path.join(store, 'hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh-hello-2.12');
    bash = path.join(store, 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bash-5.2');
    await mkdir(path.join(libc, 'lib'), { recursive: true });
    await writeFile(path.join(libc, 'lib', 'libc.so'), 'not really a libc\n');
    await mkdir(path.join(hello, 'bin'), { recursive: true });
    await writeFile(path.join(hello, 'bin', 'hello'), '#!/bin/sh\necho hello\n');
    await chmod(path.join(hello, 'bin', 'hello'), 0o755);
    await mkdir(path.join(bash, 'bin'), { recursive: true });
    await writeFile(path.join(bash, 'bin', 'bash'), 'not really bash\n');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The fixture closure as the pipeline's Nix preparation. */
  const prepare = async (req: PrepareRequest): Promise<PrepareResult> => {
    asked.push(req);
    if (req.packages.includes('nosuch')) return { kind: 'missing', packages: ['nosuch'] };
    return {
      kind: 'ok',
      graph: {
        roots: [hello, bash],
        paths: {
          [hello]: { path: hello, narSize: 1000, references: [hello, libc] },
          [bash]: { path: bash, narSize: 2000, references: [libc] },
          [libc]: { path: libc, narSize: 50_000_000, references: [] },
        },
      },
      packages: { hello: { attr: 'hello', out: hello }, bash: { attr: 'bash', out: bash } },
    };
  };

  const job = (packages: string): BuildJobData => {
    const parsed = parseImage(packages, 'latest');
    assert.ok(parsed.ok);
    return { buildKey: `key-${packages}`, image: parsed.spec, source: { identity: 'fixture', revision: 'rev-1', nix: { type: 'path', path: store } } };
  };

  it('builds and publishes an image from a fixture closure: storage, then status, then cache', async () => {
    const layerCache = memoryLayers();
    const stages: string[] = [];
    const outcome = await buildImage(
      { storage, layerCache, prepare, popularity: async () => ({}), layerBudget: 95, packConcurrency: 2, log },
      job('hello/bash'),
      (p) => stages.push(p.stage),
      new AbortController().signal,
    );
    assert.ok(outcome.ok && 'image' in outcome, JSON.stringify(!outcome.ok && outcome.failure));
    assert.deepEqual(asked.at(-1)?.packages, ['bash', 'cacert', 'hello', 'iana-etc']);
    assert.deepEqual([...new Set(stages)], ['evaluating', 'layering', 'packing', 'uploading']);
    const built = outcome.image;
    // Three store paths, three closure layers, and the symlink layer last.
    assert.equal(built.layers.length, 4);
    assert.deepEqual(built.layers.at(-1)?.paths, []);
    assert.deepEqual(built.layers.slice(0, -1).flatMap((l) => l.paths).sort(), [bash, hello, libc].sort());
    assert.equal(built.packedLayers, 4);
    assert.equal(layerCache.map.size, 4);

    const order: string[] = [];
    const cached = new Map<string, PublishedImage>();
    const published = await publishImage(
      {
        storage: {
          ...storage,
          write: (key, src, o) => {
            order.push(`storage:${key.split('/')[0]}`);
            return storage.write(key, src, o);
          },
        },
        status: { recordSuccess: async (rec, layers) => void order.push(`status:${rec.manifestDigest === built.documents.manifest.digest}:${layers.length}`) },
        manifests: { put: async (key, m) => void (order.push('cache'), cached.set(key, m)) },
        log,
      },
      job('hello/bash'),
      built,
      5,
    );
    // The config, both manifests (Docker schema 2 and OCI, issue 13), then the SBOM: its blob, the empty
    // config, and for each manifest an artifact manifest and its referrers index.
    assert.deepEqual(order, [...Array(3 + 2 + 2 * 2).fill('storage:staging'), 'status:true:4', 'cache']);
    assert.deepEqual(cached.get('key-hello/bash'), published);
    assert.equal(published.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(published.revision, 'rev-1');
    assert.equal(published.size, Buffer.byteLength(published.body));

    // Every blob the manifest names is in storage under its digest; the manifest is there by digest too.
    const stored = await readAll(storage, manifestKey(published.digest));
    assert.equal(stored.toString('utf8'), published.body);
    assert.equal((await readAll(storage, manifestKey(published.oci.digest))).toString('utf8'), published.oci.body);
    const m = JSON.parse(published.body) as { config: { digest: string }; layers: { digest: string; size: number }[] };
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
      const bytes = await readAll(storage, blobKey(parseDigest(d)!));
      assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, d);
    }
    const config = JSON.parse((await readAll(storage, blobKey(parseDigest(m.config.digest)!))).toString('utf8'));
    assert.deepEqual(config.config.Cmd, ['bash'], 'bash in the closure gives Cmd ["bash"]');
    assert.equal(config.config.Labels['org.opencontainers.image.revision'], 'rev-1');
    // The symlink layer links the top-level packages' files into /.
    const symlinkTar = gunzipSync(await readAll(storage, blobKey(parseDigest(m.layers.at(-1)!.digest)!))).toString('latin1');
    assert.ok(symlinkTar.includes('bin/hello'), 'the symlink layer has bin/hello');

    // A second build of the same closure packs nothing: every layer comes from the cache.
    const again = await buildImage(
      { storage, layerCache, prepare, popularity: async () => ({}), layerBudget: 95, packConcurrency: 2, log },
      job('hello/bash'),
      () => undefined,
      new AbortController().signal,
    );
    assert.ok(again.ok && 'image' in again);
    assert.equal(again.image.packedLayers, 0);
    assert.equal(again.image.documents.manifest.digest, built.documents.manifest.digest);
  });

  it('keeps within the layer budget, the symlink layer included', async () => {
    const outcome = await buildImage(
      { storage, layerCache: memoryLayers(), prepare, popularity: async () => ({}), layerBudget: 2, packConcurrency: 1, log },
      job('hello/bash'),
      () => undefined,
      new AbortController().signal,
    );
    assert.ok(outcome.ok && 'image' in outcome);
    assert.equal(outcome.image.layers.length, 2);
  });

  it('two spellings of one package set are one image: published under the resolved key, found there by the other spelling', async () => {
    // The fixture resolves every request to the attributes hello and bash, as prepare-image.nix's fallbacks would.
    const byKey = new Map<string, PublishedImage>();
    const manifests = { put: async (key: string, m: PublishedImage, also: readonly string[] = []) => void [key, ...also].forEach((k) => byKey.set(k, m)) };
    const deps = { storage, layerCache: memoryLayers(), prepare, popularity: async () => ({}), layerBudget: 95, packConcurrency: 1, log, sameImage: async (k: string) => byKey.get(k) ?? null };
    const first = await buildImage(deps, job('hello/bash'), () => undefined, new AbortController().signal);
    assert.ok(first.ok && 'image' in first);
    const config = JSON.parse(first.image.documents.config.body) as { config: { Labels: Record<string, string> } };
    assert.equal(config.config.Labels['org.nixery.packages'], 'bash hello', 'the label lists the resolved attributes, not the spelling');
    const published = await publishImage({ storage, status: { recordSuccess: async () => undefined }, manifests, log }, job('hello/bash'), first.image, 1);
    assert.ok(byKey.has(first.image.resolvedKey) && byKey.has('key-hello/bash'));

    const other = await buildImage(deps, job('bash/hello/bashinteractive'), () => undefined, new AbortController().signal);
    assert.ok(other.ok && 'shared' in other, 'the other spelling is answered with the published image');
    assert.equal(other.resolvedKey, first.image.resolvedKey);
    assert.equal(other.shared.digest, published.digest);
  });

  it('returns unknown packages as a failure, without packing anything', async () => {
    const layerCache = memoryLayers();
    const outcome = await buildImage(
      { storage, layerCache, prepare, popularity: async () => ({}), layerBudget: 95, packConcurrency: 1, log },
      job('nosuch'),
      () => undefined,
      new AbortController().signal,
    );
    assert.deepEqual(outcome, { ok: false, failure: { kind: 'unknown_packages', packages: ['nosuch'] }, transient: false });
    assert.equal(layerCache.map.size, 0);
  });
});
