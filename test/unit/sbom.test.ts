/**
 * The SBOM and referrers pieces, pure: store path names split like
 * `builtins.parseDrvName`, Nix base32 NAR hashes as hex, the SPDX 2.3
 * document of a fixture closure checked against the official schema, the
 * artifact manifest, the referrers index and its filter, and the storage
 * collector keeping an SBOM while its image is kept.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { planCollection } from '../../libs/shared/src/collect/plan';
import { manifestReferences } from '../../libs/shared/src/collect/references';
import { type Digest, sha256Digest } from '../../libs/shared/src/core/digest';
import type { ClosureGraph } from '../../libs/shared/src/core/graph';
import { MediaTypes } from '../../libs/shared/src/core/media-types';
import { buildArtifactManifest, emptyDescriptor, parseReferrersIndex, referrersIndex } from '../../libs/shared/src/protocol';
import { SBOM_CREATED, SPDX_MEDIA_TYPE, buildSpdxDocument, decodeNixBase32, narHashHex, parseDrvName } from '../../libs/shared/src/sbom';
import { SPDX_ID_RE, type SpdxView, spdxSchemaErrors, storePathOf } from '../helpers/spdx';

/** Nix's printHash32, written out independently of the decoder under test. */
function encodeNixBase32(bytes: Buffer): string {
  const chars = '0123456789abcdfghijklmnpqrsvwxyz';
  const len = Math.ceil((bytes.length * 8) / 5);
  let s = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = Math.floor(b / 8);
    const j = b % 8;
    const c = (bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0);
    s += chars[c & 0x1f];
  }
  return s;
}

const HELLO = '/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-hello-2.12.1';
const GLIBC = '/nix/store/1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b-glibc-2.36-9+deb12u4';
const BASH = '/nix/store/2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c-bash-interactive-5.2.15';
const ETC = '/nix/store/3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d-iana-etc';
const hashOf = (s: string) => createHash('sha256').update(s).digest();

const GRAPH: ClosureGraph = {
  roots: [HELLO, BASH, ETC],
  paths: {
    [HELLO]: { path: HELLO, narSize: 1000, references: [GLIBC, HELLO], narHash: `sha256:${encodeNixBase32(hashOf('hello'))}` },
    [GLIBC]: { path: GLIBC, narSize: 30_000_000, references: [GLIBC], narHash: `sha256-${hashOf('glibc').toString('base64')}` },
    [BASH]: { path: BASH, narSize: 2000, references: [GLIBC], narHash: `sha256:${hashOf('bash').toString('hex')}` },
    [ETC]: { path: ETC, narSize: 10, references: [], narHash: `sha256:${encodeNixBase32(hashOf('etc'))}` },
  },
};
const TOP = [
  { attr: 'hello', storePath: HELLO },
  { attr: 'bashInteractive', storePath: BASH },
  { attr: 'iana-etc', storePath: ETC },
];
const sbomOf = (graph = GRAPH) => buildSpdxDocument({ graph, topLevel: TOP, source: { kind: 'path', revision: 'abc123' }, system: 'x86_64-linux' });

describe('store path names as builtins.parseDrvName splits them', () => {
  for (const [text, name, version] of [
    ['hello-2.12.1', 'hello', '2.12.1'],
    ['glibc-2.36-9+deb12u4', 'glibc', '2.36-9+deb12u4'],
    ['bash-interactive-5.2.15', 'bash-interactive', '5.2.15'],
    ['iana-etc', 'iana-etc', ''],
    ['nix-0.12pre12876', 'nix', '0.12pre12876'],
    ['xorg-xev-1.2.5', 'xorg-xev', '1.2.5'],
    ['a-', 'a-', ''],
  ] as const) {
    it(`${text} -> ${name} / ${version || '(none)'}`, () => assert.deepEqual(parseDrvName(text), { name, version }));
  }
});

