import { isStorePath } from '../core/store-path';

/** A store path of a channel's list and its hash. */
export interface StorePathItem {
  /** The 32-character store hash (the narinfo file name). */
  hash: string;
  path: string;
}

const STORE_DIR = '/nix/store/';

/** Parses one line of a store-paths list; null when it is not a store path. */
export function parseStorePathLine(line: string): StorePathItem | null {
  const path = line.trim();
  return isStorePath(path) ? { hash: path.slice(STORE_DIR.length, STORE_DIR.length + 32), path } : null;
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
  if (!storePath || !isStorePath(storePath)) return { ok: false, error: 'no StorePath line' };
  const refs = references ?? [];
  const bad = refs.find((r) => !isStorePath(STORE_DIR + r));
  if (bad !== undefined) return { ok: false, error: `bad reference ${JSON.stringify(bad.slice(0, 80))}` };
  return { ok: true, storePath, references: refs };
}
