/**
 * Copies the bundled package set (nix/pkgs) to a scratch directory for a
 * test that needs its own variant: a `slow` package with its own sleep (and
 * a nonce, so it is a fresh derivation that really sleeps), and optionally
 * extra attributes written as Nix text. Identical packages keep their store
 * paths (the copy has the same files), so nothing else is rebuilt.
 */
import { cp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO } from './nixery';
import { makeScratchDir } from './proc';

/** A copied package set. */
export interface PackageSetCopy {
  /** Directory to pass as NIXERY_PKGS_PATH. */
  dir: string;
  /** Environment for a Nixery using it (no binary cache: the copy is not "the bundled set"). */
  env: Record<string, string>;
  remove(): Promise<void>;
}

/** Copies nix/pkgs; `slowSeconds` sets the `slow` package's sleep, `extraAttrs` adds attributes (Nix text, `{ system }` in scope). */
export async function copyPackageSet(opts: { slowSeconds?: number; extraAttrs?: string } = {}): Promise<PackageSetCopy> {
  const root = await makeScratchDir('nixery-pkgs-');
  const dir = path.join(root, 'pkgs');
  await cp(path.join(REPO, 'nix/pkgs'), dir, { recursive: true });
  const nonce = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const base = (await readFile(path.join(REPO, 'nix/pkgs/slow-seconds'), 'utf8')).trim().split(/\s+/)[0] ?? '3';
  await writeFile(path.join(dir, 'slow-seconds'), `${opts.slowSeconds ?? base} ${nonce}\n`);
  if (opts.extraAttrs) {
    await rename(path.join(dir, 'default.nix'), path.join(dir, 'base.nix'));
    await writeFile(
      path.join(dir, 'default.nix'),
      `{ system ? builtins.currentSystem }:\n(import ./base.nix { inherit system; }) // {\n${opts.extraAttrs}\n}\n`,
    );
  }
  return {
    dir,
    env: { NIXERY_PKGS_PATH: dir, NIXERY_NIX_OPTIONS: '--option substitute false' },
    remove: () => rm(root, { recursive: true, force: true }),
  };
}

/** Nix text of a package set attribute `attr` built by busybox's sh running `script` (for `extraAttrs`). */
export function busyboxPackage(attr: string, name: string, script: string): string {
  return `
  ${attr} = derivation {
    name = "${name}";
    inherit system;
    builder = "/bin/busybox";
    args = [ "sh" "-c" "${script}" ];
  };`;
}
