// The nodes of PMap's B+tree and the changes to them: each change copies the path from the
// root to the entry it changes (and splits or merges a node now and then), never more.

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
export class Leaf<K extends PMapKey, V> {
  constructor(
    readonly keys: K[],
    readonly vals: V[],
  ) {
    made++
  }
}

/** Branch holds children, with the smallest key under each. */
export class Branch<K extends PMapKey, V> {
  constructor(
    readonly keys: K[],
    readonly kids: Array<Node<K, V>>,
  ) {
    made++
  }
}

/** Node is a leaf or a branch. */
export type Node<K extends PMapKey, V> = Leaf<K, V> | Branch<K, V>

/** cmp orders keys: numbers by value, strings by UTF-16 code units. */
export const cmp = <K extends PMapKey>(a: K, b: K): number => (a < b ? -1 : a > b ? 1 : 0)

/** lowerBound is the first index in `keys` whose key is at least `k`. */
export function lowerBound<K extends PMapKey>(keys: K[], k: K): number {
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

/** build makes a tree of entries sorted by key, without equal keys. */
export function build<K extends PMapKey, V>(keys: K[], vals: V[]): Node<K, V> | undefined {
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
 * treeSet sets `k` to `v` in the tree under `root`: the new root (`root` itself when `k`
 * already had `v`), and whether an entry was added.
 */
export function treeSet<K extends PMapKey, V>(
  root: Node<K, V> | undefined,
  k: K,
  v: V,
): [Node<K, V> | undefined, boolean] {
  if (root === undefined) return [new Leaf([k], [v]), true]
  grew = false
  const r = put(root, k, v)
  return [Array.isArray(r) ? new Branch([r[0].keys[0], r[1].keys[0]], r) : r, grew]
}

/**
 * treeDelete removes `k` from the tree under `root`: the new root (`root` itself when it had
 * no `k`), and whether an entry was removed.
 */
export function treeDelete<K extends PMapKey, V>(
  root: Node<K, V> | undefined,
  k: K,
): [Node<K, V> | undefined, boolean] {
  if (root === undefined) return [root, false]
  shrank = false
  let next = drop(root, k)
  if (!shrank) return [root, false]
  while (next instanceof Branch && next.kids.length === 1) next = next.kids[0]
  return [next, true]
}
