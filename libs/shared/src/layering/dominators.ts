/**
 * Dominator tree of a directed graph, by the iterative algorithm of Cooper, Harvey and
 * Kennedy ("A Simple, Fast Dominance Algorithm", 2001).
 *
 * Vertex `d` dominates `v` when every path from the root to `v` passes through `d`. The
 * immediate dominator of `v` is its closest strict dominator; these form a tree rooted at
 * the root. The algorithm numbers the vertices in DFS postorder, then repeatedly sets each
 * vertex's dominator to the nearest common ancestor (in the tree built so far) of its
 * already-processed predecessors, visiting vertices in reverse postorder until nothing
 * changes. It handles any graph, cycles included; the result does not depend on the order
 * of the successor lists (the dominator tree is unique), only the work done does.
 */

/** A graph over vertices `0..n-1`: `successors[v]` lists the vertices `v` has an edge to. */
export type Successors = readonly (readonly number[])[];

/**
 * Vertices reachable from `root` in DFS postorder (`root` last), and each vertex's position
 * in that order (-1 when unreachable). Iterative, so deep graphs cannot overflow the stack.
 */
export function postorder(successors: Successors, root: number): { order: Int32Array; position: Int32Array } {
  const n = successors.length;
  const position = new Int32Array(n).fill(-1);
  const visited = new Uint8Array(n);
  const order = new Int32Array(n);
  let count = 0;
  // Each vertex is pushed at most once, so n slots suffice.
  const stackVertex = new Int32Array(n);
  const stackNext = new Int32Array(n);
  let sp = 0;
  visited[root] = 1;
  stackVertex[sp] = root;
  stackNext[sp] = 0;
  sp++;
  while (sp > 0) {
    const v = stackVertex[sp - 1]!;
    const succ = successors[v]!;
    const i = stackNext[sp - 1]!;
    if (i < succ.length) {
      stackNext[sp - 1] = i + 1;
      const w = succ[i]!;
      if (visited[w] === 0) {
        visited[w] = 1;
        stackVertex[sp] = w;
        stackNext[sp] = 0;
        sp++;
      }
    } else {
      position[v] = count;
      order[count++] = v;
      sp--;
    }
  }
  return { order: order.subarray(0, count), position };
}

/**
 * Immediate dominators of every vertex reachable from `root`.
 *
 * @param successors the graph; every listed successor must be a vertex `0..n-1`.
 * @param root the entry vertex.
 * @returns `idom[v]` = immediate dominator of `v`; `idom[root] = root`; `-1` for vertices
 *   not reachable from `root`.
 */
export function immediateDominators(successors: Successors, root: number): Int32Array {
  const n = successors.length;
  const { order, position } = postorder(successors, root);

  // Predecessor lists, restricted to reachable vertices (unreachable ones have no say).
  const predecessors: number[][] = Array.from({ length: n }, () => []);
  for (const v of order) {
    for (const w of successors[v]!) predecessors[w]!.push(v);
  }

  const idom = new Int32Array(n).fill(-1);
  idom[root] = root;

  // Walk two fingers up the partial dominator tree until they meet; postorder positions
  // increase towards the root.
  const intersect = (a: number, b: number): number => {
    while (a !== b) {
      while (position[a]! < position[b]!) a = idom[a]!;
      while (position[b]! < position[a]!) b = idom[b]!;
    }
    return a;
  };

  let changed = true;
  while (changed) {
    changed = false;
    // Reverse postorder, skipping the root (the last vertex in postorder).
    for (let k = order.length - 2; k >= 0; k--) {
      const v = order[k]!;
      let candidate = -1;
      for (const p of predecessors[v]!) {
        if (idom[p] === -1) continue; // not processed yet in this pass
        candidate = candidate === -1 ? p : intersect(p, candidate);
      }
      if (idom[v] !== candidate) {
        idom[v] = candidate;
        changed = true;
      }
    }
  }
  return idom;
}
