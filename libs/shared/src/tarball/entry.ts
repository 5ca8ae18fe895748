/**
 * The entry model shared by the tar walkers and the tar writer, plus the
 * ordering rule that makes layer tarballs reproducible.
 */

/** One tar entry, before the writer adds the fixed owner and mtime. */
export type TarEntry =
  | {
      type: 'directory';
      /** Path without a leading slash, ending in `/` (e.g. `nix/store/`). */
      name: string;
      /** Permission bits (`0o7777` mask), e.g. `0o555` or `0o1777`. */
      mode: number;
    }
  | {
      type: 'file';
      /** Path without a leading slash (e.g. `nix/store/abc-hello/bin/hello`). */
      name: string;
      mode: number;
      /** Size in bytes, as seen when the tree was walked. */
      size: number;
      /** Where the content is read from on this machine (may differ from `name`). */
      source: string;
    }
  | {
      type: 'symlink';
      name: string;
      mode: number;
      /** The link target, verbatim. */
      linkname: string;
    };

/** What went wrong while walking a tree; a closed set so callers can switch on it. */
export type TarballErrorCode =
  /** An input path is not absolute or contains `.`/`..` components. */
  | 'invalid-path'
  /** A socket, fifo or device node was found; store paths never hold those. */
  | 'unsupported-file-type'
  /** A file changed type while it was being walked (store paths are immutable, so this is a bug elsewhere). */
  | 'tree-changed';

/** A typed failure of the tarball walkers; it reaches the consumer as the stream's error. */
export class TarballError extends Error {
  override readonly name = 'TarballError';
  constructor(
    readonly code: TarballErrorCode,
    /** The filesystem path concerned. */
    readonly path: string,
    message: string,
  ) {
    super(`${message}: ${path}`);
  }
}

/** The mtime written into every entry: 1970-01-01T00:00:01Z, like files in the Nix store. */
export const FIXED_MTIME = new Date(1000);

/** Mode of directories the writer invents (parents such as `nix/`, symlink-layer directories). */
export const SYNTHETIC_DIR_MODE = 0o755;

/** Mode written for symlinks (their own mode is meaningless on Linux). */
export const SYMLINK_MODE = 0o777;

/**
 * The key a directory child is ordered by: its name, plus `/` for
 * directories. Ordering the children of every directory by the bytes of this
 * key and walking depth-first gives exactly the byte order of full entry names
 * (directory names end in `/`), because a directory's own entry is a prefix of
 * all of its descendants and no sibling name contains `/`.
 */
export function childKey(name: string, isDirectory: boolean): Buffer {
  return Buffer.from(isDirectory ? `${name}/` : name, 'utf8');
}

/** Sorts items by `key(item)` in byte order (not UTF-16 order); returns a new array. */
export function sortByKey<T>(items: readonly T[], key: (item: T) => Buffer): T[] {
  return items
    .map((item) => ({ item, k: key(item) }))
    .sort((a, b) => Buffer.compare(a.k, b.k))
    .map((x) => x.item);
}
