/**
 * SBOMs and the referrers API against a real single-node Nixery (real Nix,
 * the bundled package set, embedded Redis, filesystem storage): `hello` is
 * built, its SPDX document is found through the referrers API, validated
 * against the official SPDX 2.3 schema, and compared with what Nix itself
 * says of hello's closure (`nix-store -qR`, `nix-store --query --hash`,
 * `builtins.parseDrvName`). The image page links the document.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { skopeoInspect } from '../helpers/clients';
import { NIX_ENV } from '../helpers/nix-env';
import { MANIFEST_ACCEPT, type NixeryInstance, startNixery } from '../helpers/nixery';
import { type SpdxView, SPDX_ID_RE, spdxSchemaErrors, storePathOf } from '../helpers/spdx';

const run = promisify(execFile);
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const SPDX = 'application/spdx+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

async function get(url: string, accept = MANIFEST_ACCEPT) {
  const res = await fetch(url, { headers: { Accept: accept } });
  const body = Buffer.from(await res.arrayBuffer());
  return { res, body, json: () => JSON.parse(body.toString('utf8')) };
}

async function nix(cmd: string, args: string[]): Promise<string> {
  return (await run(cmd, args, { env: NIX_ENV, maxBuffer: 64 * 1024 * 1024 })).stdout;
}

describe('SBOMs through the referrers API', { timeout: 900_000 }, () => {
  let nx: NixeryInstance;
  let imageDigest: string;
  let artifactDigest: string;
  let sbomDigest: string;
  let sbomBody: Buffer;

  before(async () => {
    nx = await startNixery();
    const { res } = await get(`${nx.url}/v2/hello/manifests/latest`);
    assert.equal(res.status, 200);
    imageDigest = res.headers.get('docker-content-digest')!;
  });
  after(async () => {
    await nx?.stop();
  });

  it('lists the image\'s SBOM as its one referrer', async () => {
    const { res, json } = await get(`${nx.url}/v2/hello/referrers/${imageDigest}`, OCI_INDEX);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), OCI_INDEX);
    assert.equal(res.headers.get('oci-filters-applied'), null);
    const index = json();
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, OCI_INDEX);
    assert.equal(index.manifests.length, 1);
    const [d] = index.manifests;
    assert.equal(d.artifactType, SPDX);
    assert.equal(d.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.ok(d.annotations['org.opencontainers.image.created']);
    artifactDigest = d.digest;

    // The artifact manifest is fetchable by digest, and its subject is the image.
    const m = await get(`${nx.url}/v2/hello/manifests/${artifactDigest}`, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(m.res.status, 200);
    assert.equal(m.res.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(sha(m.body), artifactDigest);
    assert.equal(m.body.length, d.size);
    const artifact = m.json();
    assert.equal(artifact.artifactType, SPDX);
    assert.equal(artifact.subject.digest, imageDigest);
    assert.equal(artifact.config.mediaType, 'application/vnd.oci.empty.v1+json');
    const empty = await get(`${nx.url}/v2/hello/blobs/${artifact.config.digest}`);
    assert.equal(empty.body.toString(), '{}');
    assert.equal(artifact.layers.length, 1);
    assert.equal(artifact.layers[0].mediaType, SPDX);
    sbomDigest = artifact.layers[0].digest;

    // A real registry client reads the artifact manifest by digest, byte for byte.
    assert.deepEqual(await skopeoInspect(`${nx.host}/hello@${artifactDigest}`, { mode: 'raw' }), artifact);

    const blob = await get(`${nx.url}/v2/hello/blobs/${sbomDigest}`);
    assert.equal(blob.res.status, 200);
    assert.equal(sha(blob.body), sbomDigest);
    sbomBody = blob.body;
  });

  it('the OCI variant of the image has its own SBOM artifact (its own subject), with the same SPDX document', async () => {
    const oci = await get(`${nx.url}/v2/hello/manifests/latest`, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(oci.res.status, 200);
    assert.equal(oci.res.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
    const ociDigest = oci.res.headers.get('docker-content-digest')!;
    assert.notEqual(ociDigest, imageDigest);
    const index = (await get(`${nx.url}/v2/hello/referrers/${ociDigest}`, OCI_INDEX)).json();
    assert.equal(index.manifests.length, 1);
    assert.notEqual(index.manifests[0].digest, artifactDigest);
    const artifact = (await get(`${nx.url}/v2/hello/manifests/${index.manifests[0].digest}`, 'application/vnd.oci.image.manifest.v1+json')).json();
    assert.deepEqual(artifact.subject, { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: ociDigest, size: oci.body.length });
    assert.equal(artifact.layers[0].digest, sbomDigest);
  });

  it('filters by artifactType and says so in OCI-Filters-Applied', async () => {
    const spdx = await get(`${nx.url}/v2/hello/referrers/${imageDigest}?artifactType=${encodeURIComponent(SPDX)}`, OCI_INDEX);
    assert.equal(spdx.res.status, 200);
    assert.equal(spdx.res.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual(spdx.json().manifests.map((d: { digest: string }) => d.digest), [artifactDigest]);
    const other = await get(`${nx.url}/v2/hello/referrers/${imageDigest}?artifactType=application%2Fvnd.example.signature`, OCI_INDEX);
    assert.equal(other.res.status, 200);
    assert.equal(other.res.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual(other.json().manifests, []);
  });

  it('answers an empty index for a digest without referrers, 400 for a bad digest or name', async () => {
    for (const digest of [sha('never built'), sbomDigest, artifactDigest]) {
      const r = await get(`${nx.url}/v2/hello/referrers/${digest}`, OCI_INDEX);
      assert.equal(r.res.status, 200, digest);
      assert.equal(r.res.headers.get('content-type'), OCI_INDEX);
      assert.deepEqual(r.json(), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    }
    const bad = await get(`${nx.url}/v2/hello/referrers/sha256:xyz`);
    assert.equal(bad.res.status, 400);
    assert.equal(bad.json().errors[0].code, 'DIGEST_INVALID');
    const badName = await get(`${nx.url}/v2/Hello/referrers/${imageDigest}`);
    assert.equal(badName.res.status, 400);
    assert.equal(badName.json().errors[0].code, 'NAME_INVALID');
  });

  it('the SBOM is valid SPDX 2.3 and lists hello\'s closure, glibc included, with Nix\'s names, versions and hashes', async () => {
    const doc = JSON.parse(sbomBody.toString('utf8')) as SpdxView;
    assert.deepEqual(spdxSchemaErrors(doc), []);
    for (const p of doc.packages) assert.match(p.SPDXID, SPDX_ID_RE);

    const byId = new Map(doc.packages.map((p) => [p.SPDXID, p]));
    const described = doc.relationships.filter((r) => r.spdxElementId === 'SPDXRef-DOCUMENT' && r.relationshipType === 'DESCRIBES').map((r) => byId.get(r.relatedSpdxElement)!);
    assert.deepEqual(described.map((p) => p.name).sort(), ['hello', 'iana-etc', 'nss-cacert']);
    const hello = described.find((p) => p.name === 'hello')!;
    const helloPath = storePathOf(hello)!;

    // Every path of the image's closure, as Nix lists it, is a package, and nothing else is (but the source).
    const roots = described.map((p) => storePathOf(p)!);
    const closure = (await nix('nix-store', ['-qR', ...roots])).trim().split('\n').sort();
    const listed = doc.packages.map(storePathOf).filter((p): p is string => !!p).sort();
    assert.deepEqual(listed, closure);
    const helloClosure = (await nix('nix-store', ['-qR', helloPath])).trim().split('\n');
    const glibcPath = helloClosure.find((p) => /-glibc-\d/.test(p));
    assert.ok(glibcPath, `glibc is in hello's closure: ${helloClosure.join(' ')}`);

    // Names and versions as Nix's own builtins.parseDrvName splits them.
    const names = closure.map((p) => p.slice(p.indexOf('-') + 1));
    const split = JSON.parse(await nix('nix-instantiate', ['--eval', '--strict', '--json', '-E', `map builtins.parseDrvName (builtins.fromJSON ${JSON.stringify(JSON.stringify(names))})`])) as {
      name: string;
      version: string;
    }[];
    // NAR hashes as Nix stores them, converted to hex by Nix.
    const hashes = (await nix('nix-store', ['--query', '--hash', ...closure])).trim().split('\n');
    for (const [i, p] of closure.entries()) {
      const pkg = doc.packages.find((x) => storePathOf(x) === p)!;
      assert.equal(pkg.name, split[i]!.name, p);
      assert.equal(pkg.versionInfo ?? '', split[i]!.version, p);
      const [algo, base32] = hashes[i]!.split(':');
      assert.equal(algo, 'sha256');
      const hex = (await nix('nix-hash', ['--type', 'sha256', '--to-base16', base32!])).trim();
      assert.deepEqual(pkg.checksums, [{ algorithm: 'SHA256', checksumValue: hex }], p);
    }
    const glibc = doc.packages.find((x) => storePathOf(x) === glibcPath)!;
    assert.equal(glibc.name, 'glibc');
    assert.match(glibc.versionInfo ?? '', /^2\.\d+/);
    const rel = (a: string, t: string, b: string) => doc.relationships.some((r) => r.spdxElementId === a && r.relationshipType === t && r.relatedSpdxElement === b);
    assert.ok(rel(hello.SPDXID, 'DEPENDS_ON', glibc.SPDXID), 'hello DEPENDS_ON glibc');
    // The package source with its pinned revision, which the manifest answer names too.
    const source = byId.get('SPDXRef-PackageSource')!;
    const revision = (await get(`${nx.url}/v2/hello/manifests/latest`)).res.headers.get('nixery-revision');
    assert.ok(revision);
    assert.equal(source.versionInfo, revision);
    assert.ok(rel(hello.SPDXID, 'GENERATED_FROM', 'SPDXRef-PackageSource'));
  });

  it('the image page links the SBOM, and the link gives the SPDX document', async () => {
    const page = await get(`${nx.url}/image/hello`, 'text/html');
    assert.equal(page.res.status, 200);
    const href = /<a class="sbom" href="([^"]+)"/.exec(page.body.toString('utf8'))?.[1];
    assert.ok(href, 'the page has an SBOM link');
    const linked = await get(new URL(href.replace(/&amp;/g, '&'), nx.url).toString());
    assert.equal(linked.res.status, 200);
    assert.equal(sha(linked.body), sbomDigest);
    const referrers = /<a class="referrers" href="([^"]+)"/.exec(page.body.toString('utf8'))?.[1];
    assert.equal(referrers, `/v2/hello/referrers/${imageDigest}`);
  });
});
