import { strict as assert } from 'node:assert';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import type { ClosureGraph, Popularity } from '../../libs/shared/src/core/graph';
import { storePathName } from '../../libs/shared/src/core/store-path';
import {
  NIXERY_CLOSURE_BUDGET,
  type Layer,
  LayeringInputError,
  type LayeringOptions,
  groupLayers,
} from '../../libs/shared/src/layering';
import { closureSizes } from '../../libs/shared/src/layering/closure-size';
import { immediateDominators } from '../../libs/shared/src/layering/dominators';

// ---------------------------------------------------------------------------------------
// Fixtures: test/fixtures/layering/*.json. Each holds a closure graph, popularity data and
// cases; a case lists the expected layers, in order, as [package names, merge rating].

interface Fixture {
  description: string;
  graph: ClosureGraph;
  popularity: Popularity;
  cases: { name: string; options: Omit<LayeringOptions, 'popularity'>; layers: [string[], number][] }[];
}

const FIXTURE_DIR = join(__dirname, '..', 'fixtures', 'layering');
const fixtures: [string, Fixture][] = readdirSync(FIXTURE_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => [f, JSON.parse(readFileSync(join(FIXTURE_DIR, f), 'utf8')) as Fixture]);

function fixture(file: string): Fixture {
  const found = fixtures.find(([f]) => f === file);
  assert.ok(found, `fixture ${file} exists`);
  return found[1];
}

/** Store path of a package name in a fixture graph (names are unique in fixtures). */
function pathByName(graph: ClosureGraph): (name: string) => string {
  const map = new Map(Object.keys(graph.paths).map((p) => [storePathName(p), p]));
  return (name) => {
    const p = map.get(name);
    assert.ok(p, `fixture has a path named ${name}`);
    return p;
  };
}

/** Layers as short names, for readable assertion messages. */
function names(layers: Layer[]): string[][] {
  return layers.map((l) => l.contents.map(storePathName));
}

/** Invariants that hold for every grouping. */
function assertWellFormed(graph: ClosureGraph, layers: Layer[], budget: number): void {
  assert.ok(layers.length <= budget, `${layers.length} layers exceed budget ${budget}`);
  const seen = new Map<string, number>();
  layers.forEach((layer, i) => {
    assert.ok(layer.contents.length > 0, 'no empty layer');
    assert.deepEqual(layer.contents, [...layer.contents].sort(), 'layer contents are sorted');
    for (const p of layer.contents) {
      assert.ok(!seen.has(p), `${p} appears in layers ${seen.get(p)} and ${i}`);
      seen.set(p, i);
    }
    if (i > 0) assert.ok(layers[i - 1]!.mergeRating >= layer.mergeRating, 'layers ordered by rating, highest first');
  });
  assert.deepEqual([...seen.keys()].sort(), Object.keys(graph.paths).sort(), 'every path is in a layer');
}

// ---------------------------------------------------------------------------------------
// Helpers: seeded randomness, graph shuffling, reference implementations.

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The same graph with keys, roots and references in another order. */
function shuffleGraph(graph: ClosureGraph, random: () => number): ClosureGraph {
  const paths: ClosureGraph['paths'] = {};
  for (const p of shuffled(Object.keys(graph.paths), random)) {
    const info = graph.paths[p]!;
    paths[p] = { ...info, references: shuffled(info.references, random) };
  }
  return { roots: shuffled(graph.roots, random), paths };
}

function randomGraph(n: number, edges: number, random: () => number): number[][] {
  const succ: number[][] = Array.from({ length: n }, () => []);
  for (let e = 0; e < edges; e++) succ[Math.floor(random() * n)]!.push(Math.floor(random() * n));
  return succ;
}

function reachable(succ: number[][], from: number, removed: number): Set<number> {
  const seen = new Set<number>();
  if (from === removed) return seen;
  const stack = [from];
  seen.add(from);
  while (stack.length > 0) {
    for (const w of succ[stack.pop()!]!) {
      if (w !== removed && !seen.has(w)) {
        seen.add(w);
        stack.push(w);
      }
    }
  }
  return seen;
}

