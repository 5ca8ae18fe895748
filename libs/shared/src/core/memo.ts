/**
 * A bounded memo for pure functions on the warm path (issue 15): the answer
 * for a key is computed once and kept, and memory stays bounded whatever
 * the clients send.
 *
 * Two generations, each at most `max / 2` keys: answers are kept in the
 * young one; when it is full it becomes the old one and the old one is
 * dropped. A key found in the old generation moves to the young one. So a
 * key used since the last two turnovers is always kept, at most `max` keys
 * are held, and a hit costs one map lookup (an exact least-recently-used
 * order would cost a delete and an insert per hit, which the warm path
 * measured as 6% of its time). Answers are never `undefined`.
 */
export class BoundedMemo<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly generation: number;

  constructor(max: number) {
    this.generation = Math.max(1, Math.floor(max / 2));
  }

  /** The kept answer for `key`, else `make()`'s (kept from now on). */
  get(key: K, make: () => V): V {
    const hit = this.young.get(key);
    if (hit !== undefined) return hit;
    let value = this.old.get(key);
    if (value !== undefined) this.old.delete(key);
    else value = make();
    if (this.young.size >= this.generation) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
    return value;
  }

  /** Keys kept now. */
  get size(): number {
    return this.young.size + this.old.size;
  }
}
