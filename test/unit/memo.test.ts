/**
 * BoundedMemo (issue 15: the warm path's memoised parsing and build keys):
 * an answer is computed once per key, and memory stays bounded: two
 * generations, a hit in the old one moves the key up.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BoundedMemo } from '../../libs/shared/src/core/memo';
import { parseImage } from '../../libs/shared/src/protocol/image-spec';

describe('BoundedMemo', () => {
  test('computes once per key, keeps at most max keys, drops a key not used since the last two turnovers', () => {
    const memo = new BoundedMemo<string, number>(2);
    let calls = 0;
    const get = (k: string) => memo.get(k, () => ++calls);
    assert.equal(get('a'), 1);
    assert.equal(get('a'), 1);
    assert.equal(get('b'), 2);
    get('a'); // a is now the most recently used
    assert.equal(get('c'), 3); // drops b
    assert.equal(memo.size, 2);
    assert.equal(get('a'), 1);
    assert.equal(get('b'), 4, 'b was dropped and is computed again');
    assert.equal(calls, 4);
  });

  test('a flood of distinct keys keeps memory bounded and the keys in use', () => {
    const memo = new BoundedMemo<number, number>(100);
    let calls = 0;
    for (let i = 0; i < 10_000; i++) {
      memo.get(i, () => ++calls);
      memo.get(-1, () => ++calls); // one key used all along
      assert.ok(memo.size <= 100, `size ${memo.size} after ${i} keys`);
    }
    assert.equal(calls, 10_001, 'the key in use was computed once, each flooding key once');
    // The last generation's keys are kept.
    const before = calls;
    for (let i = 9_990; i < 10_000; i++) memo.get(i, () => ++calls);
    assert.equal(calls, before);
  });

  test('as a bounded map: find, set, deleteWhere and clear', () => {
    const map = new BoundedMemo<string, number>(4);
    for (const [k, v] of [['a', 1], ['b', 2], ['c', 3]] as const) map.set(k, v);
    assert.equal(map.find('a'), 1);
    assert.equal(map.find('z'), undefined);
    map.set('a', 10); // replaced, not held twice
    assert.equal(map.find('a'), 10);
    assert.equal(map.size, 3);
    map.deleteWhere((v) => v >= 3);
    assert.deepEqual([map.find('a'), map.find('b'), map.find('c')], [undefined, 2, undefined]);
    map.clear();
    assert.equal(map.size, 0);
    for (let i = 0; i < 100; i++) map.set(`k${i}`, i);
    assert.ok(map.size <= 4);
    assert.equal(map.find('k99'), 99, 'the newest is kept');
  });

  test('memoised image parsing keeps (name, tag) pairs apart', () => {
    const a = parseImage('hello', 'latest');
    assert.equal(parseImage('hello', 'latest'), a, 'the same answer object on a warm pull');
    // Pairs whose concatenation is equal are different requests.
    const x = parseImage('ab', 'c');
    const y = parseImage('a', 'bc');
    assert.ok(x.ok && y.ok);
    assert.deepEqual([x.spec.name, x.spec.tag], ['ab', 'c']);
    assert.deepEqual([y.spec.name, y.spec.tag], ['a', 'bc']);
  });
});
