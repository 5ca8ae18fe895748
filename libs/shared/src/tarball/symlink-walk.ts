import { lstatSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { SYNTHETIC_DIR_MODE, SYMLINK_MODE, type TarEntry, childKey, sortByKey } from './entry';
import { absoluteComponents } from './store-walk';

/**
 * One contributor to a directory of the symlink layer: a directory inside a
 * package, or a directory the layer adds itself (`tmp/`, `usr/bin/`).
 */
type Source =
  | { kind: 'package'; physical: string; logical: string }
  | { kind: 'fixed'; mode: number; children: Map<string, FixedNode> };

type FixedNode = { kind: 'link'; target: string } | Extract<Source, { kind: 'fixed' }>;

/** A child of a merged directory: a directory with its contributors, or a link (first contributor wins). */
type Merged = { name: string; dir: { mode: number; sources: Source[] } } | { name: string; link: string };

/** Options of {@link symlinkLayerEntries}. */
export interface SymlinkLayerWalkOptions {
  /** Store path of coreutils; when set the layer holds `usr/bin/env -> <coreutilsPath>/bin/env`. */
  coreutilsPath?: string;
  /** Directory the store paths are read under (a chroot store's root). Link targets ignore it. */
  root: string;
}

function fixedTree(coreutilsPath: string | undefined): Source {
  const children = new Map<string, FixedNode>();
  children.set('tmp', { kind: 'fixed', mode: 0o1777, children: new Map() });
  if (coreutilsPath !== undefined) {
    absoluteComponents(coreutilsPath);
    const bin: FixedNode = { kind: 'fixed', mode: SYNTHETIC_DIR_MODE, children: new Map() };
    bin.children.set('env', { kind: 'link', target: `${coreutilsPath}/bin/env` });
    const usr: FixedNode = { kind: 'fixed', mode: SYNTHETIC_DIR_MODE, children: new Map([['bin', bin]]) };
    children.set('usr', usr);
  }
  return { kind: 'fixed', mode: SYNTHETIC_DIR_MODE, children };
}

/**
 * The entries of the symlink layer, in byte order of names: the union of the
 * packages' trees where directories are real (mode 0755) and every file or
 * symlink of a package becomes a symlink to its store path; on a name clash the
 * earlier contributor wins (the layer's own `tmp/` and `usr/bin/env` come
 * first, then the packages in the given order). A package whose store path is
 * a file or symlink contributes nothing. Symlinks inside packages are linked
 * to, not followed, so a package's `lib -> lib64` does not merge with another
 * package's `lib/`.
 *
 * Paths are checked at once (throws `TarballError('invalid-path')`); the
 * packages are read lazily, with synchronous calls, as entries are pulled.
 */
export function symlinkLayerEntries(storePaths: readonly string[], opts: SymlinkLayerWalkOptions): Iterable<TarEntry> {
  for (const p of storePaths) absoluteComponents(p);
  const fixed = fixedTree(opts.coreutilsPath);
  return (function* () {
    const sources: Source[] = [fixed];
    for (const logical of storePaths) {
      const physical = path.join(opts.root, logical);
      if (lstatSync(physical).isDirectory()) sources.push({ kind: 'package', physical, logical });
    }
    yield* walkMerged(sources, '');
  })();
}

function* walkMerged(sources: readonly Source[], prefix: string): Generator<TarEntry> {
  const merged = new Map<string, Merged>();
  for (const source of sources) {
    for (const child of listSource(source)) {
      const seen = merged.get(child.name);
      if (!seen) merged.set(child.name, child);
      else if ('dir' in seen && 'dir' in child) seen.dir.sources.push(...child.dir.sources);
    }
  }
  const ordered = sortByKey([...merged.values()], (m) => childKey(m.name, 'dir' in m));
  for (const m of ordered) {
    const name = prefix + m.name;
    if ('dir' in m) {
      yield { type: 'directory', name: `${name}/`, mode: m.dir.mode };
      yield* walkMerged(m.dir.sources, `${name}/`);
    } else {
      yield { type: 'symlink', name, mode: SYMLINK_MODE, linkname: m.link };
    }
  }
}

function listSource(source: Source): Merged[] {
  if (source.kind === 'fixed') {
    return [...source.children].map(([name, node]): Merged =>
      node.kind === 'link' ? { name, link: node.target } : { name, dir: { mode: node.mode, sources: [node] } },
    );
  }
  const dirents = readdirSync(source.physical, { withFileTypes: true });
  return dirents.map((d): Merged => {
    const logical = `${source.logical}/${d.name}`;
    if (!d.isDirectory()) return { name: d.name, link: logical };
    const sub: Source = { kind: 'package', physical: path.join(source.physical, d.name), logical };
    return { name: d.name, dir: { mode: SYNTHETIC_DIR_MODE, sources: [sub] } };
  });
}