/** Definition-level dominators: d dominates v iff removing d cuts v off from the root. */
function naiveImmediateDominators(succ: number[][], root: number): number[] {
  const all = reachable(succ, root, -1);
  const doms = new Map<number, number[]>();
  for (const v of all) doms.set(v, []);
  for (const d of all) {
    const without = reachable(succ, root, d);
    for (const v of all) if (v === d || !without.has(v)) doms.get(v)!.push(d);
  }
  return succ.map((_, v) => {
    if (!all.has(v)) return -1;
    if (v === root) return root;
    // The closest strict dominator is the one with the most dominators of its own.
    const strict = doms.get(v)!.filter((d) => d !== v);
    return strict.reduce((best, d) => (doms.get(d)!.length > doms.get(best)!.length ? d : best));
  });
}

/**
 * A synthetic closure shaped like a package set: a few base libraries everything uses,
 * packages referencing recent packages and base libraries; top-level paths are those
 * nothing references.
 */
function syntheticGraph(n: number, seed: number): { graph: ClosureGraph; popularity: Popularity } {
  const random = rng(seed);
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  const hash = (): string => Array.from({ length: 32 }, () => alphabet[Math.floor(random() * 32)]).join('');
  const paths = Array.from({ length: n }, (_, i) => `/nix/store/${hash()}-pkg${i}-1.0`);
  const base = 40;
  const referenced = new Set<number>();
  const graph: ClosureGraph = { roots: [], paths: {} };
  const popularity: Popularity = {};
  for (let i = 0; i < n; i++) {
    const refs = new Set<number>([i]);
    const count = i === 0 ? 0 : i < base ? Math.floor(random() * 3) : 1 + Math.floor(random() * 6);
    for (let k = 0; k < count; k++) {
      const j =
        random() < 0.4
          ? Math.floor(random() * Math.min(i, base))
          : Math.max(0, i - 200) + Math.floor(random() * Math.min(i, 200));
      refs.add(j);
      if (j !== i) referenced.add(j);
    }
    graph.paths[paths[i]!] = {
      path: paths[i]!,
      narSize: 1000 + Math.floor(random() ** 3 * 50_000_000),
      references: [...refs].map((r) => paths[r]!),
    };
    if (i < base) popularity[storePathName(paths[i]!)] = 50 + Math.floor(random() * 300_000);
    else if (random() < 0.1) popularity[storePathName(paths[i]!)] = 1 + Math.floor(random() * 150);
  }
  graph.roots = paths.filter((_, i) => !referenced.has(i));
  return { graph, popularity };
}

// ---------------------------------------------------------------------------------------

describe('groupLayers: fixtures', () => {
  for (const [file, fx] of fixtures) {
    describe(file, () => {
      const toPath = pathByName(fx.graph);
      for (const c of fx.cases) {
        it(c.name, () => {
          const layers = groupLayers(fx.graph, { ...c.options, popularity: fx.popularity });
          const expected = c.layers.map(([ns, rating]) => ({ contents: ns.map(toPath).sort(), mergeRating: rating }));
          assert.deepEqual(
            layers,
            expected,
            `got ${JSON.stringify(names(layers))} ${JSON.stringify(layers.map((l) => l.mergeRating))}`,
          );
          assertWellFormed(fx.graph, layers, c.options.budget);
        });
      }
    });
  }
});

