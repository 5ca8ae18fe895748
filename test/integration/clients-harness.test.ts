/**
 * Proves the end-to-end client harness on this machine without our registry:
 * a reference registry (CNCF distribution) receives an image built offline
 * (a tarball holding a static busybox), and docker, skopeo, umoci and
 * containerd each fetch and use it.
 *
 * Needs (Debian): docker.io, containerd, runc, skopeo, umoci, docker-registry,
 * busybox-static. Run as root:
 *   node --import tsx --test test/integration/clients-harness.test.ts
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, cp, mkdir, readFile, stat, writeFile, open } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDockerd, type Dockerd } from '../helpers/dockerd';
import { startContainerd, type Containerd } from '../helpers/containerd';
import {
  skopeoCopyToOci,
  skopeoInspect,
  startDistributionRegistry,
  umociUnpack,
  verifyOciLayout,
  type DistributionRegistry,
  type OciManifest,
} from '../helpers/clients';
import { isAlive, makeScratchDir, removeScratchDir, runChecked, type RunResult } from '../helpers/proc';

const BUSYBOX = '/bin/busybox';

function ok(r: RunResult, what: string): RunResult {
  assert.equal(r.code, 0, `${what} failed (code ${r.code}, timedOut ${r.timedOut}):\n${r.stderr}\n${r.stdout}`);
  return r;
}

describe('registry client harness (reference registry, offline image)', { timeout: 600_000 }, () => {
  let registry: DistributionRegistry;
  let dockerd: Dockerd;
  let containerd: Containerd;
  let work: string;
  let image: string;
  /** Unique content baked into the image, checked after each client fetched it. */
  const marker = `harness-${process.pid}-${Date.now()}\n`;
  /** The manifest exactly as the registry serves it after `docker push`. */
  let pushedManifest: OciManifest;

  before(async () => {
    work = await makeScratchDir('nixery-harness-');
    [registry, dockerd, containerd] = await Promise.all([
      startDistributionRegistry(),
      startDockerd(),
      startContainerd(),
    ]);
    image = `${registry.host}/test/busybox:latest`;
  });

  after(async () => {
    await Promise.allSettled([registry?.stop(), dockerd?.stop(), containerd?.stop()]);
    if (work) await removeScratchDir(work);
  });

  test('docker: import an offline image, push, remove, pull back, run it', async () => {
    const root = join(work, 'rootfs');
    await mkdir(join(root, 'bin'), { recursive: true });
    await copyFile(BUSYBOX, join(root, 'bin', 'busybox'));
    await writeFile(join(root, 'marker.txt'), marker);
    const tarball = join(work, 'busybox.tar');
    await runChecked('tar', ['-C', root, '--owner=0', '--group=0', '-cf', tarball, '.']);

    ok(await dockerd.docker(['import', tarball, image]), 'docker import');
    ok(await dockerd.docker(['push', image]), 'docker push');
    ok(await dockerd.docker(['rmi', image]), 'docker rmi');
    const gone = await dockerd.docker(['image', 'inspect', image]);
    assert.notEqual(gone.code, 0, 'image should be gone locally before the pull');

    ok(await dockerd.docker(['pull', image]), 'docker pull');
    const ran = ok(
      await dockerd.docker(['run', '--rm', '--network', 'none', image, '/bin/busybox', 'echo', 'hello']),
      'docker run',
    );
    assert.equal(ran.stdout, 'hello\n');
    const cat = ok(
      await dockerd.docker(['run', '--rm', '--network', 'none', image, '/bin/busybox', 'cat', '/marker.txt']),
      'docker run cat',
    );
    assert.equal(cat.stdout, marker);

    pushedManifest = (await skopeoInspect(image, { mode: 'raw' })) as OciManifest;
    assert.equal(pushedManifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(pushedManifest.layers.length, 1);
    // The pulled image's id is the config digest the registry served.
    const id = ok(await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', image]), 'inspect');
    assert.equal(id.stdout.trim(), pushedManifest.config.digest);
  });

  test('skopeo: copy to an OCI layout whose blobs all match their digests', async () => {
    assert.ok(pushedManifest, 'needs the pushed image');
    const oci = join(work, 'oci');
    await skopeoCopyToOci(image, oci);
    const report = await verifyOciLayout(oci);
    assert.deepEqual(report.problems, []);
    assert.equal(report.images.length, 1);
    const img = report.images[0]!;
    assert.equal(img.refName, 'latest');
    // skopeo rewrites the manifest as OCI but keeps the compressed layer bytes.
    assert.equal(img.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(
      img.manifest.layers.map((l) => l.digest),
      pushedManifest.layers.map((l) => l.digest),
    );
    const config = img.config as { architecture?: string; os?: string; rootfs?: { diff_ids?: string[] } };
    assert.equal(config.os, 'linux');
    assert.equal(config.rootfs?.diff_ids?.length, 1);

    const summary = (await skopeoInspect(image)) as { Layers?: string[] };
    assert.deepEqual(summary.Layers, pushedManifest.layers.map((l) => l.digest));
  });

  test('verifyOciLayout reports a blob whose content does not match its name', async () => {
    const good = join(work, 'oci');
    const bad = join(work, 'oci-corrupt');
    await cp(good, bad, { recursive: true });
    const layer = (await verifyOciLayout(good)).images[0]!.manifest.layers[0]!;
    const path = join(bad, 'blobs', 'sha256', layer.digest.slice('sha256:'.length));
    const fh = await open(path, 'r+');
    try {
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, 100);
      b[0] = b[0]! ^ 0xff;
      await fh.write(b, 0, 1, 100);
    } finally {
      await fh.close();
    }
    const report = await verifyOciLayout(bad);
    assert.equal(report.problems.length, 1, report.problems.join('\n'));
    assert.match(report.problems[0]!, /content hashes to/);
  });

  test('umoci: unpack the OCI layout into a bundle holding the same files', async () => {
    const bundle = join(work, 'bundle');
    const { rootfs, runtimeConfig } = await umociUnpack(join(work, 'oci'), 'latest', bundle);
    assert.equal(await readFile(join(rootfs, 'marker.txt'), 'utf8'), marker);
    const [a, b] = await Promise.all([readFile(join(rootfs, 'bin', 'busybox')), readFile(BUSYBOX)]);
    assert.ok(a.equals(b), 'busybox bytes differ after unpack');
    assert.ok(((await stat(join(rootfs, 'bin', 'busybox'))).mode & 0o111) !== 0, 'busybox not executable');
    assert.equal((runtimeConfig as { ociVersion?: unknown }).ociVersion !== undefined, true);
  });

  test('containerd: ctr pulls over plain HTTP and runs the image', async () => {
    ok(await containerd.ctr(['images', 'pull', '--plain-http', image], { timeoutMs: 120_000 }), 'ctr pull');
    const list = ok(await containerd.ctr(['images', 'ls', '-q']), 'ctr images ls');
    assert.ok(list.stdout.split('\n').includes(image), list.stdout);
    const check = ok(await containerd.ctr(['images', 'check']), 'ctr images check');
    assert.match(check.stdout, /complete/);
    const id = `harness-${process.pid}`;
    const ran = ok(
      await containerd.ctr(['run', '--rm', image, id, '/bin/busybox', 'echo', 'hello'], { timeoutMs: 60_000 }),
      'ctr run',
    );
    assert.equal(ran.stdout.trim(), 'hello');
  });

  test('a second dockerd runs beside the first, sees none of its images, and stop() cleans up', async () => {
    const other = await startDockerd();
    let stopped = false;
    try {
      assert.notEqual(other.host, dockerd.host);
      const images = ok(await other.docker(['images', '-q']), 'docker images');
      assert.equal(images.stdout.trim(), '');
      const rootDir = ok(await other.docker(['info', '--format', '{{.DockerRootDir}}']), 'docker info');
      assert.equal(rootDir.stdout.trim(), join(other.dir, 'data'));
      const pid = Number((await readFile(join(other.dir, 'docker.pid'), 'utf8')).trim());
      const ctdPid = Number(
        (await readFile(join(other.dir, 'exec', 'containerd', 'containerd.pid'), 'utf8')).trim(),
      );
      assert.ok(isAlive(pid) && isAlive(ctdPid));
      await other.stop();
      stopped = true;
      assert.equal(existsSync(other.dir), false, 'scratch dir left behind');
      assert.equal(isAlive(pid), false, 'dockerd still running');
      assert.equal(isAlive(ctdPid), false, "dockerd's containerd still running");
      // The first engine is unaffected.
      ok(await dockerd.docker(['image', 'inspect', image]), 'first engine lost its image');
    } finally {
      if (!stopped) await other.stop();
    }
  });
});
