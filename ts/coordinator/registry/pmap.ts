// PMap: a persistent sorted map (a B+tree with path copying). Every change returns a new map
// that shares all but the changed path with the old one, which never changes: a change costs
// O(log n) nodes of at most 32 entries, and readers holding the old map keep a consistent
// view. Keys are numbers or strings (one kind per map), kept in ascending order.

/** PMapKey is what a PMap is keyed by: the registry's ids and names. */
export type PMapKey = number | string

/** WIDTH is the most entries (a leaf) or children (a branch) one node holds. */
const WIDTH = 32
/** LOW is the fewest a node keeps after a delete before it is merged with a neighbour. */
const LOW = WIDTH / 4

let made = 0

/** nodesMade counts the tree nodes every PMap has made so far (what changes copy). */
export function nodesMade(): number {
  return made
}

/** Leaf holds entries: sorted keys and their values. */
class Leaf<K extends PMapKey, V> {
  constructor(
    readonly keys: K[],
    readonly vals: V[],
  ) {
    made++
  }
}

/** Branch holds children, with the smallest key under each. */
class Branch<K extends PMapKey, V> {
  constructor(
    readonly keys: K[],
    readonly kids: Array<Node<K, V>>,
  ) {
    made++
  }
}

type Node<K extends PMapKey, V> = Leaf<K, V> | Branch<K, V>

const cmp = <K extends PMapKey>(a: K, b: K): number => (a < b ? -1 : a > b ? 1 : 0)

/** lowerBound is the first index in `keys` whose key is at least `k`. */
function lowerBound<K extends PMapKey>(keys: K[], k: K): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (keys[mid] < k) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** childAt is the index of the child of a branch whose keys may hold `k`. */
function childAt<K extends PMapKey>(keys: K[], k: K): number {
  const i = lowerBound(keys, k)
  return i < keys.length && keys[i] === k ? i : Math.max(0, i - 1)
}

const inserted = <T>(xs: T[], i: number, x: T): T[] => [...xs.slice(0, i), x, ...xs.slice(i)]
const replaced = <T>(xs: T[], i: number, x: T): T[] => {
  const out = xs.slice()
  out[i] = x
  return out
}
const removed = <T>(xs: T[], i: number): T[] => [...xs.slice(0, i), ...xs.slice(i + 1)]

/** halves splits `xs` in two halves, the first no shorter than the second. */
const halves = <T>(xs: T[]): [T[], T[]] => {
  const m = Math.ceil(xs.length / 2)
  return [xs.slice(0, m), xs.slice(m)]
}

/** The outcome of a change below: whether it added or removed an entry. */
let grew = false
let shrank = false

/** put sets `k` under `n`: the new node, two when it split, or `n` itself when unchanged. */
function put<K extends PMapKey, V>(
  n: Node<K, V>,
  k: K,
  v: V,
): Node<K, V> | [Node<K, V>, Node<K, V>] {
  if (n instanceof Leaf) {
    const i = lowerBound(n.keys, k)
    if (i < n.keys.length && n.keys[i] === k) {
      return n.vals[i] === v ? n : new Leaf(n.keys, replaced(n.vals, i, v))
    }
    grew = true
    const keys = inserted(n.keys, i, k)
    const vals = inserted(n.vals, i, v)
    if (keys.length <= WIDTH) return new Leaf(keys, vals)
    const [k1, k2] = halves(keys)
    const [v1, v2] = halves(vals)
    return [new Leaf(k1, v1), new Leaf(k2, v2)]
  }
  const i = childAt(n.keys, k)
  const r = put(n.kids[i], k, v)
  if (r === n.kids[i]) return n
  if (!Array.isArray(r)) {
    const keys = r.keys[0] === n.keys[i] ? n.keys : replaced(n.keys, i, r.keys[0])
    return new Branch(keys, replaced(n.kids, i, r))
  }
  const keys = inserted(replaced(n.keys, i, r[0].keys[0]), i + 1, r[1].keys[0])
  const kids = inserted(replaced(n.kids, i, r[0]), i + 1, r[1])
  if (kids.length <= WIDTH) return new Branch(keys, kids)
  const [k1, k2] = halves(keys)
  const [c1, c2] = halves(kids)
  return [new Branch(k1, c1), new Branch(k2, c2)]
}

/**
 * joined makes one node of two neighbours of one level (`a` before `b`), or two of about
 * equal size when they do not fit in one.
 */
function joined<K extends PMapKey, V>(a: Node<K, V>, b: Node<K, V>): Array<Node<K, V>> {
  const keys = [...a.keys, ...b.keys]
  if (a instanceof Leaf && b instanceof Leaf) {
    const vals = [...a.vals, ...b.vals]
    if (keys.length <= WIDTH) return [new Leaf(keys, vals)]
    const [k1, k2] = halves(keys)
    const [v1, v2] = halves(vals)
    return [new Leaf(k1, v1), new Leaf(k2, v2)]
  }
  const kids = [...(a as Branch<K, V>).kids, ...(b as Branch<K, V>).kids]
  if (keys.length <= WIDTH) return [new Branch(keys, kids)]
  const [k1, k2] = halves(keys)
  const [c1, c2] = halves(kids)
  return [new Branch(k1, c1), new Branch(k2, c2)]
}