describe('groupLayers: behaviour', () => {
  it('diamond: the top dominates both arms and the bottom, so they share its layer', () => {
    const fx = fixture('diamond.json');
    const layers = groupLayers(fx.graph, { budget: 10, popularity: {} });
    assert.deepEqual(names(layers), [['top', 'left', 'right', 'bottom']]);
    // A second top-level package referencing the bottom makes the bottom shared: it splits off.
    const toPath = pathByName(fx.graph);
    const other = '/nix/store/55555555555555555555555555555555-other';
    const graph: ClosureGraph = {
      roots: [...fx.graph.roots, other],
      paths: { ...fx.graph.paths, [other]: { path: other, narSize: 10, references: [toPath('bottom')] } },
    };
    // Ratings: top 4000 + 2000 + 2000, other 10 + 1000 (its closure), bottom 1000.
    assert.deepEqual(names(groupLayers(graph, { budget: 10, popularity: {} })), [
      ['top', 'left', 'right'],
      ['other'],
      ['bottom'],
    ]);
  });

  it('a popular path shared by two top-level packages gets its own layer', () => {
    const fx = fixture('popular.json');
    const layers = groupLayers(fx.graph, { budget: 10, popularity: fx.popularity });
    assert.ok(names(layers).some((l) => l.length === 1 && l[0] === 'openssl-3.0.13'));
    const unpopular = groupLayers(fx.graph, { budget: 10, popularity: { ...fx.popularity, 'openssl-3.0.13': 99 } });
    assert.ok(names(unpopular).some((l) => l.includes('openssl-3.0.13') && l.includes('curl-lib-8.6.0')));
    const atThreshold = groupLayers(fx.graph, { budget: 10, popularity: { ...fx.popularity, 'openssl-3.0.13': 100 } });
    assert.ok(names(atThreshold).some((l) => l.length === 1 && l[0] === 'openssl-3.0.13'), 'threshold is inclusive');
  });

  it('a heavy path gets its own layer; the size threshold is exclusive', () => {
    const fx = fixture('heavy.json');
    const nar = (sizeThreshold: number): string[][] =>
      names(groupLayers(fx.graph, { budget: 10, popularity: {}, sizeMetric: 'nar', sizeThreshold }));
    assert.deepEqual(nar(100_000_000), [['model-data-1.0'], ['app-1.0', 'runtime-1.0', 'libsmall-1.0']]);
    assert.deepEqual(nar(150_000_000), [['app-1.0', 'runtime-1.0', 'libsmall-1.0', 'model-data-1.0']]);
    assert.deepEqual(nar(149_999_999), nar(100_000_000));
  });

  it('budget merging keeps the budget - 1 best layers and merges the rest (budgets 2 and 3)', () => {
    const fx = fixture('nixery-example.json');
    const full = groupLayers(fx.graph, { budget: 100, popularity: fx.popularity });
    assert.equal(full.length, 6);
    for (const budget of [2, 3]) {
      const layers = groupLayers(fx.graph, { budget, popularity: fx.popularity });
      assert.equal(layers.length, budget);
      const kept = full.slice(0, budget - 1);
      const tail = full.slice(budget - 1);
      for (const k of kept) assert.ok(layers.some((l) => l.contents.join() === k.contents.join()));
      const merged = layers.find((l) => !kept.some((k) => k.contents.join() === l.contents.join()));
      assert.ok(merged);
      assert.deepEqual(merged.contents, tail.flatMap((l) => l.contents).sort());
      assert.equal(merged.mergeRating, tail.reduce((s, l) => s + l.mergeRating, 0));
    }
  });

  it('is deterministic: same layers in the same order whatever the input order', () => {
    const synthetic = syntheticGraph(300, 7);
    const inputs: [ClosureGraph, Popularity][] = [
      ...fixtures.map(([, fx]): [ClosureGraph, Popularity] => [fx.graph, fx.popularity]),
      [synthetic.graph, synthetic.popularity],
    ];
    const random = rng(42);
    for (const [graph, popularity] of inputs) {
      for (const budget of [1, 2, 3, 5, 50]) {
        const reference = groupLayers(graph, { budget, popularity });
        assert.deepEqual(groupLayers(graph, { budget, popularity }), reference);
        for (let k = 0; k < 5; k++) {
          assert.deepEqual(groupLayers(shuffleGraph(graph, random), { budget, popularity }), reference);
        }
      }
    }
  });

  it('puts every path in exactly one layer and never exceeds the budget', () => {
    for (const [, fx] of fixtures) {
      for (let budget = 1; budget <= 8; budget++) {
        for (const sizeMetric of ['closure', 'nar'] as const) {
          assertWellFormed(fx.graph, groupLayers(fx.graph, { budget, popularity: fx.popularity, sizeMetric }), budget);
        }
      }
    }
    const { graph, popularity } = syntheticGraph(1000, 3);
    for (const budget of [1, 2, 3, 10, NIXERY_CLOSURE_BUDGET, 10_000]) {
      assertWellFormed(graph, groupLayers(graph, { budget, popularity }), budget);
    }
  });

  it('hangs paths no top-level path reaches off the root instead of dropping them', () => {
    const a = '/nix/store/11111111111111111111111111111111-a';
    const b = '/nix/store/22222222222222222222222222222222-b';
    const orphan = '/nix/store/33333333333333333333333333333333-orphan';
    const orphanDep = '/nix/store/44444444444444444444444444444444-orphan-dep';
    const graph: ClosureGraph = {
      roots: [a],
      paths: {
        [a]: { path: a, narSize: 5, references: [a, b] },
        [b]: { path: b, narSize: 5, references: [] },
        [orphan]: { path: orphan, narSize: 5, references: [orphanDep] },
        [orphanDep]: { path: orphanDep, narSize: 5, references: [] },
      },
    };
    assert.deepEqual(names(groupLayers(graph, { budget: 10, popularity: {} })), [
      ['a', 'b'],
      ['orphan', 'orphan-dep'],
    ]);
  });

  it('copes with reference cycles and self-references', () => {
    const p = (c: string, name: string): string => `/nix/store/${c.repeat(32)}-${name}`;
    const [top, x, y, z] = [p('1', 'top'), p('2', 'x'), p('3', 'y'), p('4', 'z')];
    const graph: ClosureGraph = {
      roots: [top, top],
      paths: {
        [top]: { path: top, narSize: 1, references: [top, x, x] },
        [x]: { path: x, narSize: 2, references: [y] },
        [y]: { path: y, narSize: 3, references: [x, z] },
        [z]: { path: z, narSize: 4, references: [z] },
      },
    };
    const layers = groupLayers(graph, { budget: 10, popularity: {} });
    // Closure sizes: top 10, x 9, y 9, z 4 -> one layer rated 32.
    assert.deepEqual(layers, [{ contents: [top, x, y, z], mergeRating: 32 }]);
  });

  it('looks popularity up by own keys only and defaults missing names to 1', () => {
    const p = '/nix/store/11111111111111111111111111111111-constructor';
    const graph: ClosureGraph = { roots: [p], paths: { [p]: { path: p, narSize: 7, references: [p] } } };
    assert.deepEqual(groupLayers(graph, { budget: 1, popularity: {} }), [{ contents: [p], mergeRating: 7 }]);
    assert.deepEqual(groupLayers(graph, { budget: 1, popularity: { constructor: 3 } }), [
      { contents: [p], mergeRating: 21 },
    ]);
  });

  it('returns no layers for an empty closure', () => {
    assert.deepEqual(groupLayers({ roots: [], paths: {} }, { budget: 3, popularity: {} }), []);
  });

  it('rejects a bad budget and an incomplete closure with typed errors', () => {
    const fx = fixture('diamond.json');
    for (const budget of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => groupLayers(fx.graph, { budget, popularity: {} }),
        (e: unknown) => e instanceof LayeringInputError && e.code === 'INVALID_BUDGET',
      );
    }
    const top = fx.graph.roots[0]!;
    const missing = '/nix/store/99999999999999999999999999999999-missing';
    const broken: ClosureGraph = {
      roots: fx.graph.roots,
      paths: { ...fx.graph.paths, [top]: { ...fx.graph.paths[top]!, references: [missing] } },
    };
    assert.throws(
      () => groupLayers(broken, { budget: 3, popularity: {} }),
      (e: unknown) =>
        e instanceof LayeringInputError && e.code === 'MISSING_PATH' && e.path === missing && e.referrer === top,
    );
    assert.throws(
      () => groupLayers({ roots: [missing], paths: fx.graph.paths }, { budget: 3, popularity: {} }),
      (e: unknown) =>
        e instanceof LayeringInputError && e.code === 'MISSING_PATH' && e.path === missing && e.referrer === undefined,
    );
  });

  it('groups a synthetic 5,000-path closure quickly', (t) => {
    const { graph, popularity } = syntheticGraph(5000, 1);
    for (const sizeMetric of ['closure', 'nar'] as const) {
      const start = performance.now();
      const layers = groupLayers(graph, { budget: NIXERY_CLOSURE_BUDGET, popularity, sizeMetric });
      const ms = performance.now() - start;
      t.diagnostic(`5000 paths, ${graph.roots.length} top-level, sizeMetric ${sizeMetric}: ${ms.toFixed(1)} ms, ${layers.length} layers`);
      assertWellFormed(graph, layers, NIXERY_CLOSURE_BUDGET);
    }
  });
});

