import type { Popularity } from '../core/graph';
import { storePathName } from '../core/store-path';

/**
 * Nixery's popularity counting (popcount/popcount.go): for every package
 * (a store path of the channel's list, or a top-level package of a package
 * set) each of its references adds one to the count of that reference's name
 * without its hash. References include the package itself when it refers to
 * itself, as Nix lists them. Names counted only once (a package nothing else
 * refers to) are dropped.
 *
 * `referenceLists` holds one list per package, of store paths or of their
 * base names (`<hash>-<name>`, as narinfo files write them).
 */
export function countReferences(referenceLists: Iterable<readonly string[]>): Popularity {
  const counts = new Map<string, number>();
  for (const refs of referenceLists) {
    for (const ref of refs) {
      if (ref === '') continue;
      const name = storePathName(ref);
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  }
  const table: Popularity = {};
  for (const name of [...counts.keys()].sort()) {
    const n = counts.get(name)!;
    if (n > 1) table[name] = n;
  }
  return table;
}

/**
 * The popularity a path needs to get a layer of its own, for a package set of
 * `packages` packages. Nixery's threshold of 100 references was chosen for
 * nixpkgs, whose channels list about 100,000 store paths: one package in a
 * thousand. A smaller set gets the same share, but at least 2 (referenced by
 * more than one package), so that its shared libraries stand apart too.
 */
export function popularityThresholdFor(packages: number): number {
  return Math.min(100, Math.max(2, Math.ceil(packages / 1000)));
}
