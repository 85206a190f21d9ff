import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type { RegistryChange } from '../ts/index'
import { BusClient } from '../ts/bus/client'
import { ChangeHistory } from '../ts/coordinator/registry/history'
import { Registry } from '../ts/coordinator/registry/registry'
import { apply, JOIN_KEY, seed } from './fixtures/registry'
import { opsCluster, type OpsCluster } from './fixtures/ops-cluster'
import { codeOf, waitUntil } from './helpers'

/** take reads `n` changes from a stream, then stops it. */
async function take(it: AsyncIterable<RegistryChange>, n: number): Promise<RegistryChange[]> {
  const out: RegistryChange[] = []
  if (n === 0) return out
  for await (const c of it) if (out.push(c) >= n) break
  return out
}

describe('the registry history', () => {
  it('records what each applied command changed, its proposer and no secrets', () => {
    const r = new Registry()
    seed(r)
    const from = r.state.index
    apply(r, { op: 'shard.create', name: 'orders', type: 'kv' })
    apply(r, { op: 'shard.create', name: 'orders', type: 'kv' }) // exists: changes nothing
    apply(r, { op: 'shard.delete', id: 999 }) // refused
    apply(r, { op: 'access.rotate', joinKey: 'cd'.repeat(32) })
    const [create, rotate, ...rest] = r.history.after(from)
    expect(rest).toEqual([])
    expect(create).toMatchObject({ op: 'shard.create', by: 'h1', index: from + 1 })
    expect(create.changes).toEqual([
      { kind: 'shard', id: 2, record: expect.objectContaining({ name: 'orders', id: 2 }) },
    ])
    expect(rotate.index).toBe(from + 4)
    expect(rotate.command.joinKey).toBe('<redacted>')
    expect(JSON.stringify(r.history.after(0))).not.toContain(JOIN_KEY)
  })

  it('lists a removed record as null and leaves out records whose update index alone moved', () => {
    const r = new Registry()
    seed(r)
    const from = r.state.index
    apply(r, { op: 'replica.delete', id: 6 })
    const [del] = r.history.after(from)
    // The shard and host of the replica are marked updated, but did not change otherwise.
    expect(del.changes).toEqual([{ kind: 'replica', id: 6, record: null }])
  })

  it('keeps the last `limit` changes and refuses an index older than it keeps', async () => {
    const h = new ChangeHistory(3)
    const c = (index: number): RegistryChange => ({ index, op: 'x', command: {}, changes: [] })
    for (let i = 1; i <= 5; i++) h.push(c(i))
    expect(h.from).toBe(2)
    expect(h.after(2).map((x) => x.index)).toEqual([3, 4, 5])
    expect(h.after(4).map((x) => x.index)).toEqual([5])
    expect(await codeOf(() => h.after(1))).toBe('ERR_INVALID_ARGUMENT')
    // A reader that falls behind what is kept fails rather than skipping changes.
    const ac = new AbortController()
    const it = h.follow(2, ac.signal)[Symbol.asyncIterator]()
    expect((await it.next()).value?.index).toBe(3)
    for (let i = 6; i <= 9; i++) h.push(c(i))
    // What it had in hand (4, 5) it yields; then 6 is gone, and it fails.
    expect((await it.next()).value?.index).toBe(4)
    expect((await it.next()).value?.index).toBe(5)
    expect(await codeOf(() => it.next())).toBe('ERR_INVALID_ARGUMENT')
  })
})

describe('agent.changes', () => {
  let c: OpsCluster
  beforeAll(async () => {
    c = await opsCluster('changes')
  }, 60_000)
  afterAll(() => c?.stop())

  it('resumes from any index it keeps without gaps or repeats, here and over the bus', async () => {
    const [a, b] = c.agents
    const start = a.stateLocal((s) => s.index)
    const ac = new AbortController()
    const all: RegistryChange[] = []
    const reading = (async () => {
      for await (const x of a.changes({ since: start, signal: ac.signal })) all.push(x)
    })()
    const ids: number[] = []
    for (const name of ['c1', 'c2', 'c3'])
      ids.push((await a.createShard('kv', { name, placement: { members: { count: 3 } } })).id)
    await Promise.all(ids.map((id) => a.waitForShard(id)))
    await waitUntil(() => all.some((x) => x.op === 'shard.create' && x.command.name === 'c3'))
    const seen = [...all]
    const indexes = seen.map((x) => x.index)
    expect(indexes).toEqual([...indexes].sort((x, y) => x - y))
    expect(new Set(indexes).size).toBe(indexes.length)
    expect(indexes[0]).toBeGreaterThan(start)
    const creates = seen.filter((x) => x.op === 'shard.create')
    expect(creates.map((x) => x.changes[0].id)).toEqual(ids)
    expect(creates.every((x) => x.by === a.hostId)).toBe(true)

    // From the middle: exactly what came after it, on this host and on another over the bus.
    const mid = indexes[Math.floor(indexes.length / 2)]
    const after = seen.filter((x) => x.index > mid)
    expect(await take(a.changes({ since: mid }), after.length)).toEqual(after)
    const bus = new BusClient('changes', { hostId: () => b.hostId })
    try {
      const remote = bus.changes(c.peers[2], mid)
      const got: RegistryChange[] = []
      for await (const data of remote) {
        got.push(JSON.parse(data.toString()))
        if (got.length === after.length) break
      }
      expect(got.map((x) => x.index)).toEqual(after.map((x) => x.index))
      expect(got.map((x) => x.op)).toEqual(after.map((x) => x.op))
      // A caller the registry does not know is refused, as on every other bus call.
      const stranger = new BusClient('changes', { hostId: () => 'nobody' })
      const refused = (async () => {
        for await (const _ of stranger.changes(c.peers[2], mid)) break
      })()
      expect(await codeOf(refused)).toBe('ERR_UNAUTHENTICATED')
      stranger.close()
    } finally {
      bus.close()
    }
    ac.abort()
    await reading
  })

  it('refuses a since the host no longer keeps, and bad options, at once', async () => {
    const a = c.agents[0]
    expect(await codeOf(() => a.changes({ since: -1 }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => a.changes({ since: 1.5 }))).toBe('ERR_INVALID_ARGUMENT')
  })
})
