// PMap: a persistent sorted map (a B+tree with path copying). Every change returns a new map
// that shares all but the changed path with the old one, which never changes: a change costs
// O(log n) nodes of at most 32 entries, and readers holding the old map keep a consistent
// view. Keys are numbers or strings (one kind per map), kept in ascending order.

import { Branch, build, cmp, Leaf, type Node, type PMapKey, treeDelete, treeSet } from './pmap-tree'
import { diff, eachLeaf, Walk, Yield } from './pmap-walk'

export { nodesMade, type PMapKey } from './pmap-tree'

/**
 * PMap is an immutable map sorted by key: `set` and `delete` return a new map sharing all
 * but one path of nodes with this one. It iterates in ascending key order (numbers by value,
 * strings by UTF-16 code units).
 */
export class PMap<K extends PMapKey, V> implements ReadonlyMap<K, V> {
  readonly #root: Node<K, V> | undefined
  /** size is the number of entries. */
  readonly size: number

  private constructor(root: Node<K, V> | undefined, size: number) {
    this.#root = root
    this.size = size
  }

  /** empty is a map without entries. */
  static empty<K extends PMapKey, V>(): PMap<K, V> {
    return new PMap<K, V>(undefined, 0)
  }

  /**
   * from makes a map of entries in any order (a later entry of a key wins, as in a Map); a
   * PMap is returned as it is.
   */
  static from<K extends PMapKey, V>(entries: Iterable<readonly [K, V]>): PMap<K, V> {
    if (entries instanceof PMap) return entries
    const all = [...entries].map(([k, v], i) => ({ k, v, i }))
    all.sort((a, b) => cmp(a.k, b.k) || a.i - b.i)
    const keys: K[] = []
    const vals: V[] = []
    for (const e of all) {
      if (keys.length > 0 && keys[keys.length - 1] === e.k) vals[vals.length - 1] = e.v
      else {
        keys.push(e.k)
        vals.push(e.v)
      }
    }
    return new PMap(build(keys, vals), keys.length)
  }

  /** get is the value of `k`, if any. */
  get(k: K): V | undefined {
    const l = this.#leafOf(k)
    if (l === undefined) return undefined
    const i = l.keys.indexOf(k)
    return i < 0 ? undefined : l.vals[i]
  }

  /** #leafOf is the leaf that holds `k` if any entry does. */
  #leafOf(k: K): Leaf<K, V> | undefined {
    let n = this.#root
    while (n instanceof Branch) {
      // The last child whose smallest key is at most k (or the first): a scan of at most 32
      // keys is quicker than a binary search of them.
      const keys = n.keys
      let i = 1
      while (i < keys.length && keys[i] <= k) i++
      n = n.kids[i - 1]
    }
    return n
  }

  /** has tells whether `k` has an entry. */
  has(k: K): boolean {
    const l = this.#leafOf(k)
    return l !== undefined && l.keys.indexOf(k) >= 0
  }

  /** set returns a map with `k` set to `v` (this map when `k` already has `v`). */
  set(k: K, v: V): PMap<K, V> {
    const [root, added] = treeSet(this.#root, k, v)
    return root === this.#root ? this : new PMap(root, this.size + (added ? 1 : 0))
  }

  /** delete returns a map without `k` (this map when it has no `k`). */
  delete(k: K): PMap<K, V> {
    const [root, removed] = treeDelete(this.#root, k)
    return removed ? new PMap(root, this.size - 1) : this
  }

  /** entries yields the entries in key order. */
  entries(): IterableIterator<[K, V]> {
    return new Walk<K, V, [K, V]>(this.#root, Yield.Entries)
  }

  /** keys yields the keys in ascending order. */
  keys(): IterableIterator<K> {
    return new Walk<K, V, K>(this.#root, Yield.Keys)
  }

  /** values yields the values in key order. */
  values(): IterableIterator<V> {
    return new Walk<K, V, V>(this.#root, Yield.Values)
  }

  /** valueList is the values in key order, as an array. */
  valueList(): V[] {
    const out = new Array<V>(this.size)
    let at = 0
    const fill = (n: Node<K, V>) => {
      if (n instanceof Leaf) for (let i = 0; i < n.vals.length; i++) out[at++] = n.vals[i]
      else for (let i = 0; i < n.kids.length; i++) fill(n.kids[i])
    }
    if (this.#root !== undefined) fill(this.#root)
    return out
  }

  /** The entries in key order, as `entries()`. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries()
  }

  /** forEach calls `fn` with each value and key, in key order. */
  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    eachLeaf(this.#root, (l) => {
      for (let i = 0; i < l.keys.length; i++) fn.call(thisArg, l.vals[i], l.keys[i], this)
    })
  }

  /** Map's tag, so that a PMap prints and compares as a map. */
  get [Symbol.toStringTag](): string {
    return 'PMap'
  }

  /**
   * changes yields the keys whose entries differ between `before` and this map (added,
   * removed or set to another value, compared by identity), in key order. Subtrees the two
   * share are skipped: after a few changes this costs about the changes times the depth.
   */
  *changes(before: PMap<K, V>): Generator<K> {
    yield* diff(before.#root, this.#root)
  }
}
