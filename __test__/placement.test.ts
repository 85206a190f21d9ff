import { describe, expect, it } from 'vitest'

import { PlacementError, place, validatePlacement } from '../ts/coordinator/control/placement'
import type {
  HostRecord,
  Placement,
  ReplicaRecord,
  ShardRecord,
} from '../ts/coordinator/registry/records'
import { RegistryState } from '../ts/coordinator/registry/state'

const SHARD = 7

/** host makes an active host that runs `kv`, with tags, or with the fields given. */
const host = (id: string, tags: Record<string, string> = {}, o: Partial<HostRecord> = {}) => ({
  id,
  created: 1,
  updated: 1,
  status: 'active' as const,
  tags,
  apiAddress: `api-${id}`,
  raftAddress: `raft-${id}`,
  shardTypes: ['kv'],
  ...o,
})

/** replica makes a replica of the shard under test on a host. */
const replica = (id: number, hostId: string, nonVoting: boolean): ReplicaRecord => ({
  id,
  shardId: SHARD,
  hostId,
  nonVoting,
  initial: false,
  status: 'active',
  tags: {},
  created: 1,
  updated: 1,
})

function stateOf(hosts: HostRecord[], placement: Placement, replicas: ReplicaRecord[] = []) {
  const shard: ShardRecord = {
    id: SHARD,
    name: 'under-test',
    type: 'kv',
    status: 'active',
    tags: {},
    placement,
    leader: 0,
    term: 0,
    created: 1,
    updated: 1,
  }
  const state = new RegistryState(
    1,
    new Map(hosts.map((h) => [h.id, h])),
    new Map([[SHARD, shard]]),
    new Map(replicas.map((r) => [r.id, r])),
    SHARD + 1,
    100,
  )
  return { state, shard }
}

/** Short form of a wanted replica: host, then `v` (voter) or `n` (non-voting), then group. */
const short = (w: { hostId: string; nonVoting: boolean; group: string }) =>
  `${w.hostId} ${w.nonVoting ? 'n' : 'v'} ${w.group}`

interface Case {
  name: string
  hosts: HostRecord[]
  placement: Placement
  replicas?: ReplicaRecord[]
  /** The wanted replicas in order, in short form; or the placement error expected. */
  want: string[] | RegExp
}

