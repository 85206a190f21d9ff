import { describe, expect, it } from 'vitest'

import { Registry } from '../ts/coordinator/registry/registry'
import { apply, outcome, seed } from './fixtures/registry'

// shards.create, the command of Agent.createShards, on the seeded registry (see seed): many
// shards in one command, each as shard.create makes one, all or none.

/** rows is what a refused command must leave as it was. */
const rows = (r: Registry) => JSON.stringify([[...r.state.shards], r.state.nextShardId])

/** run applies one shards.create of `items` to a seeded registry. */
function run(items: unknown) {
  const r = new Registry()
  seed(r)
  const before = rows(r)
  const [x] = apply(r, { op: 'shards.create', items })
  return { r, out: outcome(x), value: x.value, unchanged: rows(r) === before }
}

describe('shards.create', () => {
  it('makes many shards, a known name answering its shard, in the order given', () => {
    const { r, out, value } = run([
      { name: 'a', type: 'kv', tags: { t: '1' } },
      { name: 'users', type: 'kv' },
      { name: '', type: 'kv', placement: { members: { count: 3 } } },
      { name: 'a', type: 'kv' },
    ])
    expect(value).toBe(1)
    expect(out).toEqual({ ok: true, ids: [2, 1, 3, 2] })
    const s = r.state
    expect(s.shards.get(2)).toMatchObject({ name: 'a', status: 'new', tags: { t: '1' } })
    expect(s.shards.get(3)?.placement).toEqual({ members: { count: 3 } })
    expect(s.shards.get(2)?.created).toBe(s.shards.get(3)?.created)
    expect(s.shardByName('a')?.id).toBe(2)
    expect(s.nextShardId).toBe(4)
  })

  const refused: Array<[string, unknown, RegExp]> = [
    ['without items', [], /^items are required$/],
    ['with items that are not a list', { name: 'x' }, /^items are required$/],
    [
      'with one bad item, naming it',
      [
        { name: 'fine', type: 'kv' },
        { name: 'x', type: '' },
      ],
      /^item 1: shard type is required$/,
    ],
    ['with an item that is not an object', [{ name: 'fine', type: 'kv' }, 3], /^item 1: an item/],
    [
      'of a name on record with another type',
      [
        { name: 'fine', type: 'kv' },
        { name: 'users', type: 'other' },
      ],
      /^item 1: shard "users" exists with type kv$/,
    ],
    [
      'of one name twice with two types',
      [
        { name: 'b', type: 'kv' },
        { name: 'b', type: 'other' },
      ],
      /^item 1: shard "b" exists with type kv$/,
    ],
  ]
  for (const [name, items, error] of refused) {
    it(`refuses a list ${name}, and makes none of it`, () => {
      const { out, value, unchanged } = run(items)
      expect(value).toBe(0)
      expect(out).toEqual({ ok: false, error: expect.stringMatching(error) })
      expect(unchanged).toBe(true)
    })
  }
})
