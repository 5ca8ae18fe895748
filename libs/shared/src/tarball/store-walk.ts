import { type Dirent, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { SYNTHETIC_DIR_MODE, SYMLINK_MODE, TarballError, type TarEntry, childKey, sortByKey } from './entry';

/**
 * Checks that `p` is an absolute, normalised POSIX path (no `.`/`..`, no
 * trailing slash) and returns its components, e.g. `/nix/store/x` -> `['nix','store','x']`.
 * Throws `TarballError('invalid-path')` otherwise.
 */
export function absoluteComponents(p: string): string[] {
  const parts = p.split('/').slice(1);
  if (!p.startsWith('/') || parts.some((c) => c === '' || c === '.' || c === '..')) {
    throw new TarballError('invalid-path', p, 'expected an absolute normalised path');
  }
  return parts;
}

/** A node of the tree made of the requested paths and their ancestors. */
interface Ancestor {
  children: Map<string, Ancestor>;
  /** Set when this node is one of the requested paths (then `children` is unused). */
  logical?: string;
}

function ancestorTree(paths: readonly string[]): Ancestor {
  const root: Ancestor = { children: new Map() };
  // Shorter paths first, so a requested path nested in another one is found to be covered.
  const sorted = [...new Set(paths)].map((p) => ({ p, parts: absoluteComponents(p) }));
  sorted.sort((a, b) => a.parts.length - b.parts.length);
  for (const { p, parts } of sorted) {
    let node = root;
    let covered = false;
    for (const part of parts) {
      if (node.logical !== undefined) {
        covered = true;
        break;
      }
      let next = node.children.get(part);
      if (!next) {
        next = { children: new Map() };
        node.children.set(part, next);
      }
      node = next;
    }
    if (!covered && node.logical === undefined) {
      node.logical = p;
      node.children.clear();
    }
  }
  return root;
}

/**
 * The entries of a tar holding `paths` (absolute, e.g. `/nix/store/abc-hello`)
 * and their parent directories, in byte order of entry names. Each path is
 * read at `root` + path, so a chroot store can be packed under its logical
 * names; parents get mode 0755, everything else keeps its own mode. A path
 * inside another requested path is packed once.
 *
 * The paths are checked at once (throws `TarballError('invalid-path')`); the
 * filesystem is walked lazily, one directory listing at a time, as the
 * entries are pulled. Filesystem calls are synchronous (see the writer for
 * why); file contents are not read here.
 */
export function storePathEntries(paths: readonly string[], root: string): Iterable<TarEntry> {
  return walkAncestor(ancestorTree(paths), '', root);
}

function* walkAncestor(node: Ancestor, prefix: string, root: string): Generator<TarEntry> {
  const children = [...node.children].map(([name, child]) => ({
    name,
    node: child,
    stats: child.logical === undefined ? undefined : lstatSync(path.join(root, child.logical)),
  }));
  const ordered = sortByKey(children, (c) => childKey(c.name, c.stats ? c.stats.isDirectory() : true));
  for (const child of ordered) {
    const name = prefix + child.name;
    if (child.stats && child.node.logical !== undefined) {
      yield* walkPhysical(path.join(root, child.node.logical), name, child.stats);
    } else {
      yield { type: 'directory', name: `${name}/`, mode: SYNTHETIC_DIR_MODE };
      yield* walkAncestor(child.node, `${name}/`, root);
    }
  }
}

function* walkPhysical(physical: string, name: string, stats: Stats): Generator<TarEntry> {
  const mode = stats.mode & 0o7777;
  if (stats.isSymbolicLink()) {
    yield { type: 'symlink', name, mode: SYMLINK_MODE, linkname: readlinkSync(physical) };
  } else if (stats.isFile()) {
    // Hard links are not detected: each name is stored as a regular file.
    yield { type: 'file', name, mode, size: stats.size, source: physical };
  } else if (stats.isDirectory()) {
    yield { type: 'directory', name: `${name}/`, mode };
    const dirents = readdirSync(physical, { withFileTypes: true });
    for (const dirent of sortByKey(dirents, (d) => childKey(d.name, d.isDirectory()))) {
      const childPath = path.join(physical, dirent.name);
      const childStats = lstatSync(childPath);
      checkSameType(dirent, childStats, childPath);
      yield* walkPhysical(childPath, `${name}/${dirent.name}`, childStats);
    }
  } else {
    throw new TarballError('unsupported-file-type', physical, 'not a file, directory or symlink');
  }
}

function checkSameType(dirent: Dirent, stats: Stats, p: string): void {
  if (dirent.isDirectory() !== stats.isDirectory()) {
    throw new TarballError('tree-changed', p, 'changed type while being packed');
  }
}