const z = (zone: string) => ({ zone })
const cases: Case[] = [
  {
    name: 'no placement wants no replicas',
    hosts: [host('a'), host('b')],
    placement: {},
    want: [],
  },
  {
    name: 'members take the first hosts by id',
    hosts: [host('c'), host('a'), host('d'), host('b')],
    placement: { members: { count: 3 } },
    want: ['a v members', 'b v members', 'c v members'],
  },
  {
    name: 'members of count 0 want nothing',
    hosts: [host('a')],
    placement: { members: { count: 0 } },
    want: [],
  },
  {
    name: 'members with tags use only hosts that have every tag',
    hosts: [
      host('a', { tier: 'core', zone: 'z1' }),
      host('b', { tier: 'edge', zone: 'z1' }),
      host('c', { tier: 'core' }),
      host('d', { tier: 'core', zone: 'z1' }),
    ],
    placement: { members: { count: 2, tags: { tier: 'core', zone: 'z1' } } },
    want: ['a v members', 'd v members'],
  },
  {
    name: 'tags that match no host are a placement error',
    hosts: [host('a', z('z1')), host('b', z('z2'))],
    placement: { members: { count: 1, tags: { zone: 'nowhere' } } },
    want: /^members: wants 1 hosts with tags \{"zone":"nowhere"\} running kv, found 0$/,
  },
  {
    name: 'too few hosts are a placement error that counts what was found',
    hosts: [host('a'), host('b')],
    placement: { members: { count: 3 } },
    want: /^members: wants 3 hosts running kv, found 2$/,
  },
  {
    name: 'members with a min take as many hosts as fit, at least min',
    hosts: [host('b'), host('a')],
    placement: { members: { count: 3, min: 1 } },
    want: ['a v members', 'b v members'],
  },
  {
    name: 'members with a min take no more than count',
    hosts: [host('d'), host('c'), host('b'), host('a')],
    placement: { members: { count: 3, min: 1 } },
    want: ['a v members', 'b v members', 'c v members'],
  },
  {
    name: 'fewer hosts than min are a placement error that says at least',
    hosts: [host('a', {}, { shardTypes: ['other'] })],
    placement: { members: { count: 3, min: 1 } },
    want: /^members: wants at least 1 hosts running kv, found 0$/,
  },
  {
    name: 'only active hosts that run the shard type count',
    hosts: [
      host('a', {}, { status: 'missing' }),
      host('b', {}, { status: 'gone' }),
      host('c', {}, { shardTypes: ['other'] }),
      host('d'),
      host('e'),
    ],
    placement: { members: { count: 2 } },
    want: ['d v members', 'e v members'],
  },
  {
    name: 'vary spreads members over distinct values',
    hosts: [host('a', z('z1')), host('b', z('z1')), host('c', z('z2')), host('d', z('z3'))],
    placement: { members: { count: 3 }, vary: ['zone'] },
    want: ['a v members', 'c v members', 'd v members'],
  },
  {
    name: 'vary with more replicas than distinct values fills up from the other hosts',
    hosts: [host('a', z('z1')), host('b', z('z1')), host('c', z('z2')), host('d', z('z2'))],
    placement: { members: { count: 3 }, vary: ['zone'] },
    want: ['a v members', 'c v members', 'b v members'],
  },
  {
    name: 'vary counts hosts without the tag key as sharing one empty value',
    hosts: [host('a'), host('b'), host('c', z('z1'))],
    placement: { members: { count: 2 }, vary: ['zone'] },
    want: ['a v members', 'c v members'],
  },
  {
    name: 'vary over a key no host has falls back to host order',
    hosts: [host('a', z('z1')), host('b', z('z1')), host('c', z('z2'))],
    placement: { members: { count: 3 }, vary: ['rack'] },
    want: ['a v members', 'b v members', 'c v members'],
  },
  {
    name: 'vary over two keys wants a new value of each',
    hosts: [
      host('a', { zone: 'z1', rack: 'r1' }),
      host('b', { zone: 'z2', rack: 'r1' }),
      host('c', { zone: 'z2', rack: 'r2' }),
      host('d', { zone: 'z3', rack: 'r2' }),
    ],
    placement: { members: { count: 2 }, vary: ['zone', 'rack'] },
    want: ['a v members', 'c v members'],
  },
  {
    name: 'vary spreads each group over distinct values too',
    hosts: [host('a', z('z1')), host('b', z('z1')), host('c', z('z2'))],
    placement: { groups: { read: { count: 2 } }, vary: ['zone'] },
    want: ['a n groups.read', 'c n groups.read'],
  },
  {
    name: 'groups place non-voting replicas on hosts other than the members',
    hosts: [
      host('a', { tier: 'core' }),
      host('b', { tier: 'core' }),
      host('c', { tier: 'edge' }),
      host('d', { tier: 'edge' }),
    ],
    placement: {
      members: { count: 2, tags: { tier: 'core' } },
      groups: { read: { count: 2, tags: { tier: 'edge' } } },
    },
    want: ['a v members', 'b v members', 'c n groups.read', 'd n groups.read'],
  },
  {
    name: 'a group never reuses a host the members took',
    hosts: [host('a'), host('b'), host('c')],
    placement: { members: { count: 2 }, groups: { read: { count: 2 } } },
    want: /^groups\.read: wants 2 hosts running kv, found 1$/,
  },
  {
    name: 'cover puts a non-voting replica on every other host with its tags',
    hosts: [
      host('a', { tier: 'core' }),
      host('b', { tier: 'edge' }),
      host('c', { tier: 'core' }),
      host('d', { tier: 'edge' }),
    ],
    placement: { members: { count: 1 }, cover: { tags: { tier: 'edge' } } },
    want: ['a v members', 'b n cover', 'd n cover'],
  },
  {
    name: 'cover without tags covers every host left',
    hosts: [host('a'), host('b'), host('c')],
    placement: { members: { count: 1 }, cover: {} },
    want: ['a v members', 'b n cover', 'c n cover'],
  },
  {
    name: 'cover with tags that match no host adds nothing',
    hosts: [host('a'), host('b')],
    placement: { members: { count: 1 }, cover: { tags: { tier: 'none' } } },
    want: ['a v members'],
  },
  {
    name: 'cover skips hosts that cannot run the type',
    hosts: [host('a'), host('b', {}, { shardTypes: [] }), host('c', {}, { status: 'missing' })],
    placement: { cover: {} },
    want: ['a n cover'],
  },
  {
    name: 'hosts that have a replica of the right kind are kept first',
    hosts: [host('a'), host('b'), host('c'), host('d')],
    placement: { members: { count: 2 } },
    replicas: [replica(1, 'd', false), replica(2, 'c', false)],
    want: ['c v members', 'd v members'],
  },
  {
    name: 'a replica of the other kind comes before a host without one (it keeps its data)',
    hosts: [host('a'), host('b'), host('c')],
    placement: { members: { count: 1 } },
    replicas: [replica(1, 'c', true)],
    want: ['c v members'],
  },
  {
    name: 'a replica of the right kind comes before one of the other kind',
    hosts: [host('a'), host('b'), host('c')],
    placement: { members: { count: 1 } },
    replicas: [replica(1, 'b', true), replica(2, 'c', false)],
    want: ['c v members'],
  },
  {
    name: 'kept replicas still give way to vary',
    hosts: [host('a', z('z1')), host('b', z('z1')), host('c', z('z2'))],
    placement: { members: { count: 2 }, vary: ['zone'] },
    replicas: [replica(1, 'a', false), replica(2, 'b', false)],
    want: ['a v members', 'c v members'],
  },
]

