import { describe, expect, it, vi } from 'vitest'

import { SHARD_FULL_PASS_MS } from '../ts/coordinator/control/changes'
import { replicaLoad } from '../ts/coordinator/control/placement'
import { drifted, type Move } from '../ts/coordinator/control/rebalance'
import { DefaultShardController } from '../ts/coordinator/control/shard-controller'
import type { Registry } from '../ts/coordinator/registry/registry'
import type { HostRecord, Placement } from '../ts/coordinator/registry/records'
import { Leader } from './fixtures/leader'
import { run, seed } from './fixtures/registry'
import { Registry as RegistryImpl } from '../ts/coordinator/registry/registry'

// Rebalancing and change-driven runs of the default shard controller, against a registry
// (the host controllers played by fixtures/leader.ts): replicas move to a host that joined,
// one shard at a time and through the steps of a replacement; and a run looks only at what
// changed, but at every shard a host change touches.

/** putHost registers (or rewrites) host `id` running `kv` with `tags`. */
function putHost(r: Registry, id: string, tags: Record<string, string>): void {
  run(r, {
    op: 'host.put',
    host: { id, apiAddress: `a-${id}`, raftAddress: `r-${id}`, tags, shardTypes: ['kv'] },
  })
}

/**
 * balanced is a registry of hosts h1–h3 with `shards` shards of 3 voters on all three (shard 1
 * included), every replica active.
 */
function balanced(shards: number, placement: Placement = { members: { count: 3 } }): Registry {
  const r = new RegistryImpl()
  seed(r)
  if (placement !== undefined) run(r, { op: 'shard.update', id: 1, placement })
  for (let i = 1; i < shards; i++) {
    run(r, { op: 'shard.create', name: '', type: 'kv', placement })
    const id = r.state.nextShardId - 1
    const items = [1, 2, 3].map((h) => ({ hostId: `h${h}`, nonVoting: false, initial: true }))
    run(r, { op: 'replicas.create', shardId: id, items })
  }
  for (const rep of r.state.replicas.values())
    if (rep.shardId !== 0) run(r, { op: 'replica.update', id: rep.id, status: 'active' })
  return r
}

/** settle runs the leader and the hosts until a round proposes nothing (at most `n` rounds). */
async function settle(l: Leader, n = 400): Promise<string[]> {
  const all: string[] = []
  for (let i = 0; i < n; i++) {
    const out = await l.steps(1)
    all.push(...out)
    if (out.length === 0) return all
  }
  throw new Error(`not settled in ${n} rounds`)
}

const perHost = (r: Registry, hosts: string[]) => {
  const load = replicaLoad(r.state)
  return hosts.map((h) => load.get(h) ?? 0)
}

/** voters counts each user shard's voters, by count. */
const votersOf = (r: Registry) =>
  [...r.state.shards.keys()]
    .filter((id) => id !== 0)
    .map((id) => r.state.replicasOf(id).filter((x) => !x.nonVoting).length)

interface Case {
  name: string
  shards: number
  /** Hosts that join the balanced cluster of h1–h3, with their tags. */
  join: Array<[string, Record<string, string>]>
  options?: ConstructorParameters<typeof DefaultShardController>[2]
  placement?: Placement
  /** Replicas per host h1, h2, … once settled. */
  want: number[]
}

