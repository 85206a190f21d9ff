// Walks over PMap's trees: its entries in key order, and the keys where two trees differ.
import { Branch, cmp, Leaf, type Node, type PMapKey } from './pmap-tree'

/** eachLeaf calls `fn` with the leaves under `n` in key order. */
export function eachLeaf<K extends PMapKey, V>(
  n: Node<K, V> | undefined,
  fn: (l: Leaf<K, V>) => void,
) {
  if (n === undefined) return
  if (n instanceof Leaf) fn(n)
  else for (const kid of n.kids) eachLeaf(kid, fn)
}

/** What a Walk yields of each entry. */
export const Yield = { Keys: 0, Values: 1, Entries: 2 } as const
export type Yield = (typeof Yield)[keyof typeof Yield]

/**
 * Walk iterates over the entries of a tree in key order (keys, values or entries), a leaf at
 * a time, without a generator's cost per entry.
 */
export class Walk<K extends PMapKey, V, T> implements IterableIterator<T> {
  /** The branches above the current leaf, each with the index of the next child to visit. */
  readonly #up: Array<[Branch<K, V>, number]> = []
  #leaf: Leaf<K, V> | undefined
  #i = 0

  constructor(
    root: Node<K, V> | undefined,
    readonly what: Yield,
  ) {
    this.#leaf = this.#down(root)
  }

  /** #down descends to the first leaf under `n`, keeping the way back. */
  #down(top: Node<K, V> | undefined): Leaf<K, V> | undefined {
    let n = top
    while (n instanceof Branch) {
      this.#up.push([n, 1])
      n = n.kids[0]
    }
    return n
  }

  /** #nextLeaf is the leaf after the current one, if any. */
  #nextLeaf(): Leaf<K, V> | undefined {
    while (this.#up.length > 0) {
      const top = this.#up[this.#up.length - 1]
      const [b, i] = top
      if (i < b.kids.length) {
        top[1] = i + 1
        return this.#down(b.kids[i])
      }
      this.#up.pop()
    }
    return undefined
  }

  next(): IteratorResult<T> {
    while (this.#leaf !== undefined) {
      const l = this.#leaf
      const i = this.#i
      if (i < l.keys.length) {
        this.#i = i + 1
        const value = (
          this.what === Yield.Keys
            ? l.keys[i]
            : this.what === Yield.Values
              ? l.vals[i]
              : [l.keys[i], l.vals[i]]
        ) as T
        return { value, done: false }
      }
      this.#leaf = this.#nextLeaf()
      this.#i = 0
    }
    return { value: undefined, done: true }
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this
  }
}

/** Item is what a diff walks: a subtree, or one entry of a leaf it opened. */
type Item<K extends PMapKey, V> = Node<K, V> | { k: K; v: V }

/** open replaces a subtree on top of `stack` by its children (or a leaf by its entries). */
function open<K extends PMapKey, V>(stack: Array<Item<K, V>>): void {
  const n = stack.pop() as Node<K, V>
  if (n instanceof Leaf) {
    for (let i = n.keys.length - 1; i >= 0; i--) stack.push({ k: n.keys[i], v: n.vals[i] })
  } else for (let i = n.kids.length - 1; i >= 0; i--) stack.push(n.kids[i])
}

const isNode = <K extends PMapKey, V>(x: Item<K, V>): x is Node<K, V> =>
  x instanceof Leaf || x instanceof Branch
const first = <K extends PMapKey, V>(x: Item<K, V>): K => (isNode(x) ? x.keys[0] : x.k)

/** height is how many levels are below `x`: -1 for an entry, 0 for a leaf. */
function height<K extends PMapKey, V>(x: Item<K, V>): number {
  let h = -1
  for (let n: Item<K, V> | undefined = x; n !== undefined && isNode(n); h++) {
    n = n instanceof Branch ? n.kids[0] : undefined
  }
  return h
}

/** diff yields the keys whose entries differ between two trees, in key order. */
export function* diff<K extends PMapKey, V>(a: Node<K, V> | undefined, b: Node<K, V> | undefined) {
  const sa: Array<Item<K, V>> = a ? [a] : []
  const sb: Array<Item<K, V>> = b ? [b] : []
  // Each stack holds what is left of its tree, smallest keys on top.
  while (sa.length > 0 || sb.length > 0) {
    const x = sa[sa.length - 1]
    const y = sb[sb.length - 1]
    if (x === y) {
      sa.pop()
      sb.pop()
      continue
    }
    const c = x === undefined ? 1 : y === undefined ? -1 : cmp(first(x), first(y))
    // What starts before everything on the other side is opened, or is an entry only it has.
    const [s, z] = c < 0 ? [sa, x] : [sb, y]
    if (c !== 0) {
      if (isNode(z)) open(s)
      else {
        s.pop()
        yield z.k
      }
      continue
    }
    // Both start at one key: the taller opens (both when of one height), till two entries.
    const hx = height(x)
    const hy = height(y)
    if (hx >= 0 || hy >= 0) {
      if (hx >= hy) open(sa)
      if (hy >= hx) open(sb)
      continue
    }
    sa.pop()
    sb.pop()
    if ((x as { v: V }).v !== (y as { v: V }).v) yield first(x)
  }
}
