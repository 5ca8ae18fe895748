/**
 * `nixery build` and `nixery push` (issue 17), end to end with real parts:
 * real Nix builds of the bundled set, skopeo and umoci on the OCI layout, a
 * Docker engine loading the archive and pulling what was pushed, Debian's
 * docker-registry as the push target (uploads counted in its access log),
 * with htpasswd basic authentication, and the registry itself (npm start's
 * entry) for the digest comparison. The CLI runs as its built file.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildBundled, closureOf, serveStatic, type StaticServer } from '../helpers/binary-cache';
import { aarch64SkipReason } from '../helpers/aarch64';
import { umociUnpack, verifyOciLayout } from '../helpers/clients';
import { copyPackageSet } from '../helpers/pkgset';
import { type Dockerd, startDockerd } from '../helpers/dockerd';
import { REPO, startNixery } from '../helpers/nixery';
import { makeScratchDir, removeScratchDir, run, runChecked, waitFor } from '../helpers/proc';
import { type PushRegistry, startPushRegistry, startTokenIssuer, tokenAuthConfig } from '../helpers/push-registry';

const CLI = path.join(REPO, 'apps/cli/bin/nixery.js');
const DOCKER_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Runs the CLI as `node <built file>`; stdin closed, stdout and stderr pipes (so not a terminal). */
function nixery(args: string[], env: Record<string, string> = {}) {
  return run(process.execPath, [CLI, ...args], { env: { NIXERY_POPCOUNT_SCHEDULE: 'off', ...env }, timeoutMs: 600_000 });
}

type Manifest = { config: { digest: string }; layers: { digest: string; size: number }[] };

