/**
 * In a multi-platform image each platform's image has its own SBOM (issue
 * 14): a real `npm start` Nixery with NIXERY_PLATFORMS=linux/amd64,linux/arm64
 * builds `hello` for x86_64-linux and for aarch64-linux (qemu user
 * emulation, as test/e2e/oci-platforms.test.ts), and each entry of the
 * image index has its own referrer whose SPDX document lists that
 * platform's closure, as Nix lists it (its own hello and glibc).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { aarch64SkipReason } from '../helpers/aarch64';
import { NIX_ENV } from '../helpers/nix-env';
import { type NixeryInstance, startNixery } from '../helpers/nixery';
import { type SpdxView, spdxSchemaErrors, storePathOf } from '../helpers/spdx';

const run = promisify(execFile);
const ARM_BUILD_S = 900;
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function get(nx: NixeryInstance, p: string, accept: string) {
  const res = await fetch(`${nx.url}${p}`, { headers: { Accept: accept } });
  const body = Buffer.from(await res.arrayBuffer());
  return { res, body, json: () => JSON.parse(body.toString('utf8')) };
}

describe('each platform of a multi-platform image has its own SBOM', { timeout: 2 * ARM_BUILD_S * 1000 }, () => {
  const whyNot = aarch64SkipReason();
  let nx: NixeryInstance;
  before(async () => {
    if (!whyNot) nx = await startNixery({ NIXERY_PLATFORMS: 'linux/amd64,linux/arm64', NIX_TIMEOUT: `${ARM_BUILD_S}`, NIXERY_BUILD_WAIT: `${ARM_BUILD_S}`, NIXERY_POPCOUNT_SCHEDULE: 'off' });
  });
  after(async () => {
    await nx?.stop();
  });

  it('the index entries (amd64, arm64) each have an SPDX referrer of their own closure', { timeout: ARM_BUILD_S * 1000 }, async (t) => {
    if (whyNot) return t.skip(whyNot);
    const index = await get(nx, '/v2/hello/manifests/latest', OCI_INDEX);
    assert.equal(index.res.status, 200, index.body.toString());
    const entries = index.json().manifests as { digest: string; platform: { architecture: string } }[];
    assert.deepEqual(entries.map((e) => e.platform.architecture), ['amd64', 'arm64']);

    const docs: { arch: string; sbomDigest: string; doc: SpdxView }[] = [];
    for (const e of entries) {
      const refs = await get(nx, `/v2/hello/referrers/${e.digest}?artifactType=application%2Fspdx%2Bjson`, OCI_INDEX);
      assert.equal(refs.res.status, 200);
      assert.equal(refs.res.headers.get('oci-filters-applied'), 'artifactType');
      const listed = refs.json().manifests as { digest: string }[];
      assert.equal(listed.length, 1, `${e.platform.architecture} has one SBOM`);
      const artifact = (await get(nx, `/v2/hello/manifests/${listed[0]!.digest}`, OCI_MANIFEST)).json();
      assert.equal(artifact.subject.digest, e.digest, 'the artifact is about this platform\'s manifest');
      const blob = await get(nx, `/v2/hello/blobs/${artifact.layers[0].digest}`, '*/*');
      assert.equal(sha(blob.body), artifact.layers[0].digest);
      const doc = JSON.parse(blob.body.toString('utf8')) as SpdxView;
      assert.deepEqual(spdxSchemaErrors(doc), []);
      docs.push({ arch: e.platform.architecture, sbomDigest: artifact.layers[0].digest, doc });
    }
    const [amd, arm] = docs as [(typeof docs)[0], (typeof docs)[0]];
    assert.notEqual(amd.sbomDigest, arm.sbomDigest);
    assert.notEqual(amd.doc.documentNamespace, arm.doc.documentNamespace);
    assert.match((amd.doc as unknown as { name: string }).name, /x86_64-linux$/);
    assert.match((arm.doc as unknown as { name: string }).name, /aarch64-linux$/);

    // Each lists exactly its own platform's closure, as Nix lists it, glibc included; the two share no store path.
    const closures: string[][] = [];
    for (const { doc } of docs) {
      const listed = doc.packages.map(storePathOf).filter((p): p is string => !!p).sort();
      const roots = doc.relationships.filter((r) => r.relationshipType === 'DESCRIBES').map((r) => storePathOf(doc.packages.find((p) => p.SPDXID === r.relatedSpdxElement)!)!);
      const closure = (await run('nix-store', ['-qR', ...roots], { env: NIX_ENV })).stdout.trim().split('\n').sort();
      assert.deepEqual(listed, closure);
      assert.ok(doc.packages.some((p) => p.name === 'glibc'), 'glibc is listed');
      assert.ok(doc.packages.some((p) => p.name === 'hello'), 'hello is listed');
      closures.push(listed);
    }
    for (const name of ['hello', 'glibc']) {
      const of = (i: number) => docs[i]!.doc.packages.filter((p) => p.name === name).map(storePathOf);
      assert.equal(of(0).filter((p) => of(1).includes(p)).length, 0, `each platform's SBOM has its own ${name}`);
    }
    assert.notDeepEqual(closures[0], closures[1]);
  });
});
