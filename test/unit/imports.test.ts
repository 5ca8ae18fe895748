/**
 * Structure rules as a test. libs/shared/src is a set of rooms (folders with
 * an index.ts that says what the room holds and never imports); each room has
 * an allow-list of the rooms and packages it may import. Also: no file loops,
 * no folder loops, apps never import each other, and the few things only one
 * place may do (read the environment, exit the process, make a RegistryError,
 * import Koa) are done only there.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import madge from 'madge';

const REPO = path.resolve(__dirname, '../..');
const LIB = path.join(REPO, 'libs/shared/src');
const APPS = ['gateway', 'worker', 'popcount-job', 'cli'];

/** Node built-ins that do I/O (files, processes, network). */
const IO_BUILTINS = ['node:fs', 'node:fs/promises', 'node:child_process', 'node:net', 'node:http', 'node:https', 'node:os', 'node:dgram', 'node:dns'];

/**
 * Every room, the rooms it may import, and the packages it may import
 * (`node:*` built-ins are allowed unless the room is `pure`).
 */
const ROOMS: Record<string, { rooms: string[]; packages: string[]; pure?: boolean }> = {
  core: { rooms: [], packages: [], pure: true },
  protocol: { rooms: ['core'], packages: [], pure: true },
  layering: { rooms: ['core'], packages: [], pure: true },
  sbom: { rooms: ['core'], packages: [], pure: true },
  infra: { rooms: ['core'], packages: ['ioredis', 'pino', 'prom-client'] },
  tarball: { rooms: ['core'], packages: ['tar-stream'] },
  storage: { rooms: ['core'], packages: ['@google-cloud/storage', '@aws-sdk/client-s3', '@aws-sdk/lib-storage', '@aws-sdk/s3-request-presigner'] },
  nix: { rooms: ['core', 'infra'], packages: [] },
  sources: { rooms: ['core', 'infra', 'nix'], packages: [] },
  records: { rooms: ['core', 'protocol', 'infra'], packages: ['ioredis'] },
  jobs: { rooms: ['core', 'protocol', 'sources', 'infra'], packages: ['bullmq', 'ioredis', 'prom-client', 'zod'] },
  popularity: { rooms: ['core', 'infra', 'layering', 'nix', 'sources'], packages: ['ioredis'] },
  pipeline: { rooms: ['core', 'protocol', 'infra', 'layering', 'nix', 'tarball', 'storage', 'jobs', 'records', 'sbom'], packages: ['ioredis'] },
  collect: { rooms: ['core', 'infra', 'storage', 'records'], packages: [] },
  config: { rooms: ['core', 'protocol', 'layering', 'nix', 'sources', 'storage', 'popularity', 'collect'], packages: ['zod'] },
  runtime: { rooms: ['core', 'infra', 'config', 'nix', 'storage'], packages: ['ioredis'] },
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (name === 'node_modules' || name === 'dist') continue;
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const APP_FILES = APPS.flatMap((a) => sources(path.join(REPO, 'apps', a, 'src')));
const LIB_FILES = sources(LIB);
const ALL_FILES = [...LIB_FILES, ...APP_FILES, ...sources(path.join(REPO, 'src'))];
const rel = (f: string) => path.relative(REPO, f);

/** The code of a file without its comments and string-template contents that merely mention names. */
function code(file: string): string {
  return readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|^\s*\/\/.*$|([^:])\/\/.*$/gm, '$1');
}

/** Module specifiers a file imports (static, dynamic, re-exports, require). */
function importsOf(file: string): string[] {
  const text = code(file);
  return [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\(\s*)'([^']+)'/g)].map((m) => m[1]!);
}

/** The room of a libs/shared file ('' for the barrel, null for a file in no room). */
function roomOf(file: string): string | null {
  const r = path.relative(LIB, file);
  if (r === 'index.ts') return '';
  const parts = r.split(path.sep);
  return parts.length > 1 && ROOMS[parts[0]!] ? parts[0]! : null;
}

/** The file a relative import of `from` names. */
function resolveImport(from: string, spec: string): string | null {
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [base, `${base}.ts`, path.join(base, 'index.ts')]) if (existsSync(c) && statSync(c).isFile()) return c;
  return null;
}

/** Package name of a bare specifier (`@scope/name/x` -> `@scope/name`). */
function packageOf(spec: string): string {
  const p = spec.split('/');
  return spec.startsWith('@') ? `${p[0]}/${p[1]}` : spec.startsWith('node:') ? spec : p[0]!;
}