/** drop removes `k` under `n`: the new node, undefined when none is left, or `n` unchanged. */
function drop<K extends PMapKey, V>(n: Node<K, V>, k: K): Node<K, V> | undefined {
  if (n instanceof Leaf) {
    const i = lowerBound(n.keys, k)
    if (i >= n.keys.length || n.keys[i] !== k) return n
    shrank = true
    if (n.keys.length === 1) return undefined
    return new Leaf(removed(n.keys, i), removed(n.vals, i))
  }
  const i = childAt(n.keys, k)
  const r = drop(n.kids[i], k)
  if (r === n.kids[i]) return n
  if (r === undefined) {
    if (n.kids.length === 1) return undefined
    return new Branch(removed(n.keys, i), removed(n.kids, i))
  }
  if (r.keys.length >= LOW || n.kids.length === 1) {
    return new Branch(replaced(n.keys, i, r.keys[0]), replaced(n.kids, i, r))
  }
  // Too small: merged with a neighbour (or shared out with it when both do not fit in one).
  const j = i > 0 ? i - 1 : i
  const pair = j === i ? joined(r, n.kids[i + 1]) : joined(n.kids[j], r)
  const keys = [...n.keys.slice(0, j), ...pair.map((x) => x.keys[0]), ...n.keys.slice(j + 2)]
  const kids = [...n.kids.slice(0, j), ...pair, ...n.kids.slice(j + 2)]
  return new Branch(keys, kids)
}

/** eachLeaf calls `fn` with the leaves under `n` in key order. */
function eachLeaf<K extends PMapKey, V>(n: Node<K, V> | undefined, fn: (l: Leaf<K, V>) => void) {
  if (n === undefined) return
  if (n instanceof Leaf) fn(n)
  else for (const kid of n.kids) eachLeaf(kid, fn)
}

/** What a Walk yields of each entry. */
const Yield = { Keys: 0, Values: 1, Entries: 2 } as const
type Yield = (typeof Yield)[keyof typeof Yield]

/**
 * Walk iterates over the entries of a tree in key order (keys, values or entries), a leaf at
 * a time, without a generator's cost per entry.
 */
class Walk<K extends PMapKey, V, T> implements IterableIterator<T> {
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

/** build makes a tree of entries sorted by key, without equal keys. */
function build<K extends PMapKey, V>(keys: K[], vals: V[]): Node<K, V> | undefined {
  if (keys.length === 0) return undefined
  const chunks = (n: number) => {
    const count = Math.ceil(n / WIDTH)
    return Array.from({ length: count }, (_, i) => [
      Math.floor((i * n) / count),
      Math.floor(((i + 1) * n) / count),
    ])
  }
  let level: Array<Node<K, V>> = chunks(keys.length).map(
    ([a, b]) => new Leaf(keys.slice(a, b), vals.slice(a, b)),
  )
  while (level.length > 1) {
    const below = level
    level = chunks(below.length).map(([a, b]) => {
      const kids = below.slice(a, b)
      return new Branch(
        kids.map((x) => x.keys[0]),
        kids,
      )
    })
  }
  return level[0]
}

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
    const i = lowerBound(l.keys, k)
    return i < l.keys.length && l.keys[i] === k ? l.vals[i] : undefined
  }

  /** #leafOf is the leaf that holds `k` if any entry does. */
  #leafOf(k: K): Leaf<K, V> | undefined {
    let n = this.#root
    while (n instanceof Branch) {
      // The last child whose smallest key is at most k (or the first).
      const keys = n.keys
      let lo = 0
      let hi = keys.length - 1
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1
        if (keys[mid] <= k) lo = mid
        else hi = mid - 1
      }
      n = n.kids[lo]
    }
    return n
  }

  /** has tells whether `k` has an entry. */
  has(k: K): boolean {
    const l = this.#leafOf(k)
    if (l === undefined) return false
    const i = lowerBound(l.keys, k)
    return i < l.keys.length && l.keys[i] === k
  }

  /** set returns a map with `k` set to `v` (this map when `k` already has `v`). */
  set(k: K, v: V): PMap<K, V> {
    if (this.#root === undefined) return new PMap(new Leaf([k], [v]), 1)
    grew = false
    const r = put(this.#root, k, v)
    if (r === this.#root) return this
    const root = Array.isArray(r) ? new Branch([r[0].keys[0], r[1].keys[0]], r) : r
    return new PMap(root, this.size + (grew ? 1 : 0))
  }

  /** delete returns a map without `k` (this map when it has no `k`). */
  delete(k: K): PMap<K, V> {
    if (this.#root === undefined) return this
    shrank = false
    let root = drop(this.#root, k)
    if (!shrank) return this
    while (root instanceof Branch && root.kids.length === 1) root = root.kids[0]
    return new PMap(root, this.size - 1)
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
function* diff<K extends PMapKey, V>(a: Node<K, V> | undefined, b: Node<K, V> | undefined) {
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
