// Keys kept in order, for prefix ranges with pagination: a sorted array with binary search
// (inserts and deletes move the keys after them, which suits maps of up to some 100,000 keys).

/** SortedKeys is a set of strings in code-unit order. */
export class SortedKeys {
  #keys: string[] = []

  /** size is how many keys there are. */
  get size(): number {
    return this.#keys.length
  }

  /** #find returns the position of the first key not below `key`. */
  #find(key: string): number {
    let lo = 0
    let hi = this.#keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#keys[mid] < key) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** add adds `key` if missing. */
  add(key: string): void {
    const i = this.#find(key)
    if (this.#keys[i] !== key) this.#keys.splice(i, 0, key)
  }

  /** delete removes `key` if present. */
  delete(key: string): void {
    const i = this.#find(key)
    if (this.#keys[i] === key) this.#keys.splice(i, 1)
  }

  /** clear removes every key. */
  clear(): void {
    this.#keys = []
  }

  /** range yields the keys that start with `prefix` and sort after `after` (when given). */
  *range(prefix: string, after?: string): Iterable<string> {
    const from = after !== undefined && after >= prefix ? after : prefix
    let i = this.#find(from)
    if (this.#keys[i] === after) i++
    for (; i < this.#keys.length && this.#keys[i].startsWith(prefix); i++) yield this.#keys[i]
  }
}
