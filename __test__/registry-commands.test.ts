import { describe, expect, it } from 'vitest'

import type { RegistryState } from '../ts/index'
import { Registry } from '../ts/coordinator/registry/registry'
import { apply, outcome, seed } from './fixtures/registry'

// Each registry command, valid and invalid, applied to a seeded registry (see seed): a valid
// one answers ok and changes the state as it says; an invalid one answers an error and
// changes nothing.

const h4 = { id: 'h4', apiAddress: 'a4', raftAddress: 'r4', tags: {}, shardTypes: ['kv'] }

interface Valid {
  name: string
  /** Commands applied first, each of which must succeed. */
  given?: unknown[]
  cmd: unknown
  /** The answer, in part. */
  answer?: Record<string, unknown>
  check: (s: RegistryState, before: RegistryState) => void
}

const valid: Valid[] = [
  {
    name: 'cluster.init a second time changes nothing: the first init wins',
    cmd: { op: 'cluster.init', peers: [{ hostId: 'x', replicaId: 9 }] },
    check: (s, b) => {
      expect(s.replicas).toEqual(b.replicas)
      expect(s.shards).toEqual(b.shards)
    },
  },
  {
    name: 'host.put adds an active host',
    cmd: { op: 'host.put', host: { ...h4, tags: { zone: 'z4' } } },
    check: (s) =>
      expect(s.hosts.get('h4')).toMatchObject({
        status: 'active',
        tags: { zone: 'z4' },
        apiAddress: 'a4',
        raftAddress: 'r4',
        shardTypes: ['kv'],
        created: s.index,
        updated: s.index,
      }),
  },
  {
    name: 'host.put replaces a known host and keeps its creation',
    cmd: { op: 'host.put', host: { ...h4, id: 'h1', apiAddress: 'a1b' } },
    check: (s, b) =>
      expect(s.hosts.get('h1')).toMatchObject({
        apiAddress: 'a1b',
        tags: {},
        created: b.hosts.get('h1')?.created,
        updated: s.index,
      }),
  },
  {
    name: 'host.status sets a host missing',
    cmd: { op: 'host.status', id: 'h2', status: 'missing' },
    check: (s) => expect(s.hosts.get('h2')?.status).toBe('missing'),
  },
  {
    name: 'shard.create makes a new shard with the next id',
    cmd: { op: 'shard.create', name: 'orders', type: 'kv', tags: { team: 't' } },
    answer: { ok: true, id: 2 },
    check: (s) => {
      expect(s.shards.get(2)).toMatchObject({ name: 'orders', status: 'new', tags: { team: 't' } })
      expect(s.nextShardId).toBe(3)
    },
  },
  {
    name: 'shard.create of a known name and type answers the existing shard',
    cmd: { op: 'shard.create', name: 'users', type: 'kv' },
    answer: { ok: true, id: 1 },
    check: (s, b) => expect(s.shards).toEqual(b.shards),
  },
  {
    name: 'shard.create without a name always makes a new shard',
    given: [{ op: 'shard.create', name: '', type: 'kv' }],
    cmd: { op: 'shard.create', name: '', type: 'kv' },
    answer: { ok: true, id: 3 },
    check: (s) => expect(s.shards.size).toBe(4),
  },
  {
    name: 'shard.update replaces the tags and keeps the placement',
    cmd: { op: 'shard.update', id: 1, tags: { owner: 'team' } },
    answer: { ok: true, id: 1 },
    check: (s) =>
      expect(s.shards.get(1)).toMatchObject({
        tags: { owner: 'team' },
        placement: { members: { count: 3 } },
      }),
  },
  {
    name: 'shard.delete of a shard with replicas marks it and its replicas deleting',
    cmd: { op: 'shard.delete', id: 1 },
    check: (s) => {
      expect(s.shards.get(1)?.status).toBe('deleting')
      expect(s.replicasOf(1).map((r) => r.status)).toEqual(['deleting', 'deleting', 'deleting'])
    },
  },
  {
    name: 'shard.delete of a shard without replicas removes it',
    given: [{ op: 'shard.create', name: 'empty', type: 'kv' }],
    cmd: { op: 'shard.delete', id: 2 },
    check: (s) => expect(s.shards.has(2)).toBe(false),
  },
  {
    name: 'shard.status sets a shard active',
    cmd: { op: 'shard.status', id: 1, status: 'active' },
    check: (s) => expect(s.shards.get(1)?.status).toBe('active'),
  },
  {
    name: 'shard.leader records a leader of a newer term',
    cmd: { op: 'shard.leader', id: 1, leader: 5, term: 2 },
    check: (s) => expect(s.shards.get(1)).toMatchObject({ leader: 5, term: 2 }),
  },
  {
    name: 'shard.leader of an older term is ignored',
    given: [{ op: 'shard.leader', id: 1, leader: 5, term: 2 }],
    cmd: { op: 'shard.leader', id: 1, leader: 4, term: 1 },
    check: (s) => expect(s.shards.get(1)).toMatchObject({ leader: 5, term: 2 }),
  },
  {
    name: 'replicas.create adds new replicas with the next ids',
    given: [{ op: 'host.put', host: h4 }],
    cmd: {
      op: 'replicas.create',
      shardId: 1,
      items: [{ hostId: 'h4', nonVoting: true, initial: false }],
    },
    answer: { ok: true, ids: [7] },
    check: (s) => {
      expect(s.replicas.get(7)).toMatchObject({ shardId: 1, hostId: 'h4', status: 'new' })
      expect(s.replicas.get(7)?.nonVoting).toBe(true)
      expect(s.nextReplicaId).toBe(8)
    },
  },
  {
    name: 'replica.create answers the replica a host already has',
    cmd: { op: 'replica.create', shardId: 1, hostId: 'h1', nonVoting: true },
    answer: { ok: true, id: 4 },
    check: (s, b) => expect(s.replicas).toEqual(b.replicas),
  },
  {
    name: 'replica.create adds a replica to a host without one',
    given: [{ op: 'host.put', host: h4 }],
    cmd: { op: 'replica.create', shardId: 1, hostId: 'h4', nonVoting: true },
    answer: { ok: true, id: 7 },
    check: (s) => expect(s.replicas.get(7)).toMatchObject({ hostId: 'h4', nonVoting: true }),
  },
  {
    name: 'replica.update to active also activates a new shard',
    cmd: { op: 'replica.update', id: 4, status: 'active' },
    check: (s) => {
      expect(s.replicas.get(4)?.status).toBe('active')
      expect(s.shards.get(1)?.status).toBe('active')
    },
  },
  {
    name: 'replica.update changes only what it names',
    cmd: { op: 'replica.update', id: 4, nonVoting: true },
    check: (s) => expect(s.replicas.get(4)).toMatchObject({ nonVoting: true, status: 'new' }),
  },
  {
    name: 'replica.delete removes a replica',
    cmd: { op: 'replica.delete', id: 4 },
    check: (s) => {
      expect(s.replicas.has(4)).toBe(false)
      expect(s.shards.has(1)).toBe(true)
    },
  },
  {
    name: 'replica.delete of the last replica of a deleting shard removes the shard',
    given: [
      { op: 'shard.create', name: 'one', type: 'kv' },
      { op: 'replica.create', shardId: 2, hostId: 'h1', nonVoting: false },
      { op: 'shard.delete', id: 2 },
    ],
    cmd: { op: 'replica.delete', id: 7 },
    check: (s) => expect(s.shards.has(2)).toBe(false),
  },
]