describe('NAR hashes as hex', () => {
  it('decodes Nix base32 (the SHA-256 of nothing, as Nix prints it)', () => {
    const empty = createHash('sha256').update('').digest();
    assert.equal(encodeNixBase32(empty), '0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
    assert.equal(narHashHex('sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73'), empty.toString('hex'));
  });
  it('round-trips random hashes and reads SRI and hex too', () => {
    for (let k = 0; k < 50; k++) {
      const h = hashOf(`x${k}`);
      assert.equal(decodeNixBase32(encodeNixBase32(h), 32)?.toString('hex'), h.toString('hex'));
      assert.equal(narHashHex(`sha256-${h.toString('base64')}`), h.toString('hex'));
      assert.equal(narHashHex(`sha256:${h.toString('hex')}`), h.toString('hex'));
    }
  });
  it('refuses what is not a sha256 hash', () => {
    for (const bad of ['md5:abc', 'sha256:eeee', `sha256:${'e'.repeat(52)}`, 'sha256-AAAA', '', `sha256:${'z'.repeat(52)}`]) assert.equal(narHashHex(bad), null, bad);
  });
});

describe('the SPDX document of a closure', () => {
  const sbom = sbomOf();
  const doc = JSON.parse(sbom.body) as SpdxView;

  it('validates against the official SPDX 2.3 JSON schema', () => {
    assert.deepEqual(spdxSchemaErrors(doc), []);
    assert.equal((doc as unknown as { spdxVersion: string }).spdxVersion, 'SPDX-2.3');
  });

  it('has one package per store path with name, version, NAR hash and store path, plus the package source', () => {
    const byPath = new Map(doc.packages.map((p) => [storePathOf(p), p]));
    for (const [p, name, version, hash] of [
      [HELLO, 'hello', '2.12.1', hashOf('hello')],
      [GLIBC, 'glibc', '2.36-9+deb12u4', hashOf('glibc')],
      [BASH, 'bash-interactive', '5.2.15', hashOf('bash')],
      [ETC, 'iana-etc', undefined, hashOf('etc')],
    ] as const) {
      const pkg = byPath.get(p);
      assert.ok(pkg, p);
      assert.equal(pkg.name, name);
      assert.equal(pkg.versionInfo, version);
      assert.deepEqual(pkg.checksums, [{ algorithm: 'SHA256', checksumValue: hash.toString('hex') }]);
    }
    const source = doc.packages.find((p) => p.SPDXID === 'SPDXRef-PackageSource');
    assert.equal(source?.versionInfo, 'abc123');
    assert.equal(doc.packages.length, 5);
    for (const p of doc.packages) assert.match(p.SPDXID, SPDX_ID_RE);
    assert.equal(new Set(doc.packages.map((p) => p.SPDXID)).size, doc.packages.length);
  });

  it('says what depends on what, and describes the requested packages', () => {
    const id = (p: string) => doc.packages.find((x) => storePathOf(x) === p)!.SPDXID;
    const rels = doc.relationships.map((r) => `${r.spdxElementId} ${r.relationshipType} ${r.relatedSpdxElement}`);
    for (const p of [HELLO, BASH, ETC]) {
      assert.ok(rels.includes(`SPDXRef-DOCUMENT DESCRIBES ${id(p)}`), p);
      assert.ok(rels.includes(`${id(p)} GENERATED_FROM SPDXRef-PackageSource`), p);
    }
    const deps = rels.filter((r) => r.includes(' DEPENDS_ON ')).sort();
    assert.deepEqual(deps, [`${id(BASH)} DEPENDS_ON ${id(GLIBC)}`, `${id(HELLO)} DEPENDS_ON ${id(GLIBC)}`].sort());
  });

  it('is the same bytes for the same image, and another document (namespace, digest) for another closure', () => {
    assert.equal(sbomOf().body, sbom.body);
    assert.equal(doc.creationInfo.created, SBOM_CREATED);
    assert.match(doc.documentNamespace, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const { [ETC]: _gone, ...rest } = GRAPH.paths;
    const other = JSON.parse(sbomOf({ roots: GRAPH.roots, paths: rest }).body) as SpdxView;
    assert.notEqual(other.documentNamespace, doc.documentNamespace);
    assert.equal(sbom.digest, sha256Digest(sbom.body));
  });
});

describe('artifact manifests and the referrers index', () => {
  const sbom = sbomOf();
  const subject = { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', digest: sha256Digest('image'), size: 5 };
  const artifact = buildArtifactManifest({ artifactType: SPDX_MEDIA_TYPE, blob: { mediaType: SPDX_MEDIA_TYPE, digest: sbom.digest, size: sbom.size }, subject, annotations: { a: 'b' } });

  it('is an OCI image manifest with the empty config, the SPDX blob as its layer and the image as its subject', () => {
    const m = JSON.parse(artifact.body);
    assert.equal(m.mediaType, MediaTypes.ociManifest);
    assert.equal(m.artifactType, SPDX_MEDIA_TYPE);
    // The image spec's empty descriptor: the digest of `{}`.
    assert.equal(m.config.digest, 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a');
    assert.deepEqual(m.config, emptyDescriptor());
    assert.deepEqual(m.layers, [{ mediaType: SPDX_MEDIA_TYPE, digest: sbom.digest, size: sbom.size }]);
    assert.deepEqual(m.subject, subject);
    assert.equal(artifact.digest, sha256Digest(artifact.body));
    assert.deepEqual(artifact.descriptor, { mediaType: MediaTypes.ociManifest, digest: artifact.digest, size: artifact.size, artifactType: SPDX_MEDIA_TYPE, annotations: { a: 'b' } });
  });

  it('lists referrers, filters by artifactType, and reads back what it wrote', () => {
    const other = { mediaType: MediaTypes.ociManifest, digest: sha256Digest('sig'), size: 9, artifactType: 'application/vnd.example.signature' };
    const all = referrersIndex([artifact.descriptor, other]);
    assert.equal(all.filtered, false);
    const doc = JSON.parse(all.body);
    assert.equal(doc.mediaType, MediaTypes.ociIndex);
    assert.equal(doc.schemaVersion, 2);
    assert.equal(doc.manifests.length, 2);
    const only = referrersIndex([artifact.descriptor, other], SPDX_MEDIA_TYPE);
    assert.equal(only.filtered, true);
    assert.deepEqual(JSON.parse(only.body).manifests, [artifact.descriptor]);
    assert.deepEqual(JSON.parse(referrersIndex([], SPDX_MEDIA_TYPE).body).manifests, []);
    assert.deepEqual(parseReferrersIndex(all.body), doc.manifests);
    assert.equal(parseReferrersIndex('{"manifests":[{"digest":"sha256:nope"}]}'), null);
    assert.equal(parseReferrersIndex('not json'), null);
  });

  it('the storage collector keeps an SBOM while its image is kept, and drops it with the image', () => {
    const refs = manifestReferences(artifact.body);
    assert.equal(refs?.subject, subject.digest);
    const day = 24 * 3600 * 1000;
    const now = 100 * day;
    const image = { digest: subject.digest as Digest, size: 5, updated: 0, refs: { blobs: [], manifests: [] } };
    const sbomManifest = { digest: artifact.digest, size: artifact.size, updated: 0, refs };
    const plan = (imagePulled: number) =>
      planCollection({ manifests: [image, sbomManifest], blobs: [], pulls: new Map([[image.digest, imagePulled], [artifact.digest, 0]]), now, keepMs: 30 * day, graceMs: 3600_000 });
    assert.deepEqual(plan(now - day).manifests, []);
    assert.deepEqual(plan(0).manifests.map((m) => m.digest).sort(), [image.digest, artifact.digest].sort());
  });
});
