import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

import { type PMapKey, nodesMade, PMap } from '../ts/coordinator/registry/pmap'

// The registry's persistent sorted map, against a plain Map: every version answers as the Map
// it stands for, old versions never change, and a change copies a path, not the map.

/** Op is a change to a map: set a key to a value, or delete it. */
type Op<K> = { set: K; v: number } | { del: K }

/** sorted is a Map's entries in ascending key order. */
const sorted = <K extends PMapKey, V>(m: Map<K, V>) =>
  [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

/** same checks that `p` holds what `m` holds, in key order, through every read. */
function same<K extends PMapKey, V>(p: PMap<K, V>, m: Map<K, V>): void {
  const want = sorted(m)
  expect(p.size).toBe(m.size)
  expect([...p]).toEqual(want)
  expect([...p.keys()]).toEqual(want.map(([k]) => k))
  expect([...p.values()]).toEqual(want.map(([, v]) => v))
  expect(p.valueList()).toEqual(want.map(([, v]) => v))
  const each: Array<[K, V]> = []
  p.forEach((v, k) => each.push([k, v]))
  expect(each).toEqual(want)
  for (const [k, v] of want) {
    expect(p.get(k)).toBe(v)
    expect(p.has(k)).toBe(true)
  }
}

/** run applies ops to both, keeping every version of each. */
function run<K extends PMapKey>(ops: Array<Op<K>>, start: Array<[K, number]> = []) {
  let p = PMap.from<K, number>(start)
  let m = new Map(start)
  const versions: Array<[PMap<K, number>, Map<K, number>]> = [[p, m]]
  for (const op of ops) {
    m = new Map(m)
    if ('set' in op) {
      p = p.set(op.set, op.v)
      m.set(op.set, op.v)
    } else {
      p = p.delete(op.del)
      m.delete(op.del)
    }
    versions.push([p, m])
  }
  return versions
}

/** changed is the keys whose values differ between two Maps, in key order. */
const changed = <K extends PMapKey>(a: Map<K, number>, b: Map<K, number>) =>
  sorted(new Map([...a, ...b]))
    .map(([k]) => k)
    .filter((k) => a.get(k) !== b.get(k) || a.has(k) !== b.has(k))

const numOp = fc.oneof(
  fc.record({ set: fc.integer({ min: 0, max: 300 }), v: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ del: fc.integer({ min: 0, max: 300 }) }),
)
const strOp = fc.oneof(
  fc.record({ set: fc.string({ maxLength: 3 }), v: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ del: fc.string({ maxLength: 3 }) }),
)

describe('PMap', () => {
  it('answers as a Map after any changes, and every earlier version stays as it was', () => {
    fc.assert(
      fc.property(fc.array(numOp, { maxLength: 400 }), (ops) => {
        const versions = run(ops)
        for (const [p, m] of versions) same(p, m)
      }),
      { numRuns: 40, seed: 7 },
    )
    fc.assert(
      fc.property(fc.array(strOp, { maxLength: 200 }), (ops) => {
        for (const [p, m] of run(ops)) same(p, m)
      }),
      { numRuns: 40, seed: 8 },
    )
  })

  it('lists what changed between two versions, and only that', () => {
    const start = Array.from({ length: 2_000 }, (_, i): [number, number] => [i * 2, 0])
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              set: fc.integer({ min: 0, max: 4_100 }),
              v: fc.integer({ min: 0, max: 2 }),
            }),
            fc.record({ del: fc.integer({ min: 0, max: 4_100 }) }),
          ),
          { maxLength: 60 },
        ),
        (ops) => {
          const versions = run(ops, start)
          const [p0, m0] = versions[0]
          const [p1, m1] = versions[versions.length - 1]
          expect([...p1.changes(p0)]).toEqual(changed(m0, m1))
          expect([...p0.changes(p1)]).toEqual(changed(m1, m0))
        },
      ),
      { numRuns: 30, seed: 9 },
    )
  })

  it('builds from entries in any order, a later entry of a key winning', () => {
    const p = PMap.from<string, number>([
      ['b', 1],
      ['a', 2],
      ['b', 3],
    ])
    expect([...p]).toEqual([
      ['a', 2],
      ['b', 3],
    ])
    expect(PMap.from(p)).toBe(p)
    expect(PMap.empty().size).toBe(0)
  })

  it('copies a path of a few nodes for a change to a map of 100,000 entries', () => {
    const big = PMap.from(Array.from({ length: 100_000 }, (_, i): [number, number] => [i, i]))
    let p = big
    const before = nodesMade()
    for (let i = 0; i < 100; i++) p = p.set(i * 997, -1)
    for (let i = 0; i < 100; i++) p = p.delete(i * 991 + 1)
    for (let i = 0; i < 100; i++) p = p.set(100_000 + i, i)
    // At most a path (4 levels) per change, and a split or a merge now and then.
    expect(nodesMade() - before).toBeLessThan(300 * 6)
    expect(p.size).toBe(100_000)
    expect(big.get(0)).toBe(0)
    expect(p.get(0)).toBe(-1)
    expect(p.has(1)).toBe(false)
    // Setting a key to the value it has makes nothing.
    const now = nodesMade()
    expect(p.set(5, 5)).toBe(p)
    expect(p.delete(-1)).toBe(p)
    expect(nodesMade()).toBe(now)
    expect([...p.changes(p)]).toEqual([])
  })

  it('empties and fills again after deleting every key', () => {
    const keys = Array.from({ length: 5_000 }, (_, i) => (i * 7919) % 5_000)
    let p = PMap.from(keys.map((k): [number, number] => [k, k]))
    const left = new Set(keys)
    for (const [i, k] of keys.entries()) {
      p = p.delete(k)
      left.delete(k)
      if (i % 250 === 0) expect([...p.keys()]).toEqual([...left].sort((a, b) => a - b))
    }
    expect(p.size).toBe(0)
    expect([...p]).toEqual([])
    for (const k of keys.slice(0, 100)) p = p.set(k, 1)
    expect(p.size).toBe(100)
    expect([...p.keys()]).toEqual(keys.slice(0, 100).sort((a, b) => a - b))
  })
})
