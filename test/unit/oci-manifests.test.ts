/**
 * Issue 13, the pure parts: both manifest variants of one image, the image
 * index, Accept negotiation, NIXERY_PLATFORMS, and the index's failure policy.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../libs/shared/src/config';
import { MediaTypes, sha256Digest } from '../../libs/shared/src/core';
import { composeIndex, type PlatformOutcome } from '../../libs/shared/src/pipeline/compose-index';
import {
  buildImageDocuments,
  negotiateManifest,
  parseAccept,
  parseImage,
  parsePlatforms,
  publishedImage,
} from '../../libs/shared/src/protocol';

const layers = [
  { digest: sha256Digest('a'), size: 10, diffId: sha256Digest('A') },
  { digest: sha256Digest('b'), size: 20, diffId: sha256Digest('B') },
];
const image = (architecture: 'amd64' | 'arm64') => publishedImage(buildImageDocuments({ architecture, layers, hasBash: false, labels: {} }), 'rev');

describe('manifest variants', () => {
  it('the OCI manifest names the same config and layer blobs with OCI media types, under its own digest', () => {
    const d = buildImageDocuments({ architecture: 'amd64', layers, hasBash: true, labels: { x: '1' } });
    const docker = JSON.parse(d.manifest.body);
    const oci = JSON.parse(d.oci.body);
    assert.equal(oci.mediaType, MediaTypes.ociManifest);
    assert.equal(d.oci.mediaType, MediaTypes.ociManifest);
    assert.equal(oci.schemaVersion, 2);
    assert.equal(oci.config.mediaType, MediaTypes.ociConfig);
    assert.deepEqual(oci.layers.map((l: { mediaType: string }) => l.mediaType), [MediaTypes.ociLayer, MediaTypes.ociLayer]);
    assert.equal(oci.config.digest, docker.config.digest);
    assert.equal(oci.config.digest, d.config.digest);
    assert.deepEqual(oci.layers.map((l: { digest: string; size: number }) => [l.digest, l.size]), docker.layers.map((l: { digest: string; size: number }) => [l.digest, l.size]));
    assert.notEqual(d.oci.digest, d.manifest.digest);
    assert.equal(d.oci.digest, sha256Digest(d.oci.body));
    assert.equal(d.oci.size, Buffer.byteLength(d.oci.body));
    // Deterministic: the same inputs give the same bytes.
    assert.equal(buildImageDocuments({ architecture: 'amd64', layers, hasBash: true, labels: { x: '1' } }).oci.body, d.oci.body);
  });
});

describe('Accept negotiation', () => {
  const D = MediaTypes.dockerManifest;
  const O = MediaTypes.ociManifest;
  const DL = MediaTypes.dockerManifestList;
  const OI = MediaTypes.ociIndex;
  const table: Array<[string, string | string[] | undefined, boolean, { index: boolean; family: 'docker' | 'oci' }]> = [
    ['no Accept: Docker schema 2', undefined, true, { index: false, family: 'docker' }],
    ['*/*: Docker schema 2', '*/*', true, { index: false, family: 'docker' }],
    ['application/*: Docker schema 2', 'application/*', true, { index: false, family: 'docker' }],
    ['only other types: Docker schema 2', 'application/vnd.docker.distribution.manifest.v1+prettyjws', true, { index: false, family: 'docker' }],
    ['strict OCI manifest', O, true, { index: false, family: 'oci' }],
    ['strict OCI with parameters and case', `${O.toUpperCase()} ; charset=utf-8`, false, { index: false, family: 'oci' }],
    ['OCI manifest and index', `${O}, ${OI}`, true, { index: true, family: 'oci' }],
    ['OCI index without an index to offer: the manifest', `${O}, ${OI}`, false, { index: false, family: 'oci' }],
    ['Docker only', D, true, { index: false, family: 'docker' }],
    ['Docker engine (both families, both lists)', [`${D}, ${DL}`, `${O}, ${OI}`], true, { index: true, family: 'docker' }],
    ['both manifests, no index: Docker first', `${O}, ${D}`, true, { index: false, family: 'docker' }],
    ['q decides: OCI preferred', `${D};q=0.5, ${O}`, false, { index: false, family: 'oci' }],
    ['q=0 refuses a type', `${D};q=0, ${O};q=0.1`, false, { index: false, family: 'oci' }],
    ['q=0 on the index', `${OI};q=0, ${O}`, true, { index: false, family: 'oci' }],
    ['*/* with Docker refused: OCI', `*/*, ${D};q=0`, false, { index: false, family: 'oci' }],
    ['a manifest preferred over the index by q', `${DL};q=0.2, ${D}`, true, { index: false, family: 'docker' }],
    ['containerd (both lists and */*)', `${D}, ${DL}, ${O}, ${OI}, */*`, true, { index: true, family: 'docker' }],
  ];
  for (const [name, accept, index, want] of table) {
    it(name, () => assert.deepEqual(negotiateManifest(accept, { index }), want));
  }
  it('parses several headers, comma lists and q-values', () => {
    const a = parseAccept([`${D};q=0.3, ${O}`, `${OI} ; q=0`]);
    assert.equal(a.get(D), 0.3);
    assert.equal(a.get(O), 1);
    assert.equal(a.get(OI), 0);
  });
});

