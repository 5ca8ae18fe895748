/**
 * Package names and versions from store path names, split the way Nix's
 * `builtins.parseDrvName` splits them: at the first `-` followed by a
 * character that is not a letter. `hello-2.12.1` -> hello / 2.12.1,
 * `bash-interactive-5.2-15` -> bash-interactive / 5.2-15, `iana-etc` ->
 * iana-etc / '' (no version).
 */
export interface DrvName {
  name: string;
  version: string;
}

/** Splits a name (without its store hash) into name and version, as `builtins.parseDrvName` does. */
export function parseDrvName(s: string): DrvName {
  for (let i = 0; i + 1 < s.length; i++) {
    if (s[i] === '-' && !/[A-Za-z]/.test(s[i + 1]!)) return { name: s.slice(0, i), version: s.slice(i + 1) };
  }
  return { name: s, version: '' };
}
