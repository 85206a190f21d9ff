import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

import type { ApplyResult, RegistryState, ZongziError } from '../ts/index'
import { Registry } from '../ts/coordinator/registry/registry'
import { signJoinToken } from '../ts/coordinator/registry/join-tokens'
import { apply, JOIN_KEY, outcome, seed } from './fixtures/registry'

// Generated registry commands, well-formed, half-formed and garbage: the registry answers each with
// a result, and a command it refuses changes nothing; it throws only for a format version it does
// not read (ERR_UNSUPPORTED_VERSION, which stops the replica), changing nothing; the indexes always
// agree with the tables. FUZZ_RUNS sets more runs than the 10,000 of `npm test`.

const RUNS = Number(process.env.FUZZ_RUNS ?? 10_000)

const OPS = [
  'cluster.init',
  'host.put',
  'host.status',
  'shard.create',
  'shards.create',
  'shard.update',
  'shard.delete',
  'shard.status',
  'shard.leader',
  'replicas.create',
  'replica.create',
  'replica.update',
  'replica.delete',
  'host.join',
  'cluster.version',
  'nope',
]
const FIELDS = [
  'id',
  'name',
  'type',
  'tags',
  'placement',
  'host',
  'status',
  'shardId',
  'hostId',
  'nonVoting',
  'items',
  'leader',
  'term',
  'peers',
  'token',
  'now',
  'joinKey',
  'version',
  'v',
]

/** Join tokens of the seeded cluster (one expired at 1,000, one for zone z1) and a stranger's. */
const TOKENS = [
  signJoinToken(JOIN_KEY, { id: 'a', expires: 1e13, tags: {} }),
  signJoinToken(JOIN_KEY, { id: 'b', expires: 1000, tags: {} }),
  signJoinToken(JOIN_KEY, { id: 'c', expires: 1e13, tags: { zone: 'z1' } }),
  signJoinToken('cd'.repeat(32), { id: 'd', expires: 1e13, tags: {} }),
]

/** value is what a field may hold: the right kinds of things, and anything at all. */
const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -2, max: 8 }),
  fc.constantFrom('h1', 'h2', 'h4', 'kv', 'users', 'active', 'deleting', ''),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(...TOKENS, 5000, 1e12, 'ab'.repeat(32)),
  fc.dictionary(fc.constantFrom('zone', 'count', 'members', ''), fc.anything(), { maxKeys: 2 }),
  fc.array(fc.record({ hostId: fc.constantFrom('h1', 'h3', 'hx'), nonVoting: fc.boolean() })),
  fc.anything(),
)

/** command is one command's bytes. */
const command: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(...OPS),
      fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 4 }),
    )
    .map(([op, rest]) => JSON.stringify({ ...rest, op })),
  // Joins with the right fields, so that some are admitted and some refused.
  fc
    .record({
      hostId: fc.constantFrom('h1', 'h9', 'h10', ''),
      token: fc.oneof(fc.constantFrom(...TOKENS), value),
      now: fc.constantFrom(0, 999, 5000, 1e12, -1),
      tags: fc.constantFrom(undefined, { zone: 'z1' }, { zone: 'z2' }),
    })
    .map((c) => JSON.stringify({ op: 'host.join', ...c })),
  fc.anything().map((x) => JSON.stringify(x) ?? 'undefined'),
  fc.string({ maxLength: 40 }),
)

/** view is what a refused command must leave as it was. */
const view = (s: RegistryState) => ({
  hosts: [...s.hosts],
  shards: [...s.shards],
  replicas: [...s.replicas],
  nextShardId: s.nextShardId,
  nextReplicaId: s.nextReplicaId,
  access: s.access,
})

/** indexed checks the state's indexes against its tables. */
function indexed(s: RegistryState): void {
  const all = [...s.replicas.values()]
  for (const id of new Set([...s.shards.keys(), ...all.map((r) => r.shardId)]))
    expect(s.replicasOf(id)).toEqual(all.filter((r) => r.shardId === id))
  for (const id of new Set([...s.hosts.keys(), ...all.map((r) => r.hostId)])) {
    expect(s.replicasOn(id)).toEqual(all.filter((r) => r.hostId === id))
    expect(s.countOn(id)).toBe(s.replicasOn(id).length)
  }
  for (const sh of s.shards.values()) if (sh.name !== '') expect(s.shardByName(sh.name)).toBe(sh)
}

describe('the registry under generated commands', () => {
  it('answers every command; one it refuses changes nothing', () => {
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 4 }), (cmds) => {
        const r = new Registry()
        seed(r)
        for (const c of cmds) {
          const before = structuredClone(view(r.state))
          let res: ApplyResult
          try {
            ;[res] = apply(r, c)
          } catch (e) {
            expect((e as ZongziError).code).toBe('ERR_UNSUPPORTED_VERSION')
            expect(view(r.state)).toEqual(before)
            continue
          }
          const out = outcome(res)
          expect(typeof out.ok).toBe('boolean')
          expect(res.value).toBe(out.ok ? 1 : 0)
          if (!out.ok) expect(view(r.state)).toEqual(before)
          indexed(r.state)
        }
      }),
      { numRuns: RUNS },
    )
  })
})
