/**
 * Closure sizes: for every vertex, the sum of the own sizes of all vertices reachable from
 * it, itself included. For a Nix store path with `narSize` as its own size this is what Nix
 * reports as `closureSize` (what Nixery's layering reads from `exportReferencesGraph`).
 *
 * Shared dependencies must be counted once, so sizes cannot simply be added up the graph.
 * The graph is condensed into strongly connected components (Tarjan; Nix closures are
 * acyclic apart from self-references, but a cycle must not break this), then reachable
 * sets are propagated as bitsets from the leaves up. To bound memory the bitsets cover
 * `CHUNK_BITS` target components per pass: memory is `components * CHUNK_BITS / 8` bytes
 * (2.5 MB for 5,000 paths) plus a 1 MB lookup table, and the number of passes is
 * `components / CHUNK_BITS`.
 */

import type { Successors } from './dominators';

/** Default number of target components per propagation pass. */
export const CHUNK_BITS = 4096;

/** Strongly connected components, numbered so that every edge goes to an equal or lower number. */
export function stronglyConnectedComponents(successors: Successors): { component: Int32Array; count: number } {
  const n = successors.length;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const onStack = new Uint8Array(n);
  const component = new Int32Array(n).fill(-1);
  const sccStack = new Int32Array(n);
  let sccTop = 0;
  const callVertex = new Int32Array(n);
  const callNext = new Int32Array(n);
  let callTop = 0;
  let counter = 0;
  let count = 0;

  const open = (v: number): void => {
    index[v] = counter;
    low[v] = counter;
    counter++;
    sccStack[sccTop++] = v;
    onStack[v] = 1;
    callVertex[callTop] = v;
    callNext[callTop] = 0;
    callTop++;
  };

  for (let s = 0; s < n; s++) {
    if (index[s] !== -1) continue;
    open(s);
    while (callTop > 0) {
      const v = callVertex[callTop - 1]!;
      const succ = successors[v]!;
      const i = callNext[callTop - 1]!;
      if (i < succ.length) {
        callNext[callTop - 1] = i + 1;
        const w = succ[i]!;
        if (index[w] === -1) open(w);
        else if (onStack[w] === 1 && index[w]! < low[v]!) low[v] = index[w]!;
        continue;
      }
      callTop--;
      if (callTop > 0) {
        const u = callVertex[callTop - 1]!;
        if (low[v]! < low[u]!) low[u] = low[v]!;
      }
      if (low[v] === index[v]) {
        let x: number;
        do {
          x = sccStack[--sccTop]!;
          onStack[x] = 0;
          component[x] = count;
        } while (x !== v);
        count++;
      }
    }
  }
  return { component, count };
}

/**
 * Closure size of every vertex.
 *
 * @param successors the graph (vertices `0..n-1`).
 * @param ownSizes the size of each vertex on its own (e.g. NAR size in bytes).
 * @param chunkBits target components per pass (>= 1); tests lower it to exercise several passes.
 * @returns `result[v]` = sum of `ownSizes[w]` over every `w` reachable from `v`, `v` included.
 */
export function closureSizes(successors: Successors, ownSizes: ArrayLike<number>, chunkBits = CHUNK_BITS): Float64Array {
  const n = successors.length;
  const { component, count } = stronglyConnectedComponents(successors);

  const componentSize = new Float64Array(count);
  for (let v = 0; v < n; v++) componentSize[component[v]!]! += ownSizes[v]!;

  // Successor components of each component, without duplicates or self-edges.
  const componentSuccessors: number[][] = Array.from({ length: count }, () => []);
  const seen = new Int32Array(count).fill(-1);
  const membersByComponent: number[][] = Array.from({ length: count }, () => []);
  for (let v = 0; v < n; v++) membersByComponent[component[v]!]!.push(v);
  for (let c = 0; c < count; c++) {
    for (const v of membersByComponent[c]!) {
      for (const w of successors[v]!) {
        const d = component[w]!;
        if (d !== c && seen[d] !== c) {
          seen[d] = c;
          componentSuccessors[c]!.push(d);
        }
      }
    }
  }

  const componentClosure = new Float64Array(count);
  for (let lo = 0; lo < count; lo += chunkBits) {
    const hi = Math.min(count, lo + chunkBits);
    const words = Math.ceil((hi - lo) / 32);
    // byteSum[p * 256 + b]: total size of the targets whose bits are set in byte value b at
    // byte position p of a row, so a row is summed with 4 lookups per word.
    const byteSum = new Float64Array(words * 4 * 256);
    for (let p = 0; p < words * 4; p++) {
      for (let b = 1; b < 256; b++) {
        const target = lo + p * 8 + (31 - Math.clz32(b & -b));
        byteSum[p * 256 + b] = byteSum[p * 256 + (b & (b - 1))]! + (target < hi ? componentSize[target]! : 0);
      }
    }
    // Only components numbered >= lo can reach a target in [lo, hi).
    const bits = new Uint32Array((count - lo) * words);
    for (let c = lo; c < count; c++) {
      const row = (c - lo) * words;
      if (c < hi) bits[row + ((c - lo) >>> 5)]! |= 1 << ((c - lo) & 31);
      for (const d of componentSuccessors[c]!) {
        if (d < lo) continue;
        const from = (d - lo) * words;
        for (let k = 0; k < words; k++) bits[row + k]! |= bits[from + k]!;
      }
      let sum = 0;
      for (let k = 0; k < words; k++) {
        const w = bits[row + k]!;
        if (w === 0) continue;
        const p = k * 1024; // 4 byte positions of 256 entries
        sum +=
          byteSum[p + (w & 255)]! +
          byteSum[p + 256 + ((w >>> 8) & 255)]! +
          byteSum[p + 512 + ((w >>> 16) & 255)]! +
          byteSum[p + 768 + (w >>> 24)]!;
      }
      componentClosure[c]! += sum;
    }
  }

  const result = new Float64Array(n);
  for (let v = 0; v < n; v++) result[v] = componentClosure[component[v]!]!;
  return result;
}
