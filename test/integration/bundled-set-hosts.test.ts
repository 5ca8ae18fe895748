/**
 * Every host file the bundled package set (nix/pkgs) reads comes from a Debian
 * package that set-up installs. Checked mechanically: the whole set is rebuilt
 * (`nix-build --check`) under strace, every file the builders open or run is
 * mapped to its Debian package through dpkg's file lists (what `dpkg -S` reads), and each package must be named
 * in scripts/apt-packages.txt, be a dependency (Depends/Pre-Depends, followed
 * through) of one named there, or be part of every Debian system (Essential or
 * Priority required, as mmdebstrap's minbase holds). A package set that copies
 * a file of a package nothing installs (as libncurses.so.6 once was) fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { NIX_ENV } from '../helpers/nix-env';
import { REPO } from '../helpers/nixery';
import { run, runChecked } from '../helpers/proc';

const NIX_OPTS = ['--option', 'substituters', ''];
const PKGS = path.join(REPO, 'nix/pkgs');

/** Files no package owns, made on the machine by a package's scripts: path -> the package that makes it. */
const GENERATED: Record<string, string> = {
  '/etc/ld.so.cache': 'libc-bin',
  '/etc/ssl/certs/ca-certificates.crt': 'ca-certificates',
};

/** The names in scripts/apt-packages.txt. */
function setupList(): string[] {
  return readFileSync(path.join(REPO, 'scripts/apt-packages.txt'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

/** Installed packages: dependencies, what they provide, and whether every Debian system has them. */
async function installedPackages(): Promise<{ deps: Map<string, string[][]>; provides: Map<string, string[]>; base: string[] }> {
  const { stdout } = await runChecked('dpkg-query', ['-W', '-f', '${Package}\t${Status}\t${Essential}\t${Priority}\t${Depends}, ${Pre-Depends}\t${Provides}\n']);
  const deps = new Map<string, string[][]>();
  const provides = new Map<string, string[]>();
  const base: string[] = [];
  const names = (s: string) => s.trim().split(/\s|\(/)[0]!.replace(/:.*$/, '');
  for (const line of stdout.split('\n')) {
    const [pkg, status, essential, priority, depends, prov] = line.split('\t');
    if (!pkg || !status?.endsWith('installed') || status.includes('not-installed')) continue;
    deps.set(pkg, (depends ?? '').split(',').filter((d) => d.trim()).map((alt) => alt.split('|').map(names).filter(Boolean)));
    for (const p of (prov ?? '').split(',').map(names).filter(Boolean)) provides.set(p, [...(provides.get(p) ?? []), pkg]);
    if (essential === 'yes' || priority === 'required') base.push(pkg);
  }
  return { deps, provides, base };
}

/** Every package apt installs for `roots` (Depends and Pre-Depends followed, alternatives resolved to what is installed). */
function dependencyClosure(roots: string[], inst: Awaited<ReturnType<typeof installedPackages>>): Set<string> {
  const seen = new Set<string>();
  const todo = [...roots];
  while (todo.length) {
    const p = todo.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    for (const alts of inst.deps.get(p) ?? []) {
      const chosen = alts.flatMap((a) => (inst.deps.has(a) ? [a] : inst.provides.get(a) ?? []));
      todo.push(...chosen);
    }
  }
  return seen;
}

/** Host files (regular files outside the store and scratch dirs) the builders in an strace log opened or ran. */
function builderHostFiles(trace: string): Set<string> {
  const parent = new Map<number, number>();
  const builders = new Set<number>();
  const inBuilder = (pid: number): boolean => {
    for (let p: number | undefined = pid, n = 0; p !== undefined && n < 100; p = parent.get(p), n++) if (builders.has(p)) return true;
    return false;
  };
  const files = new Set<string>();
  for (const line of trace.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const pid = Number(m[1]);
    const rest = m[2]!;
    const child = /(?:clone3?|v?fork)(?:\(| resumed>).*= (\d+)$/.exec(rest);
    if (child) parent.set(Number(child[1]), pid);
    if (/^execve\("\/bin\/busybox", \["busybox", "sh"/.test(rest) && !inBuilder(pid)) builders.add(pid);
    const opened = /^(?:openat\(AT_FDCWD, |execve\()"([^"]+)".*= (\d+)/.exec(rest);
    if (opened && inBuilder(pid)) files.add(opened[1]!);
  }
  const host = new Set<string>();
  for (const f of files) {
    if (!f.startsWith('/') || /^\/(nix|tmp|proc|dev|sys|build)\//.test(f)) continue;
    try {
      if (statSync(f).isFile()) host.add(f);
    } catch {
      /* gone or not a file */
    }
  }
  return host;
}

/** Every path dpkg knows (`/var/lib/dpkg/info/*.list`, what `dpkg -S` searches) -> its package. */
function dpkgOwners(): Map<string, string> {
  const dir = '/var/lib/dpkg/info';
  const owners = new Map<string, string>();
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.list'))) {
    const pkg = name.slice(0, -'.list'.length).replace(/:.*$/, '');
    for (const p of readFileSync(path.join(dir, name), 'utf8').split('\n')) if (p) owners.set(p, pkg);
  }
  return owners;
}

/**
 * The Debian package owning `file` (as opened, resolved, or with /usr merged
 * away), a compiled Python file's source package, a known generated file's
 * maker, the package a dpkg file list describes, or undefined.
 */
function owner(file: string, owners: Map<string, string>): string | undefined {
  const real = realpathSync(file);
  for (const p of [file, real, real.replace(/^\/usr\//, '/')]) {
    const pkg = owners.get(p);
    if (pkg) return pkg;
    // py3compile (run by the python packages' postinst) writes __pycache__/<name>.cpython-XY.pyc for <name>.py.
    const pyc = /^(.*)\/__pycache__\/([^/.]+)\.[^/]*\.pyc$/.exec(p);
    if (pyc && owners.get(`${pyc[1]}/${pyc[2]}.py`)) return owners.get(`${pyc[1]}/${pyc[2]}.py`);
  }
  // dpkg's own list of a package's files is that package's.
  const list = /^\/var\/lib\/dpkg\/info\/([^/:]+)(?::[^/]+)?\.list$/.exec(real);
  if (list) return list[1];
  return GENERATED[file] ?? GENERATED[real];
}

describe('bundled package set: host files', () => {
  it('come only from Debian packages that set-up installs', async () => {
    const attrs = ((await runChecked('nix-instantiate', [...NIX_OPTS, '--eval', '--json', '--expr', `builtins.attrNames (import ${PKGS} {})`], { env: NIX_ENV })).stdout);
    const names = (JSON.parse(attrs) as string[]).filter((a) => a !== 'xorg');
    const all = [...names, 'xorg.xev'];
    // Built first (a missing host file fails right here), then rebuilt under strace.
    await runChecked('nix-build', [...NIX_OPTS, '--no-out-link', PKGS, ...all.flatMap((a) => ['-A', a])], { env: NIX_ENV, timeoutMs: 600_000 });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nixery-trace-'));
    try {
      const traceFile = path.join(dir, 'trace');
      await run('strace', ['-f', '-qq', '-s', '512', '-o', traceFile, '-e', 'trace=execve,openat,clone,clone3,fork,vfork',
        'nix-build', ...NIX_OPTS, '--check', '--keep-going', '--no-out-link', PKGS, ...all.flatMap((a) => ['-A', a])],
      { env: NIX_ENV, timeoutMs: 600_000 });
      const files = builderHostFiles(await readFile(traceFile, 'utf8'));
      assert.ok(files.has('/usr/bin/hello') || files.has('/bin/hello'), 'the trace saw hello being copied');
      assert.ok([...files].some((f) => /libncurses\.so\.6$/.test(f)), 'the trace saw ncurses being copied');

      const inst = await installedPackages();
      const installedBySetup = dependencyClosure([...setupList(), ...inst.base], inst);
      const owners = dpkgOwners();
      const offenders: string[] = [];
      for (const f of [...files].sort()) {
        const pkg = owner(f, owners);
        if (pkg === undefined) offenders.push(`${f}: owned by no Debian package`);
        else if (!installedBySetup.has(pkg.replace(/:.*$/, ''))) offenders.push(`${f}: from ${pkg}, which set-up does not install`);
      }
      assert.deepEqual(offenders, [], `host files the bundled set reads (${files.size} checked)`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