interface Refused {
  name: string
  given?: unknown[]
  /** Apply to an empty registry instead of the seeded one. */
  empty?: boolean
  cmd: unknown
  error: RegExp
}

const refused: Refused[] = [
  { name: 'text that is not JSON', cmd: 'not json', error: /^command is not JSON$/ },
  { name: 'a command without an op', cmd: {}, error: /^command must be an object with an op$/ },
  { name: 'an unknown op', cmd: { op: 'nope' }, error: /^unknown op "nope"$/ },
  { name: 'cluster.init without peers', cmd: { op: 'cluster.init' }, error: /needs peers/ },
  {
    name: 'cluster.init with a bad peer',
    empty: true,
    cmd: { op: 'cluster.init', peers: [{ hostId: 'h1', replicaId: 0 }] },
    error: /^bad peer$/,
  },
  { name: 'host.put without an id', cmd: { op: 'host.put', host: {} }, error: /host.id/ },
  {
    name: 'host.put without addresses',
    cmd: { op: 'host.put', host: { id: 'h4', shardTypes: [] } },
    error: /^host addresses are required$/,
  },
  {
    name: 'host.put with a tag without a name',
    cmd: { op: 'host.put', host: { ...h4, tags: { '': 'x' } } },
    error: /^host tags must map non-empty names to strings$/,
  },
  {
    name: 'host.put with shard types that are not strings',
    cmd: { op: 'host.put', host: { ...h4, shardTypes: [1] } },
    error: /^shardTypes must be strings$/,
  },
  {
    name: 'host.status of an unknown host',
    cmd: { op: 'host.status', id: 'h9', status: 'gone' },
    error: /^unknown host$/,
  },
  {
    name: 'host.status with a bad status',
    cmd: { op: 'host.status', id: 'h1', status: 'asleep' },
    error: /^bad host status$/,
  },
  {
    name: 'shard.create without a type',
    cmd: { op: 'shard.create', name: 'x', type: '' },
    error: /^shard type is required$/,
  },
  {
    name: 'shard.create with a name that is not a string',
    cmd: { op: 'shard.create', name: 1, type: 'kv' },
    error: /^shard name must be a string$/,
  },
  {
    name: 'shard.create with a tag without a name',
    cmd: { op: 'shard.create', name: 'x', type: 'kv', tags: { '': 'empty name' } },
    error: /^shard tags must map non-empty names to strings$/,
  },
  {
    name: 'shard.create with a placement that is not an object',
    cmd: { op: 'shard.create', name: 'x', type: 'kv', placement: 3 },
    error: /^placement must be an object$/,
  },
  {
    name: 'shard.create of a known name with another type',
    cmd: { op: 'shard.create', name: 'users', type: 'other' },
    error: /^shard "users" exists with type kv$/,
  },
  {
    name: 'shard.update of an unknown shard',
    cmd: { op: 'shard.update', id: 9, tags: {} },
    error: /^unknown shard$/,
  },
  {
    name: 'shard.update of the registry shard',
    cmd: { op: 'shard.update', id: 0, tags: {} },
    error: /^unknown shard$/,
  },
  {
    name: 'shard.delete of the registry shard',
    cmd: { op: 'shard.delete', id: 0 },
    error: /^unknown shard$/,
  },
  {
    name: 'shard.status with a bad status',
    cmd: { op: 'shard.status', id: 1, status: 'paused' },
    error: /^bad shard status$/,
  },
  {
    name: 'shard.status that brings back a shard being deleted',
    given: [{ op: 'shard.delete', id: 1 }],
    cmd: { op: 'shard.status', id: 1, status: 'active' },
    error: /^shard 1 is being deleted$/,
  },
  {
    name: 'shard.leader without a term',
    cmd: { op: 'shard.leader', id: 1, leader: 4 },
    error: /^bad shard.leader$/,
  },
  {
    name: 'replicas.create without items',
    cmd: { op: 'replicas.create', shardId: 1, items: [] },
    error: /^items are required$/,
  },
  {
    name: 'replicas.create of an unknown shard',
    cmd: { op: 'replicas.create', shardId: 9, items: [{ hostId: 'h1' }] },
    error: /^shard 9 does not exist$/,
  },
  {
    name: 'replicas.create on an unknown host',
    cmd: { op: 'replicas.create', shardId: 1, items: [{ hostId: 'h9' }] },
    error: /^host h9 does not exist$/,
  },
  {
    name: 'replicas.create of which one item fails, after another succeeded',
    given: [{ op: 'host.put', host: h4 }],
    cmd: { op: 'replicas.create', shardId: 1, items: [{ hostId: 'h4' }, { hostId: 'h1' }] },
    error: /^host h1 already has a replica of shard 1$/,
  },
  {
    name: 'replicas.create for a shard being deleted',
    given: [
      { op: 'host.put', host: h4 },
      { op: 'shard.delete', id: 1 },
    ],
    cmd: { op: 'replicas.create', shardId: 1, items: [{ hostId: 'h4' }] },
    error: /^shard 1 is being deleted$/,
  },
  {
    name: 'replica.create without a host',
    cmd: { op: 'replica.create', shardId: 1 },
    error: /^shardId and hostId are required$/,
  },
  {
    name: 'replica.update of an unknown replica',
    cmd: { op: 'replica.update', id: 999, status: 'active' },
    error: /^unknown replica$/,
  },
  {
    name: 'replica.update with a bad status',
    cmd: { op: 'replica.update', id: 4, status: 'gone' },
    error: /^bad replica status$/,
  },
  {
    name: 'replica.update with nonVoting that is not a boolean',
    cmd: { op: 'replica.update', id: 4, nonVoting: 'yes' },
    error: /^nonVoting must be a boolean$/,
  },
  {
    name: 'replica.update that brings back a replica being deleted',
    given: [{ op: 'shard.delete', id: 1 }],
    cmd: { op: 'replica.update', id: 4, status: 'active' },
    error: /^replica 4 is being deleted$/,
  },
  {
    name: 'replica.delete of an unknown replica',
    cmd: { op: 'replica.delete', id: 999 },
    error: /^unknown replica$/,
  },
]

