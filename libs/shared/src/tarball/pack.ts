/**
 * Reproducible layer tarballs: the same store paths give the same bytes on any
 * machine. Entries are sorted by name (byte order), directories end in `/` and
 * come with their parents, owner is 0:0 with empty names, mtime is
 * 1970-01-01T00:00:01Z, modes are kept, symlinks stay symlinks and hard links
 * become regular files. Contents are streamed one file at a time.
 */
import type { Readable } from 'node:stream';
import { storePathEntries } from './store-walk';
import { symlinkLayerEntries } from './symlink-walk';
import { writeTar } from './writer';


/** Options shared by the packers. */
export interface PackOptions {
  /**
   * Directory the store paths are read under, for a store kept below another
   * root (e.g. a chroot store whose `/nix/store` lives at `<root>/nix/store`).
   * Entry names and link targets use the paths as given. Default: `/`.
   */
  root?: string;
}

/** Options of {@link packSymlinkLayer}. */
export interface SymlinkLayerOptions extends PackOptions {
  /** Store path of coreutils; when set the layer holds `usr/bin/env -> <coreutilsPath>/bin/env`. Default: none. */
  coreutilsPath?: string;
}

/**
 * An uncompressed tar of `paths` (absolute store paths: directories, files or
 * symlinks), named without the leading slash (`nix/store/<hash>-name/...`) and
 * preceded by their parent directories (`nix/`, `nix/store/`, mode 0755).
 * Invalid (relative) paths throw a `TarballError` at once; filesystem errors
 * end the stream with an error.
 */
export function packStorePaths(paths: string[], opts: PackOptions = {}): Readable {
  return writeTar(storePathEntries(paths, opts.root ?? '/'));
}

/**
 * An uncompressed tar of the image's symlink layer: for each package (in the
 * given order; the first wins on a clash) real directories and symlinks to its
 * files, e.g. `bin/hello -> /nix/store/xxx-hello/bin/hello`; plus `tmp/`
 * (mode 1777) and, with `coreutilsPath`, `usr/bin/env`. Packages whose store
 * path is a file or symlink are skipped.
 */
export function packSymlinkLayer(packages: { storePath: string }[], opts: SymlinkLayerOptions = {}): Readable {
  return writeTar(
    symlinkLayerEntries(
      packages.map((p) => p.storePath),
      { coreutilsPath: opts.coreutilsPath, root: opts.root ?? '/' },
    ),
  );
}
