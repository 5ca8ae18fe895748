import type { ClosureGraph, StorePathInfo } from '../core/graph';
import { isStorePath } from '../core/store-path';

/**
 * Parses the output of `nix path-info --json --recursive` into path infos
 * keyed by store path, with their NAR hashes when Nix gives them. Returns an error string when the text is not what Nix 2.x prints (an array
 * of `{ path, narSize, references }`; newer Nix prints an object keyed by path,
 * which is accepted too).
 */
export function parsePathInfoJson(text: string): { paths: Record<string, StorePathInfo> } | { error: string } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { error: `nix path-info printed invalid JSON: ${(e as Error).message}` };
  }
  let entries: Array<[string, unknown]>;
  if (Array.isArray(data)) {
    entries = data.map((d: unknown) => [String((d as { path?: unknown } | null)?.path ?? ''), d]);
  } else if (data !== null && typeof data === 'object') {
    entries = Object.entries(data as Record<string, unknown>);
  } else {
    return { error: 'nix path-info printed neither an array nor an object' };
  }
  const paths: Record<string, StorePathInfo> = {};
  for (const [path, raw] of entries) {
    const info = raw as { narSize?: unknown; narHash?: unknown; references?: unknown; valid?: unknown } | null;
    if (!isStorePath(path) || info === null || typeof info !== 'object') {
      return { error: `nix path-info printed an unexpected entry for ${JSON.stringify(path)}` };
    }
    if (info.valid === false) return { error: `store path is not valid: ${path}` };
    const refs = Array.isArray(info.references) ? info.references : [];
    const references = refs.map(String).map((r) => (r.startsWith('/') ? r : `/nix/store/${r}`));
    if (typeof info.narSize !== 'number' || !references.every(isStorePath)) {
      return { error: `nix path-info printed an unexpected entry for ${path}` };
    }
    paths[path] = {
      path,
      narSize: info.narSize,
      references: [...references].sort(),
      ...(typeof info.narHash === 'string' ? { narHash: info.narHash } : {}),
    };
  }
  return { paths };
}

/** Every store path of a closure graph, sorted. */
export function storePathsOf(graph: ClosureGraph): string[] {
  return Object.keys(graph.paths).sort();
}

/** The closure of `roots` inside `graph` (the roots and all they reference, transitively), sorted. */
export function closureOf(graph: ClosureGraph, roots: readonly string[]): string[] {
  const seen = new Set<string>();
  const stack = [...roots];
  while (stack.length > 0) {
    const p = stack.pop() as string;
    if (seen.has(p)) continue;
    seen.add(p);
    for (const r of graph.paths[p]?.references ?? []) if (!seen.has(r)) stack.push(r);
  }
  return [...seen].sort();
}

/** Sum of the NAR sizes of all paths of a graph, in bytes. */
export function closureSize(graph: ClosureGraph): number {
  return Object.values(graph.paths).reduce((n, p) => n + p.narSize, 0);
}
