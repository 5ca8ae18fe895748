/**
 * Popularity-based layering: groups the store paths of an image's runtime closure into at
 * most `budget` layers so that layers are likely to be shared between images with
 * overlapping dependencies. A re-implementation of Nixery's algorithm (TVL Nixery,
 * `builder/layers.go`); pure, no I/O.
 *
 * # Inputs
 *
 * - the runtime closure graph (top-level package paths, every path's NAR size and references);
 * - popularity: for a package name without its store hash, how many packages in the package
 *   set reference it (Nixery's popcount data; names it lacks count as 1);
 * - the layer budget: the most layers the closure may take.
 *
 * # Algorithm
 *
 * 1. Build a graph with a virtual image root: root -> each top-level path, and each path ->
 *    each of its references (self-references dropped).
 * 2. Flag paths that deserve a layer of their own and add an edge root -> path for each:
 *    - popular: popularity >= `popularityThreshold` (default 100);
 *    - heavy: size > `sizeThreshold` (default 100 MB), where size is the path's closure size
 *      (Nix's `closureSize`, as Nixery reads it) or, with `sizeMetric: 'nar'`, its own NAR size;
 *    - `nss-cacert` and `iana-etc` (Nixery adds them to every image) get popularity 500000.
 * 3. Compute the dominator tree from the root (Cooper-Harvey-Kennedy). Each child of the root
 *    starts a layer holding every path it dominates: a path reached only through one package
 *    travels with it, a path shared by several subtrees (or flagged in step 2) stands alone.
 * 4. Rate each layer: popularity of its dominating path × sum of the sizes (same metric as
 *    step 2) of the layer's paths. Popular, big layers are worth keeping apart.
 * 5. If there are more layers than the budget, keep the `budget - 1` best rated layers and
 *    merge all the others into one layer, whose rating is the sum of theirs (Nixery merges
 *    the lowest rated layer into the next one until the budget is met: the same result).
 *
 * # Worked example
 *
 * Nixery's example graph; sizes are NAR sizes in MB, popularities as listed (others 1):
 *
 * ```
 * image root
 * ├───> A ─────┐
 * │            v
 * ├───> B ───> E        E: 1 MB, popularity 400 (popular)
 * │            ^
 * ├───> C ─────┘        A, B, C: 1 MB each
 * │     │
 * │     v
 * └───> D ───> F        D: 2 MB, popularity 2;  F: 1 MB
 *       │
 *       └────> G        G: 150 MB, popularity 3 (heavy)
 * ```
 *
 * Closure sizes: A 2, B 2, C 155, D 153, E 1, F 1, G 150. E is popular and G heavy, so both
 * get an edge from the root (C and D are heavy too, but already hang off the root). The
 * dominator tree is root -> {A, B, C, E, D -> F, G}, which gives six layers:
 *
 * ```
 * { G }      3 × 150         = 450
 * { E }    400 × 1           = 400
 * { D, F }   2 × (153 + 1)   = 308
 * { C }      1 × 155         = 155
 * { A }      1 × 2           =   2
 * { B }      1 × 2           =   2
 * ```
 *
 * Layer budget 1:   { A, B, C, D, E, F, G } 1317
 * Layer budget 2:   { A, B, C, D, E, F } 867, { G } 450
 * Layer budget 3:   { A, B, C, D, F } 467, { G } 450, { E } 400
 * Layer budget 4:   { G } 450, { E } 400, { D, F } 308, { A, B, C } 159
 * Layer budget 5:   { G }, { E }, { D, F }, { C }, { A, B } 4
 * Layer budget 6+:  { G }, { E }, { D, F }, { C }, { A }, { B }
 *
 * These are Nixery's documented groupings (its budget-10 line leaves out { G }, which its
 * code keeps). With `sizeMetric: 'nar'` the ratings become 450, 400, 6, 1, 1, 1 and the
 * groupings for budgets 1 to 4 are the same.
 *
 * # Layer budget
 *
 * `budget` counts the closure's layers only. Nixery calls its grouping with a budget of 94
 * (`NIXERY_CLOSURE_BUDGET`) and then appends the symlink layer, so its images have at most
 * 95 layers, well under the 125 that Docker accepts. Callers here do the same: pass the
 * image's layer limit minus the layers they add themselves (the symlink layer).
 *
 * # Where this differs from Nixery, on purpose
 *
 * - Ties are broken by content, so the output is fully deterministic (Go's `sort.Slice`
 *   is not stable); layers come out by rating, highest first (Nixery's manifest order).
 * - A merged layer's contents are sorted too (Nixery concatenates them), so the same set of
 *   paths always gives the same layer key.
 * - Paths of the graph that no top-level path reaches get an edge from the root instead of
 *   being dropped; a reference to a path missing from the graph is an error.
 * - Closure sizes are computed from the graph's NAR sizes rather than read from Nix.
 * - Ratings are JavaScript numbers (exact up to 2^53; Nixery's uint64 can wrap instead).
 */

import type { ClosureGraph, Popularity } from '../core/graph';
import { storePathName } from '../core/store-path';
import { closureSizes } from './closure-size';
import { immediateDominators } from './dominators';
import {
  BOOSTED_POPULARITY,
  DEFAULT_BOOSTED_PREFIXES,
  DEFAULT_POPULARITY_THRESHOLD,
  DEFAULT_SIZE_THRESHOLD,
  type Layer,
  LayeringInputError,
  type LayeringOptions,
  type SizeMetric,
} from './options';

/** A layer while grouping: vertex numbers (ascending = store path order) and rating. */
interface Group {
  members: number[];
  rating: number;
}

