/** A store path of a channel's list, split into its hash and name. */
export interface StorePathItem {
  /** The 32-character store hash (the narinfo file name). */
  hash: string;
  /** The name after the hash. */
  name: string;
  path: string;
}

const STORE_PATH_RE = /^\/nix\/store\/([0-9a-df-np-sv-z]{32})-([A-Za-z0-9+\-._?=]+)$/;
const REF_RE = /^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;

/** Parses one line of a store-paths list; null when it is not a store path. */
export function parseStorePathLine(line: string): StorePathItem | null {
  const path = line.trim();
  const m = STORE_PATH_RE.exec(path);
  return m ? { hash: m[1]!, name: m[2]!, path } : null;
}

/** What a narinfo file says about a path's references. */
export type NarinfoParse = { ok: true; storePath: string; references: string[] } | { ok: false; error: string };

/**
 * Reads a narinfo file's `StorePath:` and `References:` lines. References are
 * base names (`<hash>-<name>`), the path itself included when it refers to
 * itself. Text without a store path is not a narinfo (e.g. an HTML page).
 */
export function parseNarinfo(text: string): NarinfoParse {
  let storePath: string | undefined;
  let references: string[] | undefined;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(': ');
    if (colon <= 0) continue;
    const key = line.slice(0, colon);
    const value = line.slice(colon + 2).trim();
    if (key === 'StorePath') storePath = value;
    else if (key === 'References') references = value === '' ? [] : value.split(/\s+/);
  }
  if (!storePath || !STORE_PATH_RE.test(storePath)) return { ok: false, error: 'no StorePath line' };
  const refs = references ?? [];
  const bad = refs.find((r) => !REF_RE.test(r));
  if (bad !== undefined) return { ok: false, error: `bad reference ${JSON.stringify(bad.slice(0, 80))}` };
  return { ok: true, storePath, references: refs };
}