const cases: Case[] = [
  {
    name: 'a host that joins gets its share',
    shards: 8,
    join: [['h4', { zone: 'z4' }]],
    want: [6, 6, 6, 6],
  },
  {
    name: 'two hosts that join share the load with the others',
    shards: 10,
    join: [
      ['h4', { zone: 'z4' }],
      ['h5', { zone: 'z5' }],
    ],
    want: [6, 6, 6, 6, 6],
  },
  {
    name: 'a host of capacity 2 takes twice the share',
    shards: 14,
    join: [
      ['h4', { zone: 'z4' }],
      ['h5', { zone: 'z5' }],
      ['h6', { zone: 'z6', capacity: '2' }],
    ],
    // 42 replicas over 7 units: 6 per unit, as near as single moves get (each shard's
    // replicas on different hosts: h6 holds 11 of the 14 shards, and none of the other three
    // has one on the host holding 7).
    want: [6, 6, 6, 6, 7, 11],
  },
  {
    name: 'nothing moves when rebalancing is off',
    shards: 8,
    join: [['h4', { zone: 'z4' }]],
    options: { rebalance: false },
    want: [8, 8, 8, 0],
  },
  {
    name: 'a placement by tag moves only to the hosts it allows',
    shards: 6,
    placement: { members: { count: 3, tags: { disk: 'ssd' } } },
    join: [
      ['h4', { zone: 'z4', disk: 'ssd' }],
      ['h5', { zone: 'z5' }],
    ],
    want: [5, 5, 4, 4, 0],
  },
]

describe('rebalancing', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const r = balanced(c.shards, c.placement)
      if (c.placement?.members?.tags)
        for (const h of ['h1', 'h2', 'h3']) putHost(r, h, { zone: `z${h[1]}`, disk: 'ssd' })
      for (const [id, tags] of c.join) putHost(r, id, tags)
      const l = new Leader(r, new DefaultShardController(undefined, undefined, c.options))
      await settle(l)
      const hosts = c.want.map((_, i) => `h${i + 1}`)
      expect(perHost(r, hosts).sort()).toEqual([...c.want].sort())
      expect(votersOf(r).every((n) => n === 3)).toBe(true)
    })
  }

  it('moves through add, catch up, promote and remove, never below three voters', async () => {
    const r = balanced(2)
    putHost(r, 'h4', { zone: 'z4' })
    const moved: Move[] = []
    const l = new Leader(
      r,
      new DefaultShardController(undefined, undefined, { onMove: (m) => moved.push(m) }),
    )
    const steps = await settle(l)
    // 6 replicas, 4 hosts: one moves to h4.
    expect(steps).toEqual([
      'create h4 non-voting',
      'update 10 nonVoting=false',
      'promote 1/10',
      'update 4 deleting',
    ])
    expect(moved).toEqual([{ shardId: 1, from: 'h1', to: 'h4' }])
  })

  it('spends the cluster rate, and moves no more than maxMoves at once', async () => {
    const r = balanced(12)
    putHost(r, 'h4', { zone: 'z4' })
    const l = new Leader(r, new DefaultShardController(undefined, undefined, { maxMoves: 2 }))
    l.tokens = 0
    expect(await l.steps(3)).toEqual([])
    l.tokens = Number.POSITIVE_INFINITY
    await l.round()
    // Two shards have a replica on h4 being added, no more.
    const joining = [...r.state.replicas.values()].filter((x) => x.status !== 'active')
    expect(joining.map((x) => x.hostId)).toEqual(['h4', 'h4'])
    await settle(l)
    expect(perHost(r, ['h1', 'h2', 'h3', 'h4']).sort()).toEqual([9, 9, 9, 9])
  })

  it('searches again for a move none could make only on the next full pass', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      const r = balanced(6)
      // h4 runs another type: it holds nothing, and no kv replica can go there.
      run(r, {
        op: 'host.put',
        host: { id: 'h4', apiAddress: 'a', raftAddress: 'r', tags: {}, shardTypes: ['other'] },
      })
      const l = new Leader(r)
      expect(await l.steps(1)).toEqual([])
      run(r, { op: 'shard.update', id: 2, tags: { touched: 'yes' } })
      let looks = vi.spyOn(r.state, 'replicasOn')
      await l.round()
      expect(looks).not.toHaveBeenCalled()
      vi.setSystemTime(Date.now() + SHARD_FULL_PASS_MS)
      looks = vi.spyOn(r.state, 'replicasOn')
      await l.round()
      expect(looks).toHaveBeenCalled()
    } finally {
      vi.useRealTimers()
    }
  })

  it('leaves a shard with a change in flight alone', async () => {
    const r = balanced(2)
    putHost(r, 'h4', { zone: 'z4' })
    // Shard 1's replica on h1 is on its way out: shard 2 moves instead.
    const leaving = r.state.replicasOf(1).find((x) => x.hostId === 'h1')
    run(r, { op: 'replica.update', id: leaving?.id ?? 0, status: 'deleting' })
    const l = new Leader(r)
    await l.round()
    expect(r.state.replicasOn('h4').map((x) => x.shardId)).toEqual([2])
    expect(r.state.replicasOf(1).map((x) => x.hostId)).toEqual(['h1', 'h2', 'h3'])
  })
})

