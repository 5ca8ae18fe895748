import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkNixBuilds, systemSupport, withExtraPlatforms } from '../../libs/shared/src/nix';
import { loadConfig } from '../../libs/shared/src/config/config';

/** A fake binfmt_misc directory and arm64 tree: `entry` is the qemu-aarch64 file's text (none: no entry). */
function machine(entry?: string, busybox = true): { binfmtDir: string; arm64Root: string; host: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'platforms-'));
  const binfmtDir = join(dir, 'binfmt');
  const arm64Root = join(dir, 'root');
  mkdirSync(binfmtDir);
  mkdirSync(join(arm64Root, 'bin'), { recursive: true });
  if (entry !== undefined) writeFileSync(join(binfmtDir, 'qemu-aarch64'), entry);
  if (busybox) writeFileSync(join(arm64Root, 'bin', 'busybox'), '');
  return { binfmtDir, arm64Root, host: 'x86_64-linux', done: () => rmSync(dir, { recursive: true, force: true }) };
}

const ENABLED = 'enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\n';

test('the host system is built natively, aarch64 through a registered qemu-aarch64', () => {
  const m = machine(ENABLED);
  try {
    assert.deepEqual(systemSupport('x86_64-linux', m), { ok: true, emulated: false });
    assert.deepEqual(systemSupport('aarch64-linux', m), { ok: true, emulated: true });
  } finally {
    m.done();
  }
});

test('aarch64 is refused, with the reason, without binfmt entry, with a disabled one, or without the arm64 tree', () => {
  for (const [m, why] of [
    [machine(), /no qemu-aarch64 entry/],
    [machine('disabled\ninterpreter /x\n'), /disabled/],
    [machine(ENABLED, false), /arm64 tree .* is missing/],
  ] as const) {
    try {
      const s = systemSupport('aarch64-linux', m);
      assert.equal(s.ok, false);
      if (!s.ok) assert.match(s.reason, why);
    } finally {
      m.done();
    }
  }
});

test('the self-check refuses a system the machine cannot build, naming it, before Nix runs', async () => {
  const m = machine();
  try {
    // nixBuild names no program: the refusal must come before any Nix command.
    const h = await checkNixBuilds({ options: [], env: {} }, { systems: ['x86_64-linux', 'aarch64-linux'], paths: m, nixBuild: '/nonexistent/nix-build' });
    assert.equal(h.ok, false);
    if (!h.ok) assert.match(h.cause, /^this machine cannot build aarch64-linux: the kernel runs no aarch64 programs/);
  } finally {
    m.done();
  }
});

test('extra-platforms goes before the other NIX_CONFIG lines, only for emulated systems', () => {
  const nix = { options: [], env: { NIX_CONFIG: 'sandbox = false' } };
  assert.equal(withExtraPlatforms(nix, []), nix);
  assert.equal(withExtraPlatforms(nix, ['aarch64-linux']).env.NIX_CONFIG, 'extra-platforms = aarch64-linux\nsandbox = false');
});

test('NIXERY_PLATFORMS gives the platforms and, unless NIXERY_WORKER_SYSTEMS is set, the worker systems', () => {
  const both = loadConfig({ NIXERY_PLATFORMS: 'linux/amd64, linux/arm64,linux/arm64/v8' });
  assert.deepEqual(both.platforms, ['x86_64-linux', 'aarch64-linux']);
  assert.deepEqual(both.workerSystems, ['x86_64-linux', 'aarch64-linux']);
  assert.equal(both.workerSystemsFrom, 'NIXERY_PLATFORMS');
  const own = loadConfig({ NIXERY_PLATFORMS: 'linux/amd64,linux/arm64', NIXERY_WORKER_SYSTEMS: 'aarch64-linux' });
  assert.deepEqual(own.workerSystems, ['aarch64-linux']);
  assert.equal(own.workerSystemsFrom, 'NIXERY_WORKER_SYSTEMS');
  assert.equal(loadConfig({}).platforms.length, 1);
  assert.throws(() => loadConfig({ NIXERY_PLATFORMS: 'linux/riscv64' }), /NIXERY_PLATFORMS: unsupported platform "linux\/riscv64"/);
  assert.throws(() => loadConfig({ NIXERY_PLATFORMS: ' , ' }), /no platform given/);
});
