import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { processesMentioning } from '../helpers/proc';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { storePathName } from '../../libs/shared/src/core/store-path';
import {
  closureOf,
  prepareImage,
  storePathsOf,
  type PackageSourceArgs,
  type PrepareOptions,
  type PrepareResult,
} from '../../libs/shared/src/nix';
import { runCommand } from '../../libs/shared/src/infra/run-command';
import { NIX_ENV } from '../helpers/nix-env';

const REPO = resolve(__dirname, '../..');
const NIX_DIR = join(REPO, 'nix');
const PKGS_DIR = join(NIX_DIR, 'pkgs');
const NO_SUBSTITUTERS = ['--option', 'substituters', ''];
const SYSTEM = 'x86_64-linux';
/** The first build of a package (and its libraries) may take a while on a cold store. */
const BUILD_TIMEOUT_MS = 180_000;

function prepare(packages: string[], extra: Partial<PrepareOptions> = {}): Promise<PrepareResult> {
  return prepareImage({
    nixDir: NIX_DIR,
    source: { type: 'path', path: PKGS_DIR },
    system: SYSTEM,
    packages,
    timeoutMs: BUILD_TIMEOUT_MS,
    extraNixOptions: NO_SUBSTITUTERS,
    env: NIX_ENV,
    ...extra,
  });
}

async function prepareOk(packages: string[], extra: Partial<PrepareOptions> = {}) {
  const r = await prepare(packages, extra);
  assert.equal(r.kind, 'ok', `prepareImage(${JSON.stringify(packages)}) gave ${JSON.stringify(r)}`);
  return r as Extract<PrepareResult, { kind: 'ok' }>;
}

/** The paths of a closure whose name (without hash) starts with `prefix-`. */
function named(paths: string[], prefix: string): string[] {
  return paths.filter((p) => storePathName(p).startsWith(`${prefix}-`));
}

/** A copy of the bundled package set whose `slow` package sleeps `seconds` and is a derivation never built before. */
function slowPackageSet(seconds: number): { dir: string; nonce: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nix-slow-'));
  cpSync(PKGS_DIR, dir, { recursive: true });
  const nonce = `nonce-${randomBytes(8).toString('hex')}`;
  writeFileSync(join(dir, 'slow-seconds'), `${seconds} ${nonce}\n`);
  return { dir, nonce };
}

/** Whether any process of group `pgid` is still running (zombies waiting for a reaper count as dead). */
function groupAlive(pgid: number): boolean {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...; comm may hold spaces, so split after the last ')'.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(100);
  }
  return cond();
}

