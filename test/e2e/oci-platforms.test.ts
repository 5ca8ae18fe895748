/**
 * Issue 13, parts 1 and 2, against `npm start` with real clients: manifests
 * by Accept (strict OCI, Docker, none), the image index of
 * NIXERY_PLATFORMS=linux/amd64,linux/arm64 by tag and by digest (GET and
 * HEAD), skopeo and a Docker engine reading it, and the failure policy:
 * a platform whose packages do not exist there is left out of the index; a
 * platform whose build fails fails the index request (503) while the
 * default platform is still served to clients without index support.
 *
 * The first two suites use the bundled set plus two packages: `amdonly`
 * exists only for x86_64-linux, `armbroken` exists for both but its aarch64
 * build fails; neither needs an aarch64 build to succeed. The last suite
 * builds `shell/hello` for both systems (aarch64 through qemu, as
 * test/e2e/aarch64.test.ts) and pulls it with `--platform linux/arm64`
 * through the index with a Docker engine, containerd and skopeo.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, readlink, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { skopeoCopyToOci, skopeoCopyToOciForArch, skopeoInspect, umociUnpack, verifyOciLayout } from '../helpers/clients';
import { systemSupport } from '../../libs/shared/src/nix';
import { startContainerd } from '../helpers/containerd';
import { type Dockerd, startDockerd } from '../helpers/dockerd';
import { type LogLine, type NixeryInstance, metric, readLogLines, startNixery } from '../helpers/nixery';
import { setTimeout as sleep } from 'node:timers/promises';
import { type PackageSetCopy, copyPackageSet } from '../helpers/pkgset';
import { CommandError, makeScratchDir, removeScratchDir } from '../helpers/proc';

const T = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};
/** Seconds a cold aarch64 build may take (every builder runs under emulation). */
const ARM_BUILD_S = 900;
/**
 * Why this machine cannot build aarch64 at all (its kernel refuses
 * binfmt_misc), or null; anything else missing (the arm64 tree, qemu) is a
 * set-up bug and fails the tests instead of skipping them.
 */
function noEmulation(): string | null {
  const s = systemSupport('aarch64-linux');
  return s.ok || !/binfmt_misc/.test(s.reason) ? null : s.reason;
}

/** What a Docker engine sends: both families, both lists. */
const INDEX_ACCEPT = [T.dockerManifest, T.dockerList, T.ociManifest, T.ociIndex].join(', ');

interface Descriptor { mediaType: string; digest: string; size: number; platform?: { os: string; architecture: string; variant?: string } }
interface Doc { mediaType: string; schemaVersion: number; config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[] }

/** The package set: the bundled one, `amdonly` for x86_64-linux only, `armbroken` failing to build for aarch64-linux. */
async function platformPackageSet(): Promise<PackageSetCopy> {
  const pkgs = await copyPackageSet();
  await rename(path.join(pkgs.dir, 'default.nix'), path.join(pkgs.dir, 'base.nix'));
  const sh = (script: string) => `derivation { name = "pkg"; system = builtins.currentSystem; builder = "/bin/busybox"; args = [ "sh" "-c" "${script}" ]; }`;
  await writeFile(
    path.join(pkgs.dir, 'default.nix'),
    `{ system ? builtins.currentSystem }:
(import ./base.nix { inherit system; }) // {
  armbroken = ${sh('if [ \${system} = aarch64-linux ]; then echo no aarch64 build of armbroken >&2; exit 1; fi; mkdir -p $out; echo ok > $out/ok; :')};
} // (if system == "x86_64-linux" then { amdonly = ${sh('mkdir -p $out/share; echo amd64 > $out/share/amdonly; :')}; } else { })
`,
  );
  return pkgs;
}

async function get(nx: NixeryInstance, p: string, accept?: string, method = 'GET') {
  const res = await fetch(`${nx.url}${p}`, { method, headers: accept === undefined ? {} : { Accept: accept } });
  const body = Buffer.from(await res.arrayBuffer());
  return { res, body, doc: () => JSON.parse(body.toString('utf8')) as Doc };
}