/** The folder of a libs/shared file: its first path segment, a top-level file counting as a folder of its own. */
function folderOf(file: string): string {
  return path.relative(LIB, file).split(path.sep)[0]!.replace(/\.ts$/, '');
}

/** Value imports (not `import type`) of a file, resolved to files of this tree. */
function valueImportsOf(file: string): string[] {
  const text = code(file);
  const specs = [...text.matchAll(/(?:^|;|\n)\s*(?:import|export)\s+(?!type\b)[^'";]*?from\s*'([^']+)'|\bimport\s*\(\s*'([^']+)'|\brequire\(\s*'([^']+)'|^\s*import\s*'([^']+)'/gm)]
    .map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]!);
  return specs;
}

/** Whether `file`, following value imports through this tree, loads the package `pkg`. */
function loadsPackage(file: string, pkg: string, seen = new Set<string>()): string | null {
  if (seen.has(file)) return null;
  seen.add(file);
  for (const spec of valueImportsOf(file)) {
    if (!spec.startsWith('.')) {
      if (packageOf(spec) === pkg) return rel(file);
      continue;
    }
    const target = resolveImport(file, spec);
    const via = target ? loadsPackage(target, pkg, seen) : null;
    if (via) return `${rel(file)} -> ${via}`;
  }
  return null;
}

/** Folder -> folders it imports, and every rule violation of a libs/shared file's imports. */
function roomGraph(): { edges: Map<string, Set<string>>; violations: string[] } {
  const edges = new Map<string, Set<string>>();
  const violations: string[] = [];
  for (const f of LIB_FILES) {
    const folder = folderOf(f);
    for (const spec of importsOf(f)) {
      const target = spec.startsWith('.') ? resolveImport(f, spec) : null;
      const to = target ? folderOf(target) : null;
      if (to !== null && to !== folder && to !== 'index' && folder !== 'index') {
        if (!edges.has(folder)) edges.set(folder, new Set());
        edges.get(folder)!.add(to);
      }
    }
    const room = roomOf(f);
    if (room === null) {
      violations.push(`${rel(f)}: in no room`);
      continue;
    }
    if (room === '') continue;
    const rule = ROOMS[room]!;
    for (const spec of importsOf(f)) {
      if (spec.startsWith('.')) {
        const target = resolveImport(f, spec);
        const to = target ? roomOf(target) : null;
        if (to === room) continue;
        if (to === null || to === '') violations.push(`${rel(f)} -> ${spec}: not a room`);
        else if (!rule.rooms.includes(to)) violations.push(`${rel(f)} -> ${to}: ${room} may import only ${rule.rooms.join(', ') || 'no room'}`);
      } else {
        const pkg = packageOf(spec);
        if (pkg.startsWith('node:')) {
          if (rule.pure && IO_BUILTINS.includes(spec)) violations.push(`${rel(f)} -> ${spec}: ${room} does no I/O`);
        } else if (!rule.packages.includes(pkg)) {
          violations.push(`${rel(f)} -> ${pkg}: ${room} may import only ${rule.packages.join(', ') || 'no package'}`);
        }
      }
    }
    if (rule.pure && /\bfetch\(|\bprocess\.(env|exit|on|stdout|stderr)\b/.test(code(f))) violations.push(`${rel(f)}: ${room} does no I/O`);
  }
  return { edges, violations };
}

/** Whether `from` reaches `to` in the folder graph. */
function reaches(edges: Map<string, Set<string>>, from: string, to: string, seen = new Set<string>()): boolean {
  if (seen.has(from)) return false;
  seen.add(from);
  for (const n of edges.get(from) ?? []) if (n === to || reaches(edges, n, to, seen)) return true;
  return false;
}

/** Loops in a directed graph (each as a path that returns to its start). */
function loops(edges: Map<string, Set<string>>): string[] {
  const found: string[] = [];
  const visit = (node: string, trail: string[]) => {
    for (const next of edges.get(node) ?? []) {
      if (next === trail[0]) found.push([...trail, next].join(' -> '));
      else if (!trail.includes(next) && next > trail[0]!) visit(next, [...trail, next]);
    }
  };
  for (const n of [...edges.keys()].sort()) visit(n, [n]);
  return found;
}

/** Files (relative) whose code matches `re`, outside `allowed` prefixes. */
function offenders(re: RegExp, allowed: string[], files = ALL_FILES): string[] {
  return files.map(rel).filter((f) => re.test(code(path.join(REPO, f))) && !allowed.some((a) => f.startsWith(a)));
}

describe('module structure', () => {
  it('has no circular imports between files', async () => {
    const res = await madge([LIB, ...APPS.map((a) => path.join(REPO, 'apps', a, 'src')), path.join(REPO, 'src')], {
      fileExtensions: ['ts'],
      tsConfig: path.join(REPO, 'test/tsconfig.json'),
    });
    assert.ok(Object.keys(res.obj()).length > 40, 'madge parsed the sources');
    assert.deepEqual(res.circular(), []);
  });

  it('every room has an index.ts whose opening comment says what it holds and what it never imports', () => {
    const missing = Object.keys(ROOMS).filter((r) => {
      const index = path.join(LIB, r, 'index.ts');
      const opening = existsSync(index) ? /^\/\*\*([\s\S]*?)\*\//.exec(readFileSync(index, 'utf8'))?.[1] : undefined;
      return !opening || !/never imports/i.test(opening) || opening.trim().length < 60;
    });
    assert.deepEqual(missing, []);
  });

  it('rooms import only what their allow-list names, and every file is in a room', () => {
    assert.deepEqual(roomGraph().violations, []);
  });

  it('has no loops between rooms (folders), not only between files', () => {
    assert.deepEqual(loops(roomGraph().edges), []);
  });

  it('apps never import another app, and libs/shared never imports an app', () => {
    const bad: string[] = [];
    for (const app of APPS) {
      for (const f of sources(path.join(REPO, 'apps', app, 'src'))) {
        for (const other of APPS.filter((a) => a !== app)) {
          if (importsOf(f).some((i) => i === `@nixery/${other}` || i.includes(`apps/${other}`) || i.includes(`../${other}/`))) bad.push(`${rel(f)} -> ${other}`);
        }
      }
    }
    for (const f of LIB_FILES) if (importsOf(f).some((i) => /^@nixery\/(gateway|worker|popcount-job|cli)|apps\//.test(i))) bad.push(rel(f));
    assert.deepEqual(bad, []);
  });

  it('only config and runtime read the environment or exit the process', () => {
    assert.deepEqual(offenders(/process\.env\b/, ['libs/shared/src/config/', 'libs/shared/src/runtime/']), []);
    assert.deepEqual(offenders(/process\.exit\b/, ['libs/shared/src/config/', 'libs/shared/src/runtime/']), []);
  });

  it('only apps/gateway imports Koa', () => {
    const koa = ALL_FILES.filter((f) => importsOf(f).some((i) => /^(koa|@koa\/)/.test(i))).map(rel);
    assert.deepEqual(koa.filter((f) => !f.startsWith('apps/gateway/')), []);
  });

  it('only protocol and the gateway create a RegistryError', () => {
    assert.deepEqual(offenders(/new RegistryError\b/, ['libs/shared/src/protocol/', 'apps/gateway/']), []);
  });

  it('pipeline never loads BullMQ; storage imports no Koa, BullMQ or config; tarball never reaches storage', () => {
    const { edges } = roomGraph();
    const bad: string[] = [];
    for (const f of LIB_FILES) {
      const folder = folderOf(f);
      if (folder === 'pipeline' || folder === 'build') {
        const via = loadsPackage(f, 'bullmq');
        if (via) bad.push(`${via} -> bullmq`);
      }
      if (folder === 'storage') {
        const pkgs = importsOf(f).filter((s) => !s.startsWith('.')).map(packageOf);
        for (const p of pkgs) if (p === 'bullmq' || p === 'koa' || p.startsWith('@koa/')) bad.push(`${rel(f)} -> ${p}`);
      }
    }
    if (edges.get('storage')?.has('config')) bad.push('storage -> config');
    if (reaches(edges, 'tarball', 'storage')) bad.push('tarball reaches storage');
    assert.deepEqual(bad, []);
  });

  it('no room but runtime imports config (apps may)', () => {
    const { edges } = roomGraph();
    const importers = [...edges].filter(([folder, to]) => folder !== 'runtime' && folder !== 'config' && to.has('config')).map(([f]) => f);
    assert.deepEqual(importers.sort(), []);
  });

  it('no function is named `process`', () => {
    assert.deepEqual(offenders(/\b(?:const|let|function)\s+process\b/, []), []);
  });
});