describe('capacity', () => {
  it('weighs where new replicas go: a host of capacity 2 takes twice as many', async () => {
    const r = balanced(1)
    putHost(r, 'h4', { zone: 'z4', capacity: '2' })
    const placement: Placement = { members: { count: 1 } }
    for (let i = 0; i < 8; i++) run(r, { op: 'shard.create', name: '', type: 'kv', placement })
    await new Leader(
      r,
      new DefaultShardController(undefined, undefined, { rebalance: false }),
    ).round()
    // 11 replicas over 5 units of capacity: 2 on each host of capacity 1, 5 on h4.
    expect(perHost(r, ['h1', 'h2', 'h3', 'h4'])).toEqual([2, 2, 2, 5])
  })
})

describe('drift', () => {
  const hosts = ['h1', 'h2', 'h3', 'h4'].map((id) => ({
    id,
    tags: id === 'h4' ? { capacity: '2' } : {},
  })) as HostRecord[]
  const cases: Array<[number[], boolean]> = [
    [[5, 5, 5, 10], false],
    [[6, 6, 5, 9], false], // mean 5.2 per unit: 6 below 6.24, 4.5 above 4.33
    [[6, 6, 6, 8], true], // mean 5.2: h4's 4 per unit below 4.33
    [[6, 5, 5, 10], false],
    [[8, 5, 5, 10], true], // mean 5.6: 8 above 6.72
    [[0, 0, 0, 0], false],
  ]
  for (const [load, want] of cases) {
    it(`${load.join(', ')} (h4 of capacity 2): ${want ? 'drifted' : 'within 20%'}`, () => {
      const m = new Map(load.map((n, i) => [`h${i + 1}`, n]))
      expect(drifted(hosts, m, 0.2)).toBe(want)
    })
  }
})

describe('change-driven runs', () => {
  it('look at no shard when nothing changed, and at the shard that did', async () => {
    const r = balanced(20)
    const l = new Leader(r)
    await settle(l)
    const seen = (s = r.state) => vi.spyOn(s, 'replicasOf')
    let spy = seen()
    await l.round()
    expect(spy).not.toHaveBeenCalled()
    run(r, { op: 'shard.update', id: 7, placement: { members: { count: 4 } } })
    spy = seen()
    await l.round()
    expect(new Set(spy.mock.calls.map(([id]) => id))).toEqual(new Set([7]))
  })

  it('reconcile every shard a host change touches: its tags removed', async () => {
    const placement: Placement = { members: { count: 1, tags: { disk: 'ssd' } } }
    const r = balanced(1)
    putHost(r, 'h4', { zone: 'z4', disk: 'ssd' })
    putHost(r, 'h5', { zone: 'z5', disk: 'ssd' })
    for (let i = 0; i < 40; i++) run(r, { op: 'shard.create', name: '', type: 'kv', placement })
    const l = new Leader(r, new DefaultShardController(undefined, undefined, { rebalance: false }))
    await settle(l)
    expect(perHost(r, ['h4', 'h5'])).toEqual([20, 20])
    putHost(r, 'h4', { zone: 'z4' })
    await settle(l)
    expect(perHost(r, ['h4', 'h5'])).toEqual([0, 40])
  })
})
