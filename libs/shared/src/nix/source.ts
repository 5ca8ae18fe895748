/**
 * Where a package set comes from. `prepare-image.nix` receives it as `srcType`
 * plus `srcArgs` (JSON), never as Nix code.
 *
 * - `path`: a directory holding a package set's default.nix (absolute path),
 *   e.g. the bundled set in nix/pkgs or a nixpkgs checkout.
 * - `git`: a git repository at a pinned commit (`rev`, 40 hex); `ref` names the
 *   branch or tag holding it when that is not the default branch.
 * - `nixpkgs`: a tarball URL (a channel's nixexprs.tar.xz or an archive of a
 *   nixpkgs commit); `sha256` pins its unpacked content when known.
 */
export type PackageSourceArgs =
  | { type: 'path'; path: string }
  | { type: 'git'; url: string; rev: string; ref?: string }
  | { type: 'nixpkgs'; url: string; sha256?: string };

/** The `--argstr` values prepare-image.nix and load-pkgs.nix take for a source. */
export interface NixSourceArgs {
  srcType: PackageSourceArgs['type'];
  /** JSON object text. */
  srcArgs: string;
}

/** A source that cannot be handed to Nix, and why. */
export interface InvalidSource {
  error: string;
}

const REV_RE = /^[0-9a-f]{40}$/;

/** Checks a source and turns it into prepare-image.nix's arguments, or says why it cannot. */
export function toNixSourceArgs(source: PackageSourceArgs): NixSourceArgs | InvalidSource {
  switch (source.type) {
    case 'path':
      if (!source.path.startsWith('/')) return { error: `package source path must be absolute: ${source.path}` };
      return { srcType: 'path', srcArgs: JSON.stringify({ path: source.path }) };
    case 'git':
      if (!REV_RE.test(source.rev)) return { error: `git rev must be 40 lowercase hex characters: ${source.rev}` };
      if (source.url === '') return { error: 'git url is empty' };
      return {
        srcType: 'git',
        srcArgs: JSON.stringify({ url: source.url, rev: source.rev, ...(source.ref ? { ref: source.ref } : {}) }),
      };
    case 'nixpkgs':
      if (source.url === '') return { error: 'nixpkgs url is empty' };
      return {
        srcType: 'nixpkgs',
        srcArgs: JSON.stringify({ url: source.url, ...(source.sha256 ? { sha256: source.sha256 } : {}) }),
      };
  }
}
