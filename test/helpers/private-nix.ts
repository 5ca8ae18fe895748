/**
 * A Nix store of a test's own: a scratch directory bind-mounted over /nix in
 * a private mount namespace (`unshare --mount`), so processes started through
 * it see an empty /nix/store with its own database and roots, at the usual
 * path. Nothing in the project changes for it (store paths stay /nix/store/...,
 * layers read them from disk as always), and a garbage collection inside it
 * can delete nothing of the machine's real store, which every other test and
 * CI share. The mount lives only as long as the namespace's processes; the
 * host sees the store's files under `dir`.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NIX_ENV } from './nix-env';
import { makeScratchDir, removeScratchDir } from './proc';

/** A private Nix store. */
export interface PrivateNix {
  /** The host directory mounted as /nix (its store is `<dir>/store`). */
  dir: string;
  /** Command prefix running the rest of a command line with this store as /nix. */
  wrap: string[];
  /** Runs a shell script with this store as /nix (and the project's NIX_CONFIG); returns its stdout, trimmed. */
  sh(script: string): string;
  /** Makes `<dir>/../bin/<program>` for each program: a script running it with this store as /nix; returns that directory. */
  programs(names: readonly string[]): Promise<string>;
  /** Where a store path's file is on the host. */
  hostPath(storePath: string): string;
  remove(): Promise<void>;
}

/** Makes an empty private Nix store. Needs root (mount namespaces), as the rest of the suite does. */
export async function makePrivateNix(): Promise<PrivateNix> {
  const root = await makeScratchDir('nixery-private-nix-');
  const dir = path.join(root, 'nix');
  await mkdir(dir);
  const wrap = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /nix && exec "$@"', dir];
  return {
    dir,
    wrap,
    sh: (script) =>
      execFileSync(wrap[0] as string, [...wrap.slice(1), 'sh', '-c', script], { env: NIX_ENV, encoding: 'utf8' }).trim(),
    programs: async (names) => {
      const bin = path.join(root, 'bin');
      await mkdir(bin, { recursive: true });
      for (const name of names) {
        await writeFile(path.join(bin, name), `#!/bin/sh\nexec ${wrap.map((w) => `'${w}'`).join(' ')} ${name} "$@"\n`);
        await chmod(path.join(bin, name), 0o755);
      }
      return bin;
    },
    hostPath: (storePath) => path.join(dir, 'store', path.basename(storePath)),
    remove: async () => {
      // A store path made immutable by a test would keep rm from removing it. Symlinks have no
      // flags (chattr -R fails on them, e.g. a package's bin/sh -> bash), so they are left out.
      execFileSync('find', [path.join(dir, 'store'), '!', '-type', 'l', '-exec', 'chattr', '-i', '{}', '+'], { stdio: 'ignore' });
      await removeScratchDir(root);
    },
  };
}
