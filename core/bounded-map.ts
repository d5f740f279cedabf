/**
 * A Map that forgets its oldest entry (insertion order) when a new key would exceed `max`: the
 * caches fed by attacker-chosen keys (signature nonces, verified JWTs, DID rate classes) stay
 * bounded. Re-setting a key keeps its place; delete and set again to refresh it.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(readonly max: number) {
    super();
  }

  override set(k: K, v: V): this {
    if (this.size >= this.max && !this.has(k)) {
      const first = this.keys().next();
      if (first.done !== true) this.delete(first.value);
    }
    return super.set(k, v);
  }
}
