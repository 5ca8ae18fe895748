/**
 * Layers made of several gzip members (libs/shared/src/tarball/compress.ts)
 * read by the four real clients: the largest layer of shell/git is checked
 * to hold several members, and the biggest file in it (whose bytes span
 * member boundaries) must come out of skopeo + umoci, a Docker engine and
 * containerd with the same sha256 as in the layer.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { extract } from 'tar-stream';
import { MEMBER_SIZE } from '../../libs/shared/src/tarball';
import { skopeoCopyToOci, umociUnpack } from '../helpers/clients';
import { startContainerd } from '../helpers/containerd';
import { startDockerd } from '../helpers/dockerd';
import { gzipMembers } from '../helpers/gzip-members';
import { MANIFEST_ACCEPT, type NixeryInstance, startNixery } from '../helpers/nixery';
import { makeScratchDir, removeScratchDir } from '../helpers/proc';

const IMAGE = 'shell/git';

/** The biggest regular file of an uncompressed tar, with its sha256. */
async function biggestFile(tar: Buffer): Promise<{ name: string; size: number; sha256: string }> {
  let best = { name: '', size: -1, sha256: '' };
  const ex = extract();
  Readable.from([tar]).pipe(ex);
  for await (const entry of ex) {
    const h = createHash('sha256');
    for await (const chunk of entry) h.update(chunk as Buffer);
    if (entry.header.type === 'file' && (entry.header.size ?? 0) > best.size) {
      best = { name: entry.header.name, size: entry.header.size ?? 0, sha256: h.digest('hex') };
    }
  }
  return best;
}

describe('multi-member gzip layers with real clients', () => {
  let nx: NixeryInstance;
  let scratch: string;
  let file: { name: string; size: number; sha256: string };
  let summary = '';
  const ref = (): string => `${nx.host}/${IMAGE}:latest`;
  const sha256sum = ['sh', '-c', 'sha256sum "/$0"'];

  before(async () => {
    nx = await startNixery();
    scratch = await makeScratchDir('nixery-members-');
    const res = await fetch(`${nx.url}/v2/${IMAGE}/manifests/latest`, { headers: { accept: MANIFEST_ACCEPT }, signal: AbortSignal.timeout(600_000) });
    assert.equal(res.status, 200, await res.clone().text());
    const manifest = (await res.json()) as { layers: { digest: string; size: number }[] };
    const largest = [...manifest.layers].sort((a, b) => b.size - a.size)[0]!;
    const blob = Buffer.from(await (await fetch(`${nx.url}/v2/${IMAGE}/blobs/${largest.digest}`)).arrayBuffer());
    const members = gzipMembers(blob);
    assert.ok(members.length >= 3, `largest layer has ${members.length} gzip members`);
    assert.ok(members.slice(0, -1).every((m) => m.data.length === MEMBER_SIZE), 'every member but the last holds MEMBER_SIZE bytes');
    file = await biggestFile(Buffer.concat(members.map((m) => m.data)));
    assert.ok(file.size > MEMBER_SIZE, `the biggest file (${file.name}, ${file.size} bytes) spans a member boundary`);
    summary = `largest layer ${largest.size} bytes in ${members.length} members; biggest file ${file.name} (${file.size} bytes)`;
  });
  after(async () => {
    await nx?.stop();
    if (scratch) await removeScratchDir(scratch);
  });

  it('skopeo copies and umoci unpacks it: the biggest file is intact', async (t) => {
    t.diagnostic(summary);
    const oci = path.join(scratch, 'oci');
    await skopeoCopyToOci(ref(), oci);
    const { rootfs } = await umociUnpack(oci, 'latest', path.join(scratch, 'bundle'));
    const got = createHash('sha256').update(readFileSync(path.join(rootfs, file.name))).digest('hex');
    assert.equal(got, file.sha256);
  });

  it('a Docker engine pulls and runs it: the biggest file is intact and git runs', async () => {
    const d = await startDockerd();
    try {
      const pull = await d.docker(['pull', ref()], { timeoutMs: 300_000 });
      assert.equal(pull.code, 0, pull.stderr);
      const run = await d.docker(['run', '--rm', '--network', 'none', ref(), ...sha256sum, file.name]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.split(' ')[0], file.sha256);
      const git = await d.docker(['run', '--rm', '--network', 'none', ref(), 'git', '--version']);
      assert.equal(git.code, 0, git.stderr);
      assert.match(git.stdout, /^git version \d/);
    } finally {
      await d.stop();
    }
  });

  it('containerd (ctr) pulls and runs it: the biggest file is intact', async () => {
    const c = await startContainerd();
    try {
      const pull = await c.ctr(['images', 'pull', '--plain-http', ref()], { timeoutMs: 300_000 });
      assert.equal(pull.code, 0, pull.stderr);
      const run = await c.ctr(['run', '--rm', ref(), `members-${process.pid}`, ...sha256sum, file.name]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.split(' ')[0], file.sha256);
    } finally {
      await c.stop();
    }
  });
});