describe('place', () => {
  for (const c of cases) {
    it(c.name, () => {
      const { state, shard } = stateOf(c.hosts, c.placement, c.replicas)
      if (c.want instanceof RegExp) {
        expect(() => place(state, shard)).toThrow(PlacementError)
        expect(() => place(state, shard)).toThrow(c.want)
      } else {
        expect(place(state, shard).map(short)).toEqual(c.want)
      }
    })
  }
})

describe('validatePlacement', () => {
  const valid: Placement[] = [
    {},
    { members: { count: 3 }, vary: ['zone'] },
    { members: { count: 3, min: 0 } },
    { members: { count: 3, min: 3 } },
    { members: { count: 0 }, groups: { read: { count: 2, tags: { tier: 'edge' } } } },
    { cover: {} },
    { cover: { tags: { tier: 'edge' } } },
  ]
  for (const p of valid) {
    it(`accepts ${JSON.stringify(p)}`, () => expect(() => validatePlacement(p)).not.toThrow())
  }

  const invalid: Array<[unknown, RegExp]> = [
    [null, /^placement must be an object$/],
    [[], /^placement must be an object$/],
    [{ replicas: 3 }, /^unknown placement field replicas$/],
    [{ members: 3 }, /^members must be an object$/],
    [{ members: {} }, /^members\.count must be an integer from 0 to 1000$/],
    [{ members: { count: 1.5 } }, /^members\.count must be an integer from 0 to 1000$/],
    [{ members: { count: 1001 } }, /^members\.count must be an integer from 0 to 1000$/],
    [{ members: { count: 3, min: 4 } }, /^members\.min must be an integer from 0 to count$/],
    [{ members: { count: 3, min: 0.5 } }, /^members\.min must be an integer from 0 to count$/],
    [{ members: { count: 1, tags: [] } }, /^members\.tags must be an object$/],
    [{ members: { count: 1, tags: { zone: 1 } } }, /^members\.tags must map names to strings$/],
    [{ groups: null }, /^groups must be an object$/],
    [{ groups: { read: { count: -1 } } }, /^groups\.read\.count must be an integer/],
    [{ vary: 'zone' }, /^vary must be a list of tag names$/],
    [{ vary: [''] }, /^vary must be a list of tag names$/],
    [{ cover: 1 }, /^cover must be an object$/],
    [{ cover: { tags: 'x' } }, /^cover\.tags must be an object$/],
  ]
  for (const [p, message] of invalid) {
    it(`refuses ${JSON.stringify(p)}`, () => {
      expect(() => validatePlacement(p)).toThrow(PlacementError)
      expect(() => validatePlacement(p)).toThrow(message)
    })
  }
})
