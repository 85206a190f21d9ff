import { afterEach, describe, expect, it, vi } from 'vitest'

import { place, replicaLoad } from '../ts/coordinator/control/placement'
import {
  type ControllerContext,
  DefaultShardController,
  ERROR_TAG,
} from '../ts/coordinator/control/shard-controller'
import type { Registry } from '../ts/coordinator/registry/registry'
import type { Placement } from '../ts/coordinator/registry/records'
import { addHost, apply, fresh, outcome, run } from './fixtures/registry'

// Placement by load, against a registry: new replicas go to the hosts with the fewest
// replicas among those a placement allows, and shards placed in one controller run spread
// over the hosts instead of all picking the same ones.

const ctx: ControllerContext = {
  leaving: (h) => h === undefined || (h.status !== 'active' && h.status !== 'missing'),
  alive: (h) => h?.status === 'active' || h?.status === 'draining',
  take: () => true,
  membership: { promote: async () => {}, demote: async () => {}, remove: async () => {} },
}

/** round runs a shard controller (a new default one unless given) once against the registry. */
async function round(r: Registry, controller = new DefaultShardController()): Promise<void> {
  await controller.reconcile(
    r.state,
    async (cmd) => {
      const out = outcome(apply(r, cmd)[0])
      if (!out.ok) throw new Error(String(out.error))
      return out as { ok: true }
    },
    ctx,
  )
}

/** perHost lists the replicas of user shards on each of `hosts`, in that order. */
const perHost = (r: Registry, hosts: string[]) => {
  const load = replicaLoad(r.state)
  return hosts.map((h) => load.get(h) ?? 0)
}

interface Case {
  name: string
  /** Hosts added to the fresh registry (h1–h5, shard 1 on h1–h3), with their zones. */
  add?: Array<[string, string]>
  /** Shards created at once, each with this placement. */
  shards: number
  placement: Placement
  /** Replicas of user shards per host h1, h2, … after one controller run. */
  want: number[]
}

const cases: Case[] = [
  {
    name: 'a new shard goes to the hosts that hold no replica yet',
    shards: 1,
    placement: { members: { count: 2 } },
    want: [1, 1, 1, 1, 1],
  },
  {
    name: 'twelve shards of 3 voters on six hosts give each host its share',
    add: [['h6', 'z6']],
    shards: 12,
    placement: { members: { count: 3 } },
    want: [7, 7, 7, 6, 6, 6],
  },
  {
    name: 'shards created at once fill the emptier hosts first, then spread evenly',
    shards: 4,
    placement: { members: { count: 3 } },
    // 3 + 12 replicas over 5 hosts.
    want: [3, 3, 3, 3, 3],
  },
  {
    name: 'tags still decide which hosts may take a replica',
    add: [
      ['h6', 'z4'],
      ['h7', 'z4'],
    ],
    shards: 4,
    placement: { members: { count: 1, tags: { zone: 'z4' } } },
    want: [1, 1, 1, 2, 0, 1, 1],
  },
  {
    name: 'vary is kept before load',
    add: [['h6', 'z4']],
    shards: 2,
    placement: { members: { count: 2 }, vary: ['zone'] },
    // h4 and h6 share zone z4: one shard takes h4 and h5, the next h6 and another zone.
    want: [2, 1, 1, 1, 1, 1],
  },
]

describe('placement by load', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const r = fresh()
      for (const [id, zone] of c.add ?? []) addHost(r, id, zone)
      for (let i = 0; i < c.shards; i++)
        run(r, { op: 'shard.create', name: '', type: 'kv', placement: c.placement })
      await round(r)
      const hosts = c.want.map((_, i) => `h${i + 1}`)
      expect(perHost(r, hosts)).toEqual(c.want)
    })
  }

  it('a replica that fits stays where it is, however loaded its host', () => {
    const r = fresh()
    addHost(r, 'h6', 'z6')
    const shard = r.state.shards.get(1)
    if (!shard) throw new Error('no shard 1')
    expect(place(r.state, shard).map((w) => w.hostId)).toEqual(['h1', 'h2', 'h3'])
  })
})

describe('placement errors', () => {
  afterEach(() => vi.useRealTimers())

  it('are recorded at a bounded rate: ten a second, the rest on later runs', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const r = fresh()
    // Ten voters wanted, five hosts: every one of these shards has a placement error.
    for (let i = 0; i < 30; i++)
      run(r, { op: 'shard.create', name: '', type: 'kv', placement: { members: { count: 10 } } })
    const tagged = () =>
      [...r.state.shards.values()].filter((sh) => sh.tags[ERROR_TAG] !== undefined).length
    const controller = new DefaultShardController()
    await round(r, controller)
    expect(tagged()).toBe(10)
    await round(r, controller)
    expect(tagged()).toBe(10)
    vi.setSystemTime(Date.now() + 1000)
    await round(r, controller)
    expect(tagged()).toBe(20)
    vi.setSystemTime(Date.now() + 1000)
    await round(r, controller)
    expect(tagged()).toBe(30)
  })
})
