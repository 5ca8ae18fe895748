/**
 * End to end with real registry clients against a single-node Nixery:
 * skopeo + umoci, a real Docker engine, and containerd's ctr.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { skopeoCopyToOci, skopeoInspect, umociUnpack, verifyOciLayout } from '../helpers/clients';
import { startContainerd } from '../helpers/containerd';
import { startDockerd } from '../helpers/dockerd';
import { type NixeryInstance, startNixery } from '../helpers/nixery';
import { makeScratchDir, removeScratchDir } from '../helpers/proc';

describe('real registry clients', () => {
  let nx: NixeryInstance;
  let scratch: string;
  before(async () => {
    nx = await startNixery();
    scratch = await makeScratchDir('nixery-e2e-');
  });
  after(async () => {
    await nx?.stop();
    if (scratch) await removeScratchDir(scratch);
  });

  it('skopeo copies shell/hello to an OCI layout; blobs match digests; rootfs has bin/hello', async () => {
    const oci = path.join(scratch, 'oci');
    await skopeoCopyToOci(`${nx.host}/shell/hello:latest`, oci);
    const report = await verifyOciLayout(oci);
    assert.deepEqual(report.problems, []);
    assert.ok(report.blobCount >= 3);
    const bundle = path.join(scratch, 'bundle');
    const { rootfs } = await umociUnpack(oci, 'latest', bundle);
    const hello = path.join(rootfs, 'bin/hello');
    assert.ok(lstatSync(hello).isSymbolicLink(), 'bin/hello is a symlink into the store');
    const target = readlinkSync(hello);
    assert.match(target, /^\/nix\/store\/[a-z0-9]{32}-hello[^/]*\/bin\/hello$/);
    assert.ok(existsSync(path.join(rootfs, target)), 'the store path it points at is in the image');
    assert.ok(existsSync(path.join(rootfs, 'bin/bash')));
    assert.ok(existsSync(path.join(rootfs, 'etc/ssl/certs/ca-bundle.crt')));
    assert.ok(lstatSync(path.join(rootfs, 'tmp')).isDirectory());
    assert.ok(lstatSync(path.join(rootfs, 'usr/bin/env')).isSymbolicLink());
  });

  it('skopeo inspect works and reports the architecture', async () => {
    const info = (await skopeoInspect(`${nx.host}/shell/hello:latest`)) as { Architecture: string; Os: string; Layers: string[] };
    assert.equal(info.Architecture, 'amd64');
    assert.equal(info.Os, 'linux');
    assert.ok(info.Layers.length >= 2);
  });

  it('a Docker engine pulls shell/hello and runs it; curl and jq run in shell/curl/jq', async () => {
    const d = await startDockerd();
    try {
      const pull = await d.docker(['pull', `${nx.host}/shell/hello`], { timeoutMs: 300_000 });
      assert.equal(pull.code, 0, pull.stderr);
      const run = await d.docker(['run', '--rm', '--network', 'none', `${nx.host}/shell/hello`, 'hello']);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.trim(), 'Hello, world!');
      const cj = await d.docker(
        ['run', '--rm', '--network', 'none', `${nx.host}/shell/curl/jq`, 'sh', '-c', 'curl --version; jq --version'],
        { timeoutMs: 300_000 },
      );
      assert.equal(cj.code, 0, cj.stderr);
      assert.match(cj.stdout, /^curl \d/m);
      assert.match(cj.stdout, /^jq-\d/m);
      const sh = await d.docker(['run', '--rm', '--network', 'none', `${nx.host}/shell`, 'bash', '-c', 'test -d /tmp && test -n "$SSL_CERT_FILE" && test -r "$SSL_CERT_FILE" && echo certs-ok']);
      assert.equal(sh.code, 0, sh.stderr);
      assert.match(sh.stdout, /certs-ok/);
    } finally {
      await d.stop();
    }
  });

  it('containerd (ctr) pulls with narrowed Accept headers and runs hello', async () => {
    const c = await startContainerd();
    try {
      const ref = `${nx.host}/shell/hello:latest`;
      const pull = await c.ctr(['images', 'pull', '--plain-http', ref], { timeoutMs: 300_000 });
      assert.equal(pull.code, 0, pull.stderr);
      const run = await c.ctr(['run', '--rm', ref, `hello-${process.pid}`, 'hello']);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.trim(), 'Hello, world!');
    } finally {
      await c.stop();
    }
  });
});
