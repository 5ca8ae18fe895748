/**
 * arm64 images from this x86-64 machine, end to end (issue 13): `npm start`
 * with NIXERY_PLATFORMS=linux/amd64,linux/arm64 and nothing else; the
 * embedded worker builds aarch64-linux through qemu user emulation. skopeo
 * reads the image config; a real Docker engine pulls with --platform
 * linux/arm64 and runs `hello` under emulation. Nixery runs on an empty Nix
 * store of its own (helpers/private-nix.ts), so the arm64 build is cold every
 * time and its duration is the figure the README quotes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { skopeoInspect } from '../helpers/clients';
import { startDockerd } from '../helpers/dockerd';
import { type NixeryInstance, readLogLines, startNixery } from '../helpers/nixery';
import { type PrivateNix, makePrivateNix } from '../helpers/private-nix';
import { systemSupport } from '../../libs/shared/src/nix';

/** Cold aarch64 builds run every builder under emulation. */
const BUILD_S = 900;

describe('arm64 images built here through qemu', { timeout: 2 * BUILD_S * 1000 }, () => {
  const support = systemSupport('aarch64-linux');
  // Only a kernel that refuses binfmt_misc is a reason to skip; a missing arm64 tree is a set-up bug.
  const whyNot = !support.ok && /binfmt_misc/.test(support.reason) ? support.reason : null;
  let nx: NixeryInstance;
  let priv: PrivateNix;
  before(async () => {
    if (whyNot) return;
    priv = await makePrivateNix();
    // NIXERY_PLATFORMS is all an operator sets; the start-up popularity count is off only so
    // that the cold arm64 build is measured alone (it would build the whole amd64 set meanwhile).
    nx = await startNixery({ NIXERY_PLATFORMS: 'linux/amd64,linux/arm64', NIXERY_POPCOUNT_SCHEDULE: 'off' }, { wrap: priv.wrap });
  });
  after(async () => {
    await nx?.stop();
    await priv?.remove();
  });

  it('the embedded worker takes both systems, aarch64 through emulation', async (t) => {
    if (whyNot) return t.skip(whyNot);
    const lines = await readLogLines<{ level: number; msg: string; time: number; systems?: string[] }>(nx.logFile);
    const started = lines.find((l) => l.msg === 'build worker started');
    assert.deepEqual(started?.systems, ['x86_64-linux', 'aarch64-linux']);
  });

  /** The first pull of `name` (a cold build) with skopeo: its image config, and the build's and the pull's durations. */
  async function coldPull(name: string): Promise<{ config: { architecture: string; os: string }; buildMs?: number; pullMs: number }> {
    const t0 = Date.now();
    const config = (await skopeoInspect(`${nx.host}/${name}:latest`, { mode: 'config', timeoutMs: BUILD_S * 1000 })) as { architecture: string; os: string };
    const pullMs = Date.now() - t0;
    const lines = await readLogLines<{ level: number; msg: string; time: number; image?: string; durationMs?: number }>(nx.logFile);
    const buildMs = lines.find((l) => l.msg === 'build finished' && l.image === name)?.durationMs;
    console.log(`cold ${name} on an empty store: build ${buildMs} ms, first pull ${pullMs} ms`);
    return { config, pullMs, ...(buildMs !== undefined ? { buildMs } : {}) };
  }

  it('skopeo reads an arm64 image config for arm64/shell/hello', async (t) => {
    if (whyNot) return t.skip(whyNot);
    const { config, buildMs } = await coldPull('arm64/shell/hello');
    assert.equal(config.architecture, 'arm64');
    assert.equal(config.os, 'linux');
    assert.ok(buildMs !== undefined, 'the embedded worker built it');
  });

  it('the amd64 image of the same packages is still amd64 (for comparison; skopeo takes the index, so this also builds or reuses the arm64 image)', async (t) => {
    if (whyNot) return t.skip(whyNot);
    const { config } = await coldPull('shell/hello');
    assert.equal(config.architecture, 'amd64');
  });

  it('a Docker engine pulls it with --platform linux/arm64 and runs hello under qemu', async (t) => {
    if (whyNot) return t.skip(whyNot);
    const d = await startDockerd();
    try {
      const ref = `${nx.host}/arm64/shell/hello`;
      const pull = await d.docker(['pull', '--platform', 'linux/arm64', ref], { timeoutMs: BUILD_S * 1000 });
      assert.equal(pull.code, 0, pull.stderr);
      const inspect = await d.docker(['image', 'inspect', '--format', '{{.Architecture}}', ref]);
      assert.equal(inspect.stdout.trim(), 'arm64');
      const run = await d.docker(['run', '--rm', '--network', 'none', '--platform', 'linux/arm64', ref, 'hello'], { timeoutMs: 120_000 });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.trim(), 'Hello, world!');
      // The binary really is aarch64: uname under emulation says so.
      const uname = await d.docker(['run', '--rm', '--network', 'none', '--platform', 'linux/arm64', ref, 'uname', '-m'], { timeoutMs: 120_000 });
      assert.equal(uname.stdout.trim(), 'aarch64');
    } finally {
      await d.stop();
    }
  });
});
