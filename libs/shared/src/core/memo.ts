/**
 * A bounded memo for pure functions on the warm path (issue 15): the answer
 * for a key is computed once and kept; past `max` keys the least recently
 * used one is dropped, so memory stays bounded whatever the clients send.
 * Only for functions whose answer depends on the key alone.
 */
export class BoundedMemo<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(private readonly max: number) {}

  /** The kept answer for `key`, else `make()`'s (kept from now on). */
  get(key: K, make: () => V): V {
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      // Re-inserted: Map order is use order, so the first key is the least recently used.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const value = make();
    this.entries.set(key, value);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as K);
    return value;
  }

  /** Keys kept now. */
  get size(): number {
    return this.entries.size;
  }
}