describe('immediateDominators', () => {
  it('diamond: root -> a -> {b, c} -> d', () => {
    //   0 -> 1 -> 2 -> 4
    //        1 -> 3 -> 4
    const idom = immediateDominators([[1], [2, 3], [4], [4], []], 0);
    assert.deepEqual([...idom], [0, 0, 1, 1, 1]);
  });

  it("Nixery's example with the extra root edges: G and E hang off the root, F under D", () => {
    // 0 root, 1 A, 2 B, 3 C, 4 D, 5 E, 6 F, 7 G
    const succ = [[1, 2, 3, 4, 5, 7], [5], [5], [5, 4], [6, 7], [], [], []];
    assert.deepEqual([...immediateDominators(succ, 0)], [0, 0, 0, 0, 0, 0, 4, 0]);
    // Without the flagged edges G is dominated by D.
    succ[0] = [1, 2, 3, 4];
    assert.deepEqual([...immediateDominators(succ, 0)], [0, 0, 0, 0, 0, 0, 4, 4]);
  });

  it('marks unreachable vertices with -1', () => {
    assert.deepEqual([...immediateDominators([[1], [], [1]], 0)], [0, 0, -1]);
  });

  it('agrees with the definition on random graphs with cycles', () => {
    const random = rng(1234);
    for (let k = 0; k < 300; k++) {
      const n = 1 + Math.floor(random() * 25);
      const succ = randomGraph(n, Math.floor(random() * n * 3), random);
      assert.deepEqual([...immediateDominators(succ, 0)], naiveImmediateDominators(succ, 0), JSON.stringify(succ));
    }
  });
});

describe('closureSizes', () => {
  it('counts shared dependencies once', () => {
    // diamond 0 -> {1, 2} -> 3
    assert.deepEqual([...closureSizes([[1, 2], [3], [3], []], [1, 10, 100, 1000])], [1111, 1010, 1100, 1000]);
  });

  it('agrees with a per-vertex search on random graphs with cycles, in one or several passes', () => {
    const random = rng(99);
    for (let k = 0; k < 200; k++) {
      const n = 1 + Math.floor(random() * 120);
      const succ = randomGraph(n, Math.floor(random() * n * 2), random);
      const sizes = succ.map(() => Math.floor(random() * 1000));
      const expected = succ.map((_, v) => [...reachable(succ, v, -1)].reduce((s, w) => s + sizes[w]!, 0));
      for (const chunkBits of [1, 7, 32, 4096]) {
        assert.deepEqual([...closureSizes(succ, sizes, chunkBits)], expected);
      }
    }
  });
});