/** given makes a registry: seeded unless asked for empty, then with `cmds` applied. */
function given(cmds: unknown[] = [], empty = false): Registry {
  const r = new Registry()
  if (!empty) seed(r)
  for (const x of apply(r, ...cmds)) expect(outcome(x)).toMatchObject({ ok: true })
  return r
}

describe('registry commands', () => {
  for (const c of valid) {
    it(c.name, () => {
      const r = given(c.given)
      const before = r.state
      const [x] = apply(r, c.cmd)
      expect(x.value).toBe(1)
      expect(outcome(x)).toMatchObject(c.answer ?? { ok: true })
      expect(r.state.index).toBeGreaterThan(before.index)
      c.check(r.state, before)
    })
  }

  for (const c of refused) {
    it(`refuses ${c.name} and changes nothing`, () => {
      const r = given(c.given, c.empty)
      const before = r.state
      const [x] = apply(r, c.cmd)
      expect(x.value).toBe(0)
      expect(outcome(x)).toEqual({ ok: false, error: expect.stringMatching(c.error) })
      for (const k of ['hosts', 'shards', 'replicas', 'nextShardId', 'nextReplicaId'] as const)
        expect(r.state[k]).toEqual(before[k])
      expect(r.state.index).toBeGreaterThan(before.index)
    })
  }
})