/**
 * Groups a closure into at most `opts.budget` layers (see the module comment).
 *
 * Deterministic: the same graph and options give the same layers in the same order, whatever
 * the order of keys, roots or references. Every path of `graph.paths` is in exactly one layer.
 * Layers are ordered by merge rating, highest first, ties by contents.
 *
 * @throws LayeringInputError `INVALID_BUDGET` or `MISSING_PATH`.
 */
export function groupLayers(graph: ClosureGraph, opts: LayeringOptions): Layer[] {
  const { budget } = opts;
  if (!Number.isInteger(budget) || budget < 1) {
    throw new LayeringInputError('INVALID_BUDGET', `layer budget must be an integer >= 1, got ${budget}`);
  }
  const popularityThreshold = opts.popularityThreshold ?? DEFAULT_POPULARITY_THRESHOLD;
  const sizeThreshold = opts.sizeThreshold ?? DEFAULT_SIZE_THRESHOLD;
  const boosted = opts.boostedPrefixes ?? DEFAULT_BOOSTED_PREFIXES;

  // Vertex 0 is the image root; vertex i + 1 is the i-th store path in sorted order, so
  // ascending vertex numbers are ascending store paths.
  const paths = Object.keys(graph.paths).sort(compareStrings);
  const n = paths.length + 1;
  const vertexOf = new Map<string, number>();
  paths.forEach((p, i) => vertexOf.set(p, i + 1));

  const rootEdges = new Set<number>();
  for (const p of graph.roots) {
    const v = vertexOf.get(p);
    if (v === undefined) {
      throw new LayeringInputError('MISSING_PATH', `top-level path ${p} is not in the closure graph`, p);
    }
    rootEdges.add(v);
  }

  const successors: number[][] = [[]];
  const ownSize = new Float64Array(n);
  for (let v = 1; v < n; v++) {
    const path = paths[v - 1]!;
    const info = graph.paths[path]!;
    ownSize[v] = info.narSize;
    const refs = new Set<number>();
    for (const r of info.references) {
      if (r === path) continue; // Nix lists a self-reference for most paths
      const w = vertexOf.get(r);
      if (w === undefined) {
        throw new LayeringInputError('MISSING_PATH', `${path} references ${r}, which is not in the closure graph`, r, path);
      }
      refs.add(w);
    }
    successors.push([...refs].sort(compareNumbers));
  }

  // The root has no edges yet, so its (zero) size does not leak into anything.
  const size = opts.sizeMetric === 'nar' ? ownSize : closureSizes(successors, ownSize);

  const popularity = new Float64Array(n);
  for (let v = 1; v < n; v++) {
    popularity[v] = popularityOf(storePathName(paths[v - 1]!), opts.popularity, boosted);
    if (popularity[v]! >= popularityThreshold || size[v]! > sizeThreshold) rootEdges.add(v);
  }

  // Paths nothing reaches would fall out of the dominator tree: hang them off the root.
  const reached = new Uint8Array(n);
  const mark = (start: number): void => {
    if (reached[start] === 1) return;
    const stack = [start];
    reached[start] = 1;
    while (stack.length > 0) {
      for (const w of successors[stack.pop()!]!) {
        if (reached[w] === 0) {
          reached[w] = 1;
          stack.push(w);
        }
      }
    }
  };
  for (const v of rootEdges) mark(v);
  for (let v = 1; v < n; v++) {
    if (reached[v] === 0) {
      rootEdges.add(v);
      mark(v);
    }
  }
  successors[0] = [...rootEdges].sort(compareNumbers);

  const idom = immediateDominators(successors, 0);

  // top[v]: the child of the root whose subtree holds v, i.e. v's layer.
  const top = new Int32Array(n).fill(-1);
  const chain: number[] = [];
  for (let v = 1; v < n; v++) {
    let u = v;
    while (top[u] === -1 && idom[u] !== 0) {
      chain.push(u);
      u = idom[u]!;
    }
    const t = top[u] === -1 ? u : top[u]!;
    top[u] = t;
    for (const c of chain) top[c] = t;
    chain.length = 0;
  }

  const byTop = new Map<number, { members: number[]; size: number }>();
  for (let v = 1; v < n; v++) {
    const t = top[v]!;
    let g = byTop.get(t);
    if (g === undefined) {
      g = { members: [], size: 0 };
      byTop.set(t, g);
    }
    g.members.push(v);
    g.size += size[v]!;
  }

  let groups: Group[] = [...byTop].map(([t, g]) => ({ members: g.members, rating: popularity[t]! * g.size }));
  groups.sort(compareGroups);

  if (groups.length > budget) {
    const tail = groups.slice(budget - 1);
    const merged: Group = {
      members: tail.flatMap((g) => g.members).sort(compareNumbers),
      rating: tail.reduce((sum, g) => sum + g.rating, 0),
    };
    groups = [...groups.slice(0, budget - 1), merged].sort(compareGroups);
  }

  return groups.map((g) => ({ contents: g.members.map((v) => paths[v - 1]!), mergeRating: g.rating }));
}

/** Popularity of a package name: boosted, else from the data, else 1 (as Nixery). */
function popularityOf(name: string, data: Popularity, boosted: readonly string[]): number {
  if (boosted.some((prefix) => name.startsWith(prefix))) return BOOSTED_POPULARITY;
  return Object.hasOwn(data, name) ? data[name]! : 1;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareNumbers(a: number, b: number): number {
  return a - b;
}

/** Rating descending, then contents ascending (vertex order is store path order). */
function compareGroups(a: Group, b: Group): number {
  if (a.rating !== b.rating) return b.rating - a.rating;
  const len = Math.min(a.members.length, b.members.length);
  for (let i = 0; i < len; i++) {
    const d = a.members[i]! - b.members[i]!;
    if (d !== 0) return d;
  }
  return a.members.length - b.members.length;
}
