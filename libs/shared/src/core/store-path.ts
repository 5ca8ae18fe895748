/** Store-path names: what Nix prints, checked and shortened without touching the store. */

/** Store paths are /nix/store/<32 base32 chars>-<name>. */
const STORE_PATH_RE = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;

/** True when `p` looks like a store path (used to check what Nix printed). */
export function isStorePath(p: string): boolean {
  return STORE_PATH_RE.test(p);
}

/** The package name of a store path without its hash: /nix/store/<hash>-glibc-2.37 -> glibc-2.37. */
export function storePathName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dash = base.indexOf('-');
  return dash === -1 ? base : base.slice(dash + 1);
}