describe('runCommand', () => {
  test('drains stdout and stderr together and keeps a bounded stderr tail', async () => {
    // 2 MiB on each stream, interleaved: reading one stream after the other would stall on a full pipe.
    const script = `
      const out = 'o'.repeat(1024), err = 'e'.repeat(1023) + '\\n';
      for (let i = 0; i < 2048; i++) { require('fs').writeSync(1, out); require('fs').writeSync(2, err); }`;
    const lines: string[] = [];
    const r = await runCommand(process.execPath, ['-e', script], {
      timeoutMs: 60_000,
      stderrLimit: 4096,
      onStderrLine: (l) => lines.push(l),
    });
    assert.equal(r.code, 0);
    assert.equal(r.stdout.length, 2048 * 1024);
    assert.equal(r.stderr.length, 4096);
    assert.equal(lines.length, 2048);
    assert.equal(lines[0]?.length, 1023);
  });

  test('reports exit codes and spawn failures as data', async () => {
    const r = await runCommand('sh', ['-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: 10_000 });
    assert.deepEqual([r.code, r.stdout, r.stderr, r.timedOut, r.aborted], [3, 'out\n', 'err\n', false, false]);
    const missing = await runCommand('/nonexistent/program', [], { timeoutMs: 10_000 });
    assert.equal(missing.code, -1);
    assert.match(missing.spawnError ?? '', /ENOENT/);
  });

  test('a timeout kills the whole process group', async () => {
    const started = Date.now();
    const r = await runCommand('sh', ['-c', 'sleep 60 & sleep 60; wait'], { timeoutMs: 300, killGraceMs: 1000 });
    assert.equal(r.timedOut, true);
    assert.notEqual(r.code, 0);
    assert.ok(Date.now() - started < 5000, 'returned promptly');
    assert.ok(r.pid !== undefined);
    assert.ok(await waitUntil(() => !groupAlive(r.pid as number), 3000), 'background child killed too');
  });

  test('SIGKILL follows when SIGTERM is ignored', async () => {
    const started = Date.now();
    const r = await runCommand('sh', ['-c', 'trap "" TERM; sleep 60 & wait; wait'], { timeoutMs: 200, killGraceMs: 500 });
    assert.equal(r.timedOut, true);
    assert.ok(Date.now() - started < 5000);
    assert.ok(await waitUntil(() => !groupAlive(r.pid as number), 3000));
  });

  test('abort kills the process group', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const r = await runCommand('sh', ['-c', 'sleep 60 & sleep 60; wait'], { timeoutMs: 60_000, signal: ac.signal });
    assert.equal(r.aborted, true);
    assert.equal(r.timedOut, false);
    assert.ok(await waitUntil(() => !groupAlive(r.pid as number), 3000));
    const pre = await runCommand('sh', ['-c', 'exit 0'], { timeoutMs: 1000, signal: ac.signal });
    assert.equal(pre.aborted, true, 'an already aborted signal starts nothing');
  });
});

describe('prepareImage with the bundled package set', () => {
  test('hello: built, and its closure holds glibc as a real reference', async () => {
    const stages: string[] = [];
    const r = await prepareOk(['hello'], { onStage: (s) => stages.push(s) });
    assert.deepEqual(stages, ['evaluating', 'building']);
    const hello = r.packages.hello;
    assert.ok(hello);
    assert.equal(hello.attr, 'hello');
    assert.deepEqual(r.graph.roots, [hello.out]);
    assert.ok(existsSync(join(hello.out, 'bin/hello')));
    const paths = storePathsOf(r.graph);
    const glibc = named(paths, 'glibc');
    assert.equal(glibc.length, 1, `glibc in ${paths.join(' ')}`);
    assert.ok(r.graph.paths[hello.out]?.references.includes(glibc[0] as string));
    assert.ok((r.graph.paths[glibc[0] as string]?.narSize ?? 0) > 1_000_000);
    assert.equal(execFileSync(join(hello.out, 'bin/hello'), { encoding: 'utf8' }), 'Hello, world!\n');
  });

  test('gcRootDir: the built outputs are GC roots while the directory exists', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-gcroots-'));
    try {
      const r = await prepareOk(['jq'], { gcRootDir: dir });
      const jq = r.packages.jq!.out;
      const roots = () => execFileSync('nix-store', ['--query', '--roots', jq], { encoding: 'utf8', env: NIX_ENV });
      assert.match(roots(), new RegExp(`^${dir}/result`, 'm'), 'jq is held by a root in the directory');
      rmSync(dir, { recursive: true, force: true });
      assert.doesNotMatch(roots(), new RegExp(dir), 'removing the directory releases the root');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('curl and jq together: two roots, shared libraries in one graph', async () => {
    const r = await prepareOk(['curl', 'jq']);
    const curl = r.packages.curl?.out as string;
    const jq = r.packages.jq?.out as string;
    assert.deepEqual(r.graph.roots, [curl, jq]);
    const paths = storePathsOf(r.graph);
    for (const lib of ['glibc', 'openssl', 'zlib']) {
      assert.ok(closureOf(r.graph, [curl]).some((p) => storePathName(p).startsWith(`${lib}-`)), `curl needs ${lib}`);
    }
    assert.equal(named(paths, 'glibc').length, 1, 'one glibc shared by both');
    assert.ok(closureOf(r.graph, [jq]).includes(named(paths, 'glibc')[0] as string));
  });

  test('curl and python3 share the very same glibc, openssl and zlib store paths', async () => {
    const curl = await prepareOk(['curl']);
    const python = await prepareOk(['python3']);
    const shared = storePathsOf(curl.graph).filter((p) => python.graph.paths[p] !== undefined);
    for (const lib of ['glibc', 'openssl', 'zlib']) {
      assert.equal(named(shared, lib).length, 1, `${lib} shared: ${shared.join(' ')}`);
    }
  });

  test('dotted names reach nested sets', async () => {
    const r = await prepareOk(['xorg.xev']);
    assert.equal(r.packages['xorg.xev']?.attr, 'xorg.xev');
    assert.match(storePathName(r.packages['xorg.xev']?.out ?? ''), /^xev-/);
  });

  test('names match case-insensitively at the top level', async () => {
    const r = await prepareOk(['bashinteractive']);
    const bash = r.packages.bashinteractive;
    assert.equal(bash?.attr, 'bashInteractive');
    assert.equal(readlinkSync(join(bash?.out ?? '', 'bin/sh')), 'bash');
    assert.ok(named(storePathsOf(r.graph), 'ncurses').length === 1, 'bash links ncurses');
  });

  test('names starting with a digit also try a leading underscore', async () => {
    const r = await prepareOk(['7zz']);
    assert.equal(r.packages['7zz']?.attr, '_7zz');
  });

  test('unknown names are reported as missing, exactly', async () => {
    const r = await prepare(['doesnotexist', 'hello']);
    assert.deepEqual(r, { kind: 'missing', packages: ['doesnotexist'] });
  });

  test('names are data: Nix syntax in a name is just a missing package', async () => {
    const tricky = ['hello"; builtins.abort "x', 'hello${builtins.abort "x"}', 'xorg', 'hello.', ''];
    const r = await prepare(['hello', ...tricky]);
    assert.deepEqual(r, { kind: 'missing', packages: tricky });
  });

  test('a broken package set is a failure with Nix\'s message, not retried', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-broken-'));
    try {
      writeFileSync(join(dir, 'default.nix'), '{ system ? null }: { hello = ; }\n');
      const r = await prepare(['hello'], { source: { type: 'path', path: dir } });
      assert.equal(r.kind, 'failed');
      assert.ok(r.kind === 'failed' && !r.transient);
      assert.match(r.kind === 'failed' ? r.message : '', /syntax error/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a relative source path is refused before Nix runs', async () => {
    const r = await prepare(['hello'], { source: { type: 'path', path: 'nix/pkgs' } });
    assert.equal(r.kind, 'failed');
  });

  test('slow builds take their time (nix/pkgs/slow-seconds)', async () => {
    assert.match(readFileSync(join(PKGS_DIR, 'slow-seconds'), 'utf8'), /^3\s*$/);
    const { dir } = slowPackageSet(1);
    try {
      const started = Date.now();
      const r = await prepareOk(['slow'], { source: { type: 'path', path: dir } });
      assert.ok(Date.now() - started >= 1000, 'the build slept');
      assert.equal(execFileSync(join(r.packages.slow?.out ?? '', 'bin/slow'), { encoding: 'utf8' }), 'slow\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a timeout during a build kills Nix and its builder', async () => {
    const { dir, nonce } = slowPackageSet(60);
    try {
      let building = 0;
      let seenBuilder = false;
      const started = Date.now();
      const r = await prepare(['slow'], {
        source: { type: 'path', path: dir },
        timeoutMs: 4000,
        onStage: (s) => {
          if (s !== 'building') return;
          building = Date.now();
          setTimeout(() => { seenBuilder = processesMentioning(nonce).length > 0; }, 1500);
        },
      });
      assert.equal(r.kind, 'failed');
      assert.ok(r.kind === 'failed' && r.transient);
      assert.match(r.kind === 'failed' ? r.message : '', /timed out/);
      assert.ok(building > 0, 'the build had started');
      assert.ok(seenBuilder, 'the builder process was seen running');
      assert.ok(Date.now() - started < 15_000);
      assert.ok(await waitUntil(() => processesMentioning(nonce).length === 0, 5000), 'builder still running');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('abort during a build kills Nix and its builder', async () => {
    const { dir, nonce } = slowPackageSet(60);
    const ac = new AbortController();
    try {
      const r = await prepare(['slow'], {
        source: { type: 'path', path: dir },
        signal: ac.signal,
        onStage: (s) => { if (s === 'building') setTimeout(() => ac.abort(), 1500); },
      });
      assert.equal(r.kind, 'failed');
      assert.match(r.kind === 'failed' ? r.message : '', /aborted/);
      assert.ok(await waitUntil(() => processesMentioning(nonce).length === 0, 5000), 'builder still running');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('prepareImage with git and tarball sources', () => {
  let repo: string;
  let rev: string;
  let expectedHello: string;

  before(async () => {
    repo = mkdtempSync(join(tmpdir(), 'nix-src-'));
    const work = join(repo, 'pkgs');
    cpSync(PKGS_DIR, work, { recursive: true });
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', work, '-c', 'user.email=t@example.invalid', '-c', 'user.name=t', ...args], { encoding: 'utf8' }).trim();
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'package set');
    git('checkout', '-q', '-b', 'side');
    writeFileSync(join(work, 'extra.txt'), 'side branch\n');
    git('add', '.');
    git('commit', '-q', '-m', 'side');
    rev = git('rev-parse', 'HEAD');
    git('checkout', '-q', '-');
    execFileSync('tar', ['-C', repo, '--exclude', '.git', '-czf', join(repo, 'pkgs.tar.gz'), 'pkgs']);
    expectedHello = (await prepareOk(['hello'])).packages.hello?.out as string;
  });
  after(() => rmSync(repo, { recursive: true, force: true }));

  const sources = (): Array<[string, PackageSourceArgs]> => [
    ['git rev on a side branch, no ref', { type: 'git', url: `file://${join(repo, 'pkgs')}`, rev }],
    ['git rev with ref', { type: 'git', url: `file://${join(repo, 'pkgs')}`, rev, ref: 'side' }],
    ['tarball', { type: 'nixpkgs', url: `file://${join(repo, 'pkgs.tar.gz')}` }],
  ];

  test('each source gives the same hello as the local path', async () => {
    for (const [what, source] of sources()) {
      const r = await prepareOk(['hello', 'xorg.xev'], { source });
      assert.equal(r.packages.hello?.out, expectedHello, what);
    }
  });

  test('an unknown git rev is a failure', async () => {
    const r = await prepare(['hello'], { source: { type: 'git', url: `file://${join(repo, 'pkgs')}`, rev: 'a'.repeat(40) } });
    assert.equal(r.kind, 'failed');
  });
});

describe('images from the closure run on their own', () => {
  let chrootWhyNot: string | null = null;
  before(() => {
    if (process.getuid?.() !== 0) chrootWhyNot = 'not running as root';
    else if (spawnSync('chroot', ['--version']).error) chrootWhyNot = 'no chroot program';
  });

  /** Copies the closure graph's paths into DIR/nix/store and runs `cmd` chrooted in DIR. */
  function runInClosure(r: Extract<PrepareResult, { kind: 'ok' }>, cmd: string[]): string | null {
    const root = mkdtempSync(join(tmpdir(), 'nix-chroot-'));
    try {
      for (const p of storePathsOf(r.graph)) {
        cpSync(p, join(root, p), { recursive: true, verbatimSymlinks: true });
      }
      const res = spawnSync('chroot', [root, ...cmd], { encoding: 'utf8', timeout: 30_000 });
      if (res.status !== 0 && /Operation not permitted|cannot change root/.test(res.stderr)) {
        chrootWhyNot = `chroot failed: ${res.stderr.trim()}`;
        return null;
      }
      assert.equal(res.status, 0, `${cmd.join(' ')}: ${res.stderr}`);
      return res.stdout;
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  for (const [pkg, args, expected] of [
    ['hello', [], /^Hello, world!\n$/],
    ['curl', ['--version'], /^curl \d.*OpenSSL/],
    ['jq', ['--version'], /^jq-/],
    ['python3', ['-c', 'import json, ssl; print(json.dumps(ssl.OPENSSL_VERSION))'], /OpenSSL 3/],
    ['bashInteractive', ['-c', 'echo hi'], /^hi\n$/],
  ] as const) {
    test(`${pkg} runs in a root holding only its closure`, async (t) => {
      if (chrootWhyNot) {
        console.log(`skipping chroot check: ${chrootWhyNot}`);
        t.skip(chrootWhyNot);
        return;
      }
      const r = await prepareOk([pkg]);
      const out = r.packages[pkg]?.out as string;
      const bin = pkg === 'bashInteractive' ? 'bash' : pkg;
      const stdout = runInClosure(r, [join(out, 'bin', bin), ...args]);
      if (stdout === null) {
        console.log(`skipping chroot check: ${chrootWhyNot}`);
        t.skip(chrootWhyNot ?? undefined);
        return;
      }
      assert.match(stdout, expected);
    });
  }

  test('coreutils ls runs in a root holding only its closure', async (t) => {
    if (chrootWhyNot) {
      t.skip(chrootWhyNot);
      return;
    }
    const r = await prepareOk(['coreutils']);
    const out = r.packages.coreutils?.out as string;
    const stdout = runInClosure(r, [join(out, 'bin/ls'), join(out, 'bin')]);
    if (stdout === null) {
      t.skip(chrootWhyNot ?? undefined);
      return;
    }
    for (const prog of ['env', 'ls', 'cat', 'sha256sum', '[']) assert.ok(stdout.split('\n').includes(prog), prog);
  });
});