describe('platforms', () => {
  it('NIXERY_PLATFORMS parses in order, without repeats; bad values are config errors', () => {
    assert.deepEqual(parsePlatforms('linux/amd64, linux/arm64,linux/arm64/v8'), { ok: true, systems: ['x86_64-linux', 'aarch64-linux'] });
    assert.equal(parsePlatforms('linux/s390x').ok, false);
    assert.equal(parsePlatforms(' , ').ok, false);
    const base = { STORAGE_PATH: '/tmp/x', LOG_LEVEL: 'silent' };
    assert.deepEqual(loadConfig(base).platforms.length, 1);
    const c = loadConfig({ ...base, NIXERY_PLATFORMS: 'linux/arm64,linux/amd64' });
    assert.deepEqual(c.platforms, ['aarch64-linux', 'x86_64-linux']);
    assert.equal(c.defaultPlatform, process.arch === 'arm64' ? 'aarch64-linux' : 'x86_64-linux');
    assert.throws(() => loadConfig({ ...base, NIXERY_PLATFORMS: 'windows/amd64' }), /NIXERY_PLATFORMS/);
  });
  it('a name prefix chooses one system (never an index)', () => {
    const p = parseImage('arm64/hello', 'latest');
    assert.ok(p.ok && p.spec.explicitSystem && p.spec.system === 'aarch64-linux');
    const q = parseImage('hello', 'latest');
    assert.ok(q.ok && !q.spec.explicitSystem);
  });
});

describe('image index', () => {
  const amd = image('amd64');
  const arm = image('arm64');
  it('names each platform with its manifest: the Docker list the Docker manifests, the OCI index the OCI ones', () => {
    const r = composeIndex(
      [
        { system: 'x86_64-linux', ok: true, image: amd },
        { system: 'aarch64-linux', ok: true, image: arm },
      ],
      'x86_64-linux',
      'rev',
    );
    assert.ok(r.ok);
    const list = JSON.parse(r.index.body);
    const oci = JSON.parse(r.index.oci.body);
    assert.equal(r.index.mediaType, MediaTypes.dockerManifestList);
    assert.equal(list.mediaType, MediaTypes.dockerManifestList);
    assert.equal(r.index.oci.mediaType, MediaTypes.ociIndex);
    assert.equal(oci.mediaType, MediaTypes.ociIndex);
    assert.deepEqual(list.manifests.map((m: { digest: string }) => m.digest), [amd.digest, arm.digest]);
    assert.deepEqual(oci.manifests.map((m: { digest: string }) => m.digest), [amd.oci.digest, arm.oci.digest]);
    assert.deepEqual(oci.manifests.map((m: { mediaType: string }) => m.mediaType), [MediaTypes.ociManifest, MediaTypes.ociManifest]);
    assert.deepEqual(list.manifests[1].platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(oci.manifests[0].platform, { os: 'linux', architecture: 'amd64' });
    assert.equal(list.manifests[0].size, amd.size);
    assert.equal(r.index.digest, sha256Digest(r.index.body));
    assert.equal(r.index.oci.digest, sha256Digest(r.index.oci.body));
    assert.deepEqual(r.omitted, []);
  });
  it('leaves out a platform whose packages do not exist there, naming only built manifests', () => {
    const outcomes: PlatformOutcome[] = [
      { system: 'x86_64-linux', ok: true, image: amd },
      { system: 'aarch64-linux', ok: false, failure: { kind: 'unknown_packages', packages: ['amdonly'] } },
    ];
    const r = composeIndex(outcomes, 'x86_64-linux', 'rev');
    assert.ok(r.ok);
    assert.deepEqual(JSON.parse(r.index.body).manifests.map((m: { digest: string }) => m.digest), [amd.digest]);
    assert.deepEqual(r.omitted, [{ system: 'aarch64-linux', packages: ['amdonly'] }]);
  });
  it('fails the request when the default platform fails, or another one fails for any other reason', () => {
    const unknown: PlatformOutcome = { system: 'x86_64-linux', ok: false, failure: { kind: 'unknown_packages', packages: ['x'] } };
    const r1 = composeIndex([unknown, { system: 'aarch64-linux', ok: true, image: arm }], 'x86_64-linux', 'rev');
    assert.deepEqual(r1, { ok: false, failure: unknown.failure, system: 'x86_64-linux' });
    const noWorker = { kind: 'no_worker' as const, system: 'aarch64-linux' as const };
    const r2 = composeIndex([{ system: 'x86_64-linux', ok: true, image: amd }, { system: 'aarch64-linux', ok: false, failure: noWorker }], 'x86_64-linux', 'rev');
    assert.deepEqual(r2, { ok: false, failure: noWorker, system: 'aarch64-linux' });
  });
});