describe('nixery build / nixery push', () => {
  let scratch: string;
  let popularity: StaticServer;
  let popularityFile: string;
  let docker: Dockerd;
  let target: PushRegistry;

  before(async () => {
    scratch = await makeScratchDir('nixery-cli-');
    // One popularity table for the CLI (a file) and the registry (NIX_POPULARITY_URL): every path of hello's closure popular.
    const { hello } = await buildBundled(['hello']);
    const names = (await closureOf([hello!])).map((p) => path.basename(p).slice(33));
    const table = JSON.stringify(Object.fromEntries(names.map((n) => [n, 500])));
    popularityFile = path.join(scratch, 'popularity.json');
    await writeFile(popularityFile, table);
    popularity = await serveStatic({ routes: { '/popularity.json': table } });
    docker = await startDockerd();
    target = await startPushRegistry();
  });
  after(async () => {
    await target?.stop();
    await docker?.stop();
    await popularity?.close();
    if (scratch) await removeScratchDir(scratch);
  });

  it('builds an OCI layout that skopeo copies and umoci unpacks; progress is plain lines on a pipe', async () => {
    const out = path.join(scratch, 'hello.oci');
    const r = await nixery(['build', 'hello', '-o', out, '--popularity', popularityFile]);
    assert.equal(r.code, 0, r.stderr);
    const digest = r.stdout.trim();
    assert.match(digest, /^sha256:[0-9a-f]{64}$/);
    assert.ok(!r.stderr.includes('\r'), 'no bar redrawn in place when stderr is not a terminal');
    assert.match(r.stderr, /^nixery: packing \d+\/\d+ layers$/m);
    assert.match(r.stderr, /^nixery: evaluating$/m);
    const report = await verifyOciLayout(out);
    assert.deepEqual(report.problems, []);
    const index = JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0]!.digest, digest, 'stdout names the manifest the layout holds');
    const copied = path.join(scratch, 'hello-copied.tar');
    await runChecked('skopeo', ['--insecure-policy', 'copy', `oci:${out}:latest`, `docker-archive:${copied}:hello:latest`], { timeoutMs: 300_000 });
    assert.ok(existsSync(copied));
    const bundle = await umociUnpack(out, 'latest', path.join(scratch, 'bundle'));
    assert.ok(lstatSync(path.join(bundle.rootfs, 'bin/hello')).isSymbolicLink(), 'bin/hello is in the image');
  });

  it('builds a docker archive that a Docker engine loads and runs', async () => {
    const out = path.join(scratch, 'hello.tar');
    const r = await nixery(['build', 'hello', '--format', 'docker-archive', '-o', out, '--tag', 'ci', '--popularity', popularityFile]);
    assert.equal(r.code, 0, r.stderr);
    const load = await docker.docker(['load', '-i', out], { timeoutMs: 300_000 });
    assert.match(load.stdout, /hello:ci/);
    const ran = await docker.docker(['run', '--rm', '--network', 'none', 'hello:ci', 'hello'], { timeoutMs: 120_000 });
    assert.equal(ran.stdout.trim(), 'Hello, world!');
  });

  it('builds for linux/arm64 (qemu here): a Docker engine loads it and runs its aarch64 hello', { skip: aarch64SkipReason() ?? false }, async () => {
    const out = path.join(scratch, 'hello-arm64.tar');
    // A `slow` nobody has built: Nix must really build an aarch64-linux derivation here (extra-platforms, qemu).
    const pkgs = await copyPackageSet({ slowSeconds: 0 });
    const r = await nixery(['build', 'hello/slow', '--platform', 'linux/arm64', '--format', 'docker-archive', '-o', out, '--tag', 'arm64', '--popularity', popularityFile], pkgs.env).finally(
      () => pkgs.remove(),
    );
    assert.equal(r.code, 0, r.stderr);
    const load = await docker.docker(['load', '-i', out], { timeoutMs: 300_000 });
    assert.match(load.stdout, /hello\/slow:arm64/);
    const arch = await docker.docker(['image', 'inspect', '--format', '{{.Architecture}}', 'hello/slow:arm64']);
    assert.equal(arch.stdout.trim(), 'arm64');
    const ran = await docker.docker(['run', '--rm', '--network', 'none', '--platform', 'linux/arm64', 'hello/slow:arm64', 'hello'], { timeoutMs: 300_000 });
    assert.equal(ran.stdout.trim(), 'Hello, world!', ran.stderr);
  });

  it('gives the digest the registry serves for the same name, source and popularity table', async () => {
    const nx = await startNixery({ NIX_POPULARITY_URL: `${popularity.url}/popularity.json`, NIXERY_POPCOUNT_SCHEDULE: 'off' });
    try {
      const res = await fetch(`${nx.url}/v2/hello/manifests/latest`, { headers: { Accept: DOCKER_V2 } });
      assert.equal(res.status, 200, await res.clone().text());
      const served = res.headers.get('docker-content-digest');
      const servedManifest = (await res.json()) as Manifest;
      const archive = path.join(scratch, 'hello-digest.tar');
      const r = await nixery(['build', 'hello', '--format', 'docker-archive', '-o', archive], { NIX_POPULARITY_URL: `${popularity.url}/popularity.json` });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), served, 'the Docker schema 2 manifest is byte for byte the registry\'s');
      // The OCI layout holds the OCI variant: the registry's answer for an OCI Accept, digest for digest.
      const ociRes = await fetch(`${nx.url}/v2/hello/manifests/latest`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(ociRes.status, 200);
      assert.equal(ociRes.headers.get('content-type'), OCI_MANIFEST);
      const ociServed = (await ociRes.json()) as Manifest;
      const layout = path.join(scratch, 'hello-digest.oci');
      const o = await nixery(['build', 'hello', '-o', layout], { NIX_POPULARITY_URL: `${popularity.url}/popularity.json` });
      assert.equal(o.code, 0, o.stderr);
      assert.equal(o.stdout.trim(), ociRes.headers.get('docker-content-digest'));
      assert.notEqual(o.stdout.trim(), served, 'two variants, two digests');
      assert.equal(ociServed.config.digest, servedManifest.config.digest, 'the same config blob');
      assert.deepEqual(ociServed.layers.map((l) => l.digest), servedManifest.layers.map((l) => l.digest), 'the same layer blobs');
    } finally {
      await nx.stop();
    }
  });

  it('--popularity local counts the set as the registry\'s popularity job does: the same digest for shell/hello', async () => {
    const nx = await startNixery(); // npm start's default: a popularity run at start-up, its table in Redis
    try {
      const counted = await waitFor(async () => (await readFile(nx.logFile, 'utf8')).includes('popcount: published a popularity table'), { timeoutMs: 600_000 });
      assert.ok(counted, 'the registry counted its package set');
      const res = await fetch(`${nx.url}/v2/shell/hello/manifests/latest`, { headers: { Accept: DOCKER_V2 } });
      assert.equal(res.status, 200, await res.clone().text());
      const r = await nixery(['build', 'shell/hello', '--format', 'docker-archive', '-o', path.join(scratch, 'shell-hello.tar'), '--popularity', 'local']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), res.headers.get('docker-content-digest'));
    } finally {
      await nx.stop();
    }
  });

  it('pushes to docker-registry (chunked), a Docker engine pulls and runs it; a second push uploads only new blobs', async () => {
    const first = await nixery(['push', 'hello', `${target.host}/demo:one`, '--chunk-size', '65536', '--popularity', popularityFile]);
    assert.equal(first.code, 0, first.stderr);
    assert.ok((await target.requests('PATCH', '/v2/demo/blobs/uploads/')) > 0, 'big layers went in chunks');
    const pulled = await docker.docker(['pull', `${target.host}/demo:one`], { timeoutMs: 300_000 });
    assert.match(pulled.stdout, new RegExp(first.stdout.trim()));
    const ran = await docker.docker(['run', '--rm', '--network', 'none', `${target.host}/demo:one`, 'hello'], { timeoutMs: 120_000 });
    assert.equal(ran.stdout.trim(), 'Hello, world!');

    const one = (await (await fetch(`http://${target.host}/v2/demo/manifests/one`, { headers: { Accept: DOCKER_V2 } })).json()) as Manifest;
    const uploadsBefore = await target.requests('POST', '/v2/demo/blobs/uploads/');
    const second = await nixery(['push', 'hello/jq', `${target.host}/demo:two`, '--popularity', popularityFile]);
    assert.equal(second.code, 0, second.stderr);
    const two = (await (await fetch(`http://${target.host}/v2/demo/manifests/two`, { headers: { Accept: DOCKER_V2 } })).json()) as Manifest;
    const had = new Set([one.config.digest, ...one.layers.map((l) => l.digest)]);
    const blobsOfTwo = [two.config.digest, ...two.layers.map((l) => l.digest)];
    const fresh = blobsOfTwo.filter((d) => !had.has(d));
    assert.ok(fresh.length < blobsOfTwo.length, 'the images share layers');
    assert.equal((await target.requests('POST', '/v2/demo/blobs/uploads/')) - uploadsBefore, fresh.length, 'only the new blobs were uploaded');
    const skippedBytes = two.layers.filter((l) => had.has(l.digest)).reduce((n, l) => n + l.size, 0);
    assert.match(second.stderr, new RegExp(`skipped ${skippedBytes} bytes in ${blobsOfTwo.length - fresh.length} blobs`));
  });

  it('pushes with basic auth to an htpasswd docker-registry (--creds and the Docker config file); wrong credentials show the status and body', async () => {
    const secured = await startPushRegistry({ htpasswd: { user: 'ci', password: 's3cret' } });
    try {
      const layout = path.join(scratch, 'hello.oci');
      const ok = await nixery(['push', 'hello', `${secured.host}/private:latest`, '--from', layout, '--creds', 'ci:s3cret']);
      assert.equal(ok.code, 0, ok.stderr);
      const head = await fetch(`http://${secured.host}/v2/private/manifests/latest`, {
        method: 'HEAD',
        headers: { Authorization: `Basic ${Buffer.from('ci:s3cret').toString('base64')}`, Accept: OCI_MANIFEST },
      });
      assert.equal(head.headers.get('docker-content-digest'), ok.stdout.trim());

      const dockerConfig = path.join(scratch, 'docker-config');
      await mkdir(dockerConfig, { recursive: true });
      await writeFile(path.join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from('ci:s3cret').toString('base64') } } }));
      const viaConfig = await nixery(['push', 'hello', `${secured.host}/private:again`, '--from', layout], { DOCKER_CONFIG: dockerConfig });
      assert.equal(viaConfig.code, 0, viaConfig.stderr);
      assert.match(viaConfig.stderr, /skipped \d+ bytes in \d+ blobs/);

      const refused = await nixery(['push', 'hello', `${secured.host}/private:latest`, '--from', layout, '--creds', 'ci:wrong']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /401/);
      assert.match(refused.stderr, /UNAUTHORIZED/);
      const anonymous = await nixery(['push', 'hello', `${secured.host}/private:latest`, '--from', layout], { DOCKER_CONFIG: path.join(scratch, 'none') });
      assert.equal(anonymous.code, 1);
      assert.match(anonymous.stderr, /--creds/);
    } finally {
      await secured.stop();
    }
  });

  it('pushes with token auth: a token for the push scope from the challenge\'s realm, with the credentials', async () => {
    const issuer = await startTokenIssuer(scratch, { user: 'ci', password: 't0ken' });
    const secured = await startPushRegistry({ auth: tokenAuthConfig(issuer) });
    try {
      const layout = path.join(scratch, 'hello.oci');
      const ok = await nixery(['push', 'hello', `${secured.host}/tokened:latest`, '--from', layout, '--creds', 'ci:t0ken']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.ok(issuer.requests.some((r) => r.authorized && r.scope === 'repository:tokened:pull,push'), JSON.stringify(issuer.requests));
      assert.ok((await secured.requests('PUT', '/v2/tokened/manifests/latest')) > 0);
      const refused = await nixery(['push', 'hello', `${secured.host}/tokened:latest`, '--from', layout, '--creds', 'ci:wrong']);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /token service refused: 401 .*wrong credentials/);
    } finally {
      await secured.stop();
      await issuer.close();
    }
  });

  it('draws a progress bar on a terminal', async () => {
    const out = path.join(scratch, 'hello-tty.oci');
    const cmd = [process.execPath, CLI, 'build', 'hello', '-o', out, '--popularity', popularityFile].map((w) => `'${w}'`).join(' ');
    const r = await run('script', ['-qec', cmd, '/dev/null'], { env: { NIXERY_POPCOUNT_SCHEDULE: 'off' }, timeoutMs: 600_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /\r\x1b\[2Kpacking \[#*\.*\] \d+\/\d+ layers/);
  });

  it('a registry that refuses: its status and error body are shown, exit 1', async () => {
    const readOnly = await startPushRegistry({ readOnly: true });
    try {
      const r = await nixery(['push', 'hello', `${readOnly.host}/demo:latest`, '--from', path.join(scratch, 'hello.oci')]);
      assert.equal(r.code, 1);
      // distribution's read-only mode answers a plain-text body; the CLI shows whatever body the registry sends.
      assert.match(r.stderr, /the registry refused POST \/v2\/demo\/blobs\/uploads\/: 405 Method Not Allowed: Method not allowed$/m);
    } finally {
      await readOnly.stop();
    }
  });

  it('runs as `npx nixery` (the root package\'s bin) and as node on the built file; a bad command line exits 2', async () => {
    const viaNpx = await run('npx', ['--no-install', 'nixery', '--help'], { cwd: REPO, timeoutMs: 120_000 });
    assert.equal(viaNpx.code, 0, viaNpx.stderr);
    assert.match(viaNpx.stderr, /nixery build NAME/);
    const built = await run(process.execPath, [path.join(REPO, 'apps/cli/dist/main.js'), 'build'], { timeoutMs: 120_000 });
    assert.equal(built.code, 2);
    assert.match(built.stderr, /usage:/);
  });

  it('an unknown package is named and the exit code is non-zero', async () => {
    const r = await nixery(['build', 'hello/nosuchpackage', '-o', path.join(scratch, 'bad.oci'), '--popularity', 'none']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown packages: nosuchpackage/);
    assert.equal(r.stdout, '');
    assert.ok(!existsSync(path.join(scratch, 'bad.oci')), 'nothing half-written');
  });
});