/** Whether the log has a line matching `pred` within a few seconds (the child's output reaches the file a little later). */
async function logged(nx: NixeryInstance, pred: (l: LogLine) => boolean): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if ((await readLogLines(nx.logFile)).some(pred)) return true;
    await sleep(100);
  }
  return false;
}

/** The headers that must be equal between GET and HEAD. */
const heads = (res: Response) => ['content-type', 'docker-content-digest', 'content-length', 'etag'].map((h) => res.headers.get(h));

describe('OCI manifests and multi-platform images (issue 13)', () => {
  let nx: NixeryInstance;
  let pkgs: PackageSetCopy;
  before(async () => {
    pkgs = await platformPackageSet();
    nx = await startNixery({
      ...pkgs.env,
      NIXERY_PLATFORMS: 'linux/amd64,linux/arm64',
      NIXERY_WORKER_SYSTEMS: 'x86_64-linux,aarch64-linux',
      NIXERY_POPCOUNT_SCHEDULE: 'off',
      NIXERY_BUILD_WAIT: '240',
    });
  });
  after(async () => {
    await nx?.stop();
    await pkgs?.remove();
  });

  let docker: { digest: string; doc: Doc };
  let oci: { digest: string; doc: Doc };

  it('Docker Accept, no Accept and */* get Docker schema 2; a strict OCI Accept gets the OCI manifest of the same blobs', { timeout: 600_000 }, async () => {
    const d = await get(nx, '/v2/amdonly/manifests/latest', T.dockerManifest);
    assert.equal(d.res.status, 200, d.body.toString());
    assert.equal(d.res.headers.get('content-type'), T.dockerManifest);
    docker = { digest: d.res.headers.get('docker-content-digest')!, doc: d.doc() };
    assert.equal(docker.doc.mediaType, T.dockerManifest);
    for (const accept of [undefined, '*/*', `${T.dockerManifest}, ${T.ociManifest}`]) {
      const r = await get(nx, '/v2/amdonly/manifests/latest', accept);
      assert.equal(r.res.headers.get('docker-content-digest'), docker.digest, `Accept ${accept}`);
    }
    const o = await get(nx, '/v2/amdonly/manifests/latest', `${T.ociManifest}; q=1, ${T.dockerManifest}; q=0`);
    assert.equal(o.res.status, 200);
    assert.equal(o.res.headers.get('content-type'), T.ociManifest);
    oci = { digest: o.res.headers.get('docker-content-digest')!, doc: o.doc() };
    assert.notEqual(oci.digest, docker.digest);
    assert.equal(oci.doc.mediaType, T.ociManifest);
    assert.equal(oci.doc.config?.mediaType, T.ociConfig);
    assert.equal(oci.doc.config?.digest, docker.doc.config?.digest);
    assert.deepEqual(oci.doc.layers?.map((l) => l.mediaType), docker.doc.layers?.map(() => T.ociLayer));
    assert.deepEqual(oci.doc.layers?.map((l) => [l.digest, l.size]), docker.doc.layers?.map((l) => [l.digest, l.size]));
    for (const b of [oci.doc.config!, ...oci.doc.layers!]) {
      const blob = await get(nx, `/v2/amdonly/blobs/${b.digest}`, undefined, 'HEAD');
      assert.equal(blob.res.status, 200, b.digest);
      assert.equal(Number(blob.res.headers.get('content-length')), b.size);
    }
    for (const [accept, digest] of [[T.dockerManifest, docker.digest], [T.ociManifest, oci.digest]] as const) {
      const g = await get(nx, '/v2/amdonly/manifests/latest', accept);
      const h = await get(nx, '/v2/amdonly/manifests/latest', accept, 'HEAD');
      assert.equal(h.res.status, 200);
      assert.equal(h.body.length, 0);
      assert.deepEqual(heads(h.res), heads(g.res));
      assert.equal(g.res.headers.get('docker-content-digest'), digest);
    }
  });

  it('each variant by its digest, with its own media type whatever the Accept; an unknown digest is 404 MANIFEST_UNKNOWN', async () => {
    for (const [digest, type] of [[docker.digest, T.dockerManifest], [oci.digest, T.ociManifest]] as const) {
      for (const accept of [undefined, T.dockerManifest, T.ociManifest]) {
        const g = await get(nx, `/v2/amdonly/manifests/${digest}`, accept);
        assert.equal(g.res.status, 200);
        assert.equal(g.res.headers.get('content-type'), type);
        assert.equal(g.res.headers.get('docker-content-digest'), digest);
        const h = await get(nx, `/v2/amdonly/manifests/${digest}`, accept, 'HEAD');
        assert.deepEqual(heads(h.res), heads(g.res));
      }
    }
    const none = await get(nx, `/v2/amdonly/manifests/sha256:${'0'.repeat(64)}`, T.ociManifest);
    assert.equal(none.res.status, 404);
    assert.equal((JSON.parse(none.body.toString()) as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_UNKNOWN');
  });

  let list: { digest: string; doc: Doc };
  it('an index Accept gets an index naming only built manifests: arm64, where amdonly does not exist, is left out', { timeout: 600_000 }, async () => {
    const l = await get(nx, '/v2/amdonly/manifests/latest', INDEX_ACCEPT);
    assert.equal(l.res.status, 200, l.body.toString());
    assert.equal(l.res.headers.get('content-type'), T.dockerList);
    list = { digest: l.res.headers.get('docker-content-digest')!, doc: l.doc() };
    assert.deepEqual(list.doc.manifests?.map((m) => [m.digest, m.mediaType, m.platform]), [[docker.digest, T.dockerManifest, { os: 'linux', architecture: 'amd64' }]]);
    const i = await get(nx, '/v2/amdonly/manifests/latest', `${T.ociIndex}, ${T.ociManifest}`);
    assert.equal(i.res.headers.get('content-type'), T.ociIndex);
    const index = i.doc();
    assert.equal(index.mediaType, T.ociIndex);
    assert.deepEqual(index.manifests?.map((m) => [m.digest, m.mediaType]), [[oci.digest, T.ociManifest]]);
    const indexDigest = i.res.headers.get('docker-content-digest')!;
    // By tag and by digest, GET and HEAD: the same headers.
    for (const [ref, accept] of [['latest', INDEX_ACCEPT], [list.digest, undefined], [indexDigest, T.dockerManifest]] as const) {
      const g = await get(nx, `/v2/amdonly/manifests/${ref}`, accept);
      const h = await get(nx, `/v2/amdonly/manifests/${ref}`, accept, 'HEAD');
      assert.equal(g.res.status, 200, ref);
      assert.deepEqual(heads(h.res), heads(g.res), ref);
    }
    assert.equal((await get(nx, `/v2/amdonly/manifests/${indexDigest}`)).res.headers.get('content-type'), T.ociIndex);
    assert.ok((await metric(nx.url, 'nixery_index_platforms_omitted_total', { platform: 'linux/arm64' })) >= 1);
    assert.ok(await logged(nx, (x) => x.msg.startsWith('platform left out of the image index') && x.platform === 'linux/arm64'));
  });

  it('skopeo reads the index raw and copies the host platform; --override-arch arm64 finds no arm64 image of amdonly', { timeout: 600_000 }, async () => {
    const raw = (await skopeoInspect(`${nx.host}/amdonly:latest`, { mode: 'raw' })) as Doc;
    assert.equal(raw.mediaType, T.dockerList);
    assert.equal(raw.manifests?.length, 1);
    const dir = await makeScratchDir('nixery-oci-');
    try {
      await skopeoCopyToOci(`${nx.host}/amdonly:latest`, path.join(dir, 'amd'));
      const layout = await verifyOciLayout(path.join(dir, 'amd'));
      const layers = layout.images.flatMap((img) => img.manifest.layers.map((x) => x.digest));
      assert.deepEqual(layers, docker.doc.layers?.map((x) => x.digest));
      await assert.rejects(skopeoCopyToOciForArch(`${nx.host}/amdonly:latest`, path.join(dir, 'arm'), 'arm64'), (err: unknown) => {
        assert.ok(err instanceof CommandError);
        assert.match(err.result.stderr, /arm64/);
        return true;
      });
    } finally {
      await removeScratchDir(dir);
    }
  });

  it('a Docker engine pulls through the index: linux/amd64 works, linux/arm64 of amdonly has no match', { timeout: 600_000 }, async () => {
    let d: Dockerd | undefined;
    try {
      d = await startDockerd();
      const amd = await d.docker(['pull', '--platform', 'linux/amd64', `${nx.host}/amdonly`], { timeoutMs: 300_000 });
      assert.equal(amd.code, 0, amd.stderr);
      assert.match(amd.stdout, new RegExp(list.digest));
      const arm = await d.docker(['pull', '--platform', 'linux/arm64', `${nx.host}/amdonly`], { timeoutMs: 300_000 });
      assert.notEqual(arm.code, 0);
      assert.match(arm.stderr, /no matching manifest|arm64/);
    } finally {
      await d?.stop();
    }
  });

  it('a platform whose build fails fails the index request with 503 naming it; nothing is cached; clients without index support still get amd64', { timeout: 600_000 }, async () => {
    const first = await get(nx, '/v2/armbroken/manifests/latest', INDEX_ACCEPT);
    assert.equal(first.res.status, 503, first.body.toString());
    const err = (JSON.parse(first.body.toString()) as { errors: { code: string; detail?: unknown }[] }).errors[0];
    assert.equal(err?.code, 'UNAVAILABLE');
    assert.match(JSON.stringify(err?.detail), /aarch64/, 'the cause names the aarch64 build');
    assert.ok(await logged(nx, (x) => x.msg === 'a platform of the image index failed: no index' && x.platform === 'linux/arm64'));
    const single = await get(nx, '/v2/armbroken/manifests/latest', T.dockerManifest);
    assert.equal(single.res.status, 200);
    assert.equal(single.doc().mediaType, T.dockerManifest);
    const again = await get(nx, '/v2/armbroken/manifests/latest', `${T.ociIndex}, ${T.ociManifest}`);
    assert.equal(again.res.status, 503, 'a failed index is not cached as an index');
  });

  it('the arm64/ prefix is one aarch64 image, never an index (amdonly: 404 there)', async () => {
    const r = await get(nx, '/v2/arm64/amdonly/manifests/latest', INDEX_ACCEPT);
    assert.equal(r.res.status, 404);
    assert.equal((JSON.parse(r.body.toString()) as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_UNKNOWN');
    const a = await get(nx, '/v2/amd64/amdonly/manifests/latest', INDEX_ACCEPT);
    assert.equal(a.res.headers.get('content-type'), T.dockerManifest);
    assert.equal(a.res.headers.get('docker-content-digest'), docker.digest);
  });

  it('no stored index names a manifest that does not exist', async () => {
    const dir = path.join(nx.storagePath, 'manifests');
    const stored = new Set(await readdir(dir));
    let indexes = 0;
    for (const f of stored) {
      const doc = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as Doc;
      if (!doc.manifests) continue;
      indexes++;
      for (const m of doc.manifests) assert.ok(stored.has(m.digest.slice('sha256:'.length)), `${f} names ${m.digest}`);
    }
    assert.equal(indexes, 2, 'the amdonly list and index; none for armbroken');
  });
});

describe('a configured platform with no worker (issue 13)', () => {
  let nx: NixeryInstance;
  let pkgs: PackageSetCopy;
  before(async () => {
    pkgs = await platformPackageSet();
    // Only an x86_64-linux worker: nothing takes the arm64 jobs.
    nx = await startNixery({ ...pkgs.env, NIXERY_PLATFORMS: 'linux/amd64,linux/arm64', NIXERY_WORKER_SYSTEMS: 'x86_64-linux', NIXERY_POPCOUNT_SCHEDULE: 'off', NIXERY_BUILD_WAIT: '6' });
  });
  after(async () => {
    await nx?.stop();
    await pkgs?.remove();
  });

  it('an index request is 503 naming the system once the build wait ends; clients without index support get amd64; no index is stored', { timeout: 600_000 }, async () => {
    // The amd64 image first (a cold build may outlast the short wait: then it is there on a later try).
    let single: Awaited<ReturnType<typeof get>> | undefined;
    for (let i = 0; i < 40 && single?.res.status !== 200; i++) single = await get(nx, '/v2/amdonly/manifests/latest', T.dockerManifest);
    assert.equal(single?.res.status, 200);
    const r = await get(nx, '/v2/amdonly/manifests/latest', INDEX_ACCEPT);
    assert.equal(r.res.status, 503, r.body.toString());
    const err = (JSON.parse(r.body.toString()) as { errors: { code: string; detail?: { system?: string } }[] }).errors[0];
    assert.equal(err?.code, 'UNAVAILABLE');
    assert.equal(err?.detail?.system, 'aarch64-linux');
    assert.ok(r.res.headers.get('retry-after'));
    const stored = await readdir(path.join(nx.storagePath, 'manifests'));
    for (const f of stored) assert.equal((JSON.parse(await readFile(path.join(nx.storagePath, 'manifests', f), 'utf8')) as Doc).manifests, undefined, `${f} is no index`);
  });
});

describe('a multi-platform image built on both systems, aarch64 under qemu (issue 13)', { timeout: 2 * ARM_BUILD_S * 1000 }, () => {
  const whyNot = noEmulation();
  let nx: NixeryInstance;
  // The bundled set and nothing but NIXERY_PLATFORMS: the embedded worker takes both systems.
  before(async () => {
    if (!whyNot) nx = await startNixery({ NIXERY_PLATFORMS: 'linux/amd64,linux/arm64', NIX_TIMEOUT: String(ARM_BUILD_S), NIXERY_BUILD_WAIT: String(ARM_BUILD_S), NIXERY_POPCOUNT_SCHEDULE: 'off' });
  });
  after(() => nx?.stop());

  let entries: Descriptor[] = [];
  it('an index Accept gets both platforms, each a manifest that exists, the arm64 one an arm64 image; by digest too, GET = HEAD', { timeout: ARM_BUILD_S * 1000 }, async (t) => {
    if (whyNot) return t.skip(whyNot);
    const l = await get(nx, '/v2/shell/hello/manifests/latest', INDEX_ACCEPT);
    assert.equal(l.res.status, 200, l.body.toString());
    assert.equal(l.res.headers.get('content-type'), T.dockerList);
    entries = l.doc().manifests ?? [];
    assert.deepEqual(entries.map((e) => e.platform), [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }]);
    for (const [i, e] of entries.entries()) {
      const m = await get(nx, `/v2/shell/hello/manifests/${e.digest}`);
      assert.equal(m.res.status, 200);
      assert.equal(m.res.headers.get('content-type'), T.dockerManifest);
      const config = await fetch(`${nx.url}/v2/shell/hello/blobs/${m.doc().config!.digest}`).then((r) => r.json() as Promise<{ architecture: string }>);
      assert.equal(config.architecture, ['amd64', 'arm64'][i]);
    }
    const i = await get(nx, '/v2/shell/hello/manifests/latest', `${T.ociIndex}, ${T.ociManifest}`);
    assert.equal(i.res.headers.get('content-type'), T.ociIndex);
    const ociEntries = i.doc().manifests ?? [];
    assert.deepEqual(ociEntries.map((e) => e.mediaType), [T.ociManifest, T.ociManifest]);
    for (const ref of ['latest', l.res.headers.get('docker-content-digest')!, i.res.headers.get('docker-content-digest')!]) {
      const g = await get(nx, `/v2/shell/hello/manifests/${ref}`, INDEX_ACCEPT);
      const h = await get(nx, `/v2/shell/hello/manifests/${ref}`, INDEX_ACCEPT, 'HEAD');
      assert.equal(g.res.status, 200);
      assert.deepEqual(heads(h.res), heads(g.res), ref);
    }
    // A client without index support: the host's platform (amd64 here).
    const single = await get(nx, '/v2/shell/hello/manifests/latest', T.dockerManifest);
    assert.equal(single.res.headers.get('docker-content-digest'), entries[0]?.digest);
    // arm64/ stays the single aarch64 image: the index's arm64 entry.
    const prefixed = await get(nx, '/v2/arm64/shell/hello/manifests/latest', INDEX_ACCEPT);
    assert.equal(prefixed.res.headers.get('docker-content-digest'), entries[1]?.digest);
  });

  it('skopeo inspect --raw shows the index; copy --override-arch arm64 takes the arm64 image with an aarch64 hello', { timeout: ARM_BUILD_S * 1000 }, async (t) => {
    if (whyNot) return t.skip(whyNot);
    const raw = (await skopeoInspect(`${nx.host}/shell/hello:latest`, { mode: 'raw' })) as Doc;
    assert.equal(raw.mediaType, T.dockerList);
    assert.deepEqual(raw.manifests?.map((m) => m.digest), entries.map((e) => e.digest));
    const dir = await makeScratchDir('nixery-oci-arm-');
    try {
      await skopeoCopyToOciForArch(`${nx.host}/shell/hello:latest`, path.join(dir, 'arm'), 'arm64');
      const layout = await verifyOciLayout(path.join(dir, 'arm'));
      assert.deepEqual(layout.problems, []);
      const arm = await get(nx, `/v2/shell/hello/manifests/${entries[1]!.digest}`);
      assert.deepEqual(layout.images.flatMap((img) => img.manifest.layers.map((x) => x.digest)), arm.doc().layers?.map((x) => x.digest));
      const bundle = await umociUnpack(path.join(dir, 'arm'), 'latest', path.join(dir, 'bundle'));
      const hello = path.join(bundle.rootfs, (await readlink(path.join(bundle.rootfs, 'bin', 'hello'))).replace(/^\//, ''));
      const head = await readFile(hello);
      assert.equal(head.readUInt16LE(18), 183, 'bin/hello is an aarch64 ELF (e_machine 183)');
    } finally {
      await removeScratchDir(dir);
    }
  });

  it('a Docker engine pulls the tag with --platform linux/arm64 through the index and runs hello under qemu', { timeout: ARM_BUILD_S * 1000 }, async (t) => {
    if (whyNot) return t.skip(whyNot);
    const d = await startDockerd();
    try {
      const ref = `${nx.host}/shell/hello`;
      const pull = await d.docker(['pull', '--platform', 'linux/arm64', ref], { timeoutMs: 600_000 });
      assert.equal(pull.code, 0, pull.stderr);
      assert.equal((await d.docker(['image', 'inspect', '--format', '{{.Architecture}}', ref])).stdout.trim(), 'arm64');
      // hello, then the machine the emulated container sees.
      const run = await d.docker(['run', '--rm', '--network', 'none', '--platform', 'linux/arm64', ref, 'bash', '-c', 'hello && uname -m'], { timeoutMs: 120_000 });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.stdout.trim().split('\n'), ['Hello, world!', 'aarch64']);
    } finally {
      await d.stop();
    }
  });

  it('containerd (ctr) pulls the index with --platform linux/arm64 and runs hello under qemu', { timeout: ARM_BUILD_S * 1000 }, async (t) => {
    if (whyNot) return t.skip(whyNot);
    const c = await startContainerd();
    try {
      const ref = `${nx.host}/shell/hello:latest`;
      const pull = await c.ctr(['images', 'pull', '--plain-http', '--platform', 'linux/arm64', ref], { timeoutMs: 600_000 });
      assert.equal(pull.code, 0, pull.stderr);
      const run = await c.ctr(['run', '--rm', '--platform', 'linux/arm64', ref, `arm-${process.pid}`, 'bash', '-c', 'hello && uname -m'], { timeoutMs: 120_000 });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.stdout.trim().split('\n'), ['Hello, world!', 'aarch64']);
    } finally {
      await c.stop();
    }
  });
});
