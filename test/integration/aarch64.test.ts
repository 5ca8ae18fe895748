/**
 * aarch64-linux on this x86-64 machine (issue 13): the bundled package set's
 * arm64 variant (Debian's arm64 packages, scripts/setup-arm64.sh) built by
 * Nix through `extra-platforms`, its builders and programs run by qemu user
 * emulation (binfmt_misc). `npm test`'s set-up registers the emulator; a
 * machine whose kernel refuses binfmt_misc skips with that reason.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, openSync, readSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { prepareImage, storePathsOf, systemSupport, withExtraPlatforms, type PrepareResult } from '../../libs/shared/src/nix';
import { NIX_ENV } from '../helpers/nix-env';

const REPO = resolve(__dirname, '../..');
/** A cold aarch64 build runs every builder under emulation. */
const BUILD_TIMEOUT_MS = 600_000;
const EM_AARCH64 = 183;

/** e_machine of an ELF file (little-endian, offset 18). */
function elfMachine(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(20);
    readSync(fd, head, 0, 20, 0);
    assert.equal(head.subarray(0, 4).toString('latin1'), '\x7fELF', `${file} is not an ELF file`);
    return head.readUInt16LE(18);
  } finally {
    closeSync(fd);
  }
}

describe('aarch64-linux through qemu user emulation', { timeout: BUILD_TIMEOUT_MS + 60_000 }, () => {
  let whyNot: string | null = null;
  let hello: Extract<PrepareResult, { kind: 'ok' }>;

  before(async () => {
    const support = systemSupport('aarch64-linux');
    // Only the kernel may refuse; a missing arm64 tree is a set-up bug and fails below.
    if (!support.ok && /binfmt_misc/.test(support.reason)) {
      whyNot = support.reason;
      return;
    }
    const r = await prepareImage({
      nixDir: join(REPO, 'nix'),
      source: { type: 'path', path: join(REPO, 'nix/pkgs') },
      system: 'aarch64-linux',
      packages: ['hello'],
      timeoutMs: BUILD_TIMEOUT_MS,
      extraNixOptions: ['--option', 'substituters', ''],
      env: withExtraPlatforms({ options: [], env: NIX_ENV }, ['aarch64-linux']).env,
    });
    assert.equal(r.kind, 'ok', JSON.stringify(r).slice(0, 2000));
    hello = r as Extract<PrepareResult, { kind: 'ok' }>;
  });

  test('the machine can build aarch64-linux after set-up', (t) => {
    if (whyNot) return t.skip(whyNot);
    assert.deepEqual(systemSupport('aarch64-linux'), { ok: true, emulated: true });
  });

  test('hello is an aarch64 ELF whose interpreter and libraries are store paths of its closure', (t) => {
    if (whyNot) return t.skip(whyNot);
    const bin = join(hello.packages.hello?.out as string, 'bin', 'hello');
    assert.equal(elfMachine(bin), EM_AARCH64);
    const interp = spawnSync('patchelf', ['--print-interpreter', bin], { encoding: 'utf8' }).stdout.trim();
    assert.match(interp, /^\/nix\/store\/[a-z0-9]{32}-glibc-[^/]+\/lib\/ld-linux-aarch64\.so\.1$/);
    const closure = storePathsOf(hello.graph);
    assert.ok(closure.some((p) => interp.startsWith(`${p}/`)), 'the interpreter is in the closure');
    assert.equal(elfMachine(interp), EM_AARCH64);
  });

  test('hello runs in a chroot of its closure through qemu and prints Hello, world!', (t) => {
    if (whyNot) return t.skip(whyNot);
    if (process.getuid?.() !== 0) return t.skip('chroot needs root');
    const root = mkdtempSync(join(tmpdir(), 'nix-chroot-arm64-'));
    try {
      for (const p of storePathsOf(hello.graph)) cpSync(p, join(root, p), { recursive: true, verbatimSymlinks: true });
      // Nothing but the closure is there: no qemu inside; binfmt's F flag gives the kernel its own open interpreter.
      const res = spawnSync('chroot', [root, join(hello.packages.hello?.out as string, 'bin', 'hello')], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(res.status, 0, res.stderr);
      assert.equal(res.stdout, 'Hello, world!\n');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
