import { describe, expect, it } from 'vitest'

import type { RegistryState } from '../ts/index'
import { Registry } from '../ts/coordinator/registry/registry'
import { signJoinToken } from '../ts/coordinator/registry/join-tokens'
import { apply, JOIN_KEY, outcome, seed } from './fixtures/registry'

// Who may propose what: every command names its proposer (`by`); a host changes only its own
// host record, and the registry leader (h1 in the seed) makes the changes to other hosts'
// records that are its duty. A refused command answers ERR_UNAUTHENTICATED and changes nothing.

const h4 = { id: 'h4', apiAddress: 'a4', raftAddress: 'r4', tags: {}, shardTypes: ['kv'] }

/** seeded is a seeded registry with h4 on record too. */
function seeded(): Registry {
  const r = new Registry()
  seed(r)
  apply(r, { op: 'host.put', host: h4 })
  return r
}

/** rows is the registry's tables and join tokens, to compare before and after. */
const rows = (s: RegistryState) =>
  JSON.stringify([
    [...s.hosts.values()],
    [...s.shards.values()],
    [...s.replicas.values()],
    s.access.joinKey,
    [...s.access.used],
  ])

/** refuses applies `cmd`, expects ERR_UNAUTHENTICATED matching `why`, and no change. */
function refuses(r: Registry, cmd: Record<string, unknown>, why: RegExp): void {
  const before = rows(r.state)
  const out = outcome(apply(r, cmd)[0])
  expect(out, JSON.stringify(cmd)).toEqual({
    ok: false,
    error: expect.stringMatching(why),
    code: 'ERR_UNAUTHENTICATED',
  })
  expect(rows(r.state)).toBe(before)
}

const accepts = (r: Registry, cmd: Record<string, unknown>) =>
  expect(outcome(apply(r, cmd)[0]), JSON.stringify(cmd)).toMatchObject({ ok: true })

describe('registry proposers', () => {
  it('refuses a command about hosts that names no proposer', () => {
    const r = seeded()
    for (const cmd of [
      { op: 'host.put', host: h4 },
      { op: 'host.status', id: 'h4', status: 'gone' },
      { op: 'shard.leader', id: 1, leader: 4, term: 9 },
    ])
      refuses(r, { ...cmd, by: undefined }, /names its proposer/)
  })

  it("lets a host put only its own record, never another host's", () => {
    const r = seeded()
    const stolen = { ...h4, certificate: 'AA:BB', raftAddress: 'evil', tags: { zone: 'z1' } }
    for (const by of ['h1', 'h2', 'nobody'])
      refuses(r, { op: 'host.put', host: stolen, by }, /another host/)
    accepts(r, { op: 'host.put', host: { ...h4, tags: { zone: 'z9' } }, by: 'h4' })
    expect(r.state.hosts.get('h4')?.tags).toEqual({ zone: 'z9' })
  })

  it("lets only the host itself or the registry leader set a host's status", () => {
    const r = seeded()
    refuses(r, { op: 'host.status', id: 'h4', status: 'missing', now: 1, by: 'h2' }, /another/)
    refuses(r, { op: 'host.status', id: 'h2', status: 'gone', now: 1, by: 'h4' }, /another/)
    accepts(r, { op: 'host.status', id: 'h4', status: 'draining', now: 1, by: 'h4' })
    accepts(r, { op: 'host.status', id: 'h2', status: 'missing', now: 1, by: 'h1' })
    // Once h2's replica leads shard 0 on record, h1 is not the registry leader any more.
    accepts(r, { op: 'shard.leader', id: 0, leader: 2, term: 2, by: 'h2' })
    refuses(r, { op: 'host.status', id: 'h3', status: 'missing', now: 1, by: 'h1' }, /another/)
  })

  it('lets a member mark departed only a host on record missing or draining, as seen', () => {
    const r = seeded()
    const depart = (id: string, status: string, from?: string) => ({
      op: 'host.status',
      id,
      status,
      now: 0,
      by: 'h3',
      ...(from ? { from } : {}),
    })
    refuses(r, depart('h4', 'gone', 'active'), /another/)
    apply(r, { op: 'host.status', id: 'h4', status: 'missing', now: 5 })
    refuses(r, depart('h4', 'gone'), /another/)
    refuses(r, depart('h4', 'active', 'missing'), /another/)
    accepts(r, depart('h4', 'gone', 'missing'))
    expect(r.state.hosts.get('h4')?.status).toBe('gone')
  })

  it('marks a host departed only while it is as the proposer saw it (not back up)', () => {
    const r = seeded()
    apply(r, { op: 'host.status', id: 'h4', status: 'missing', now: 5 })
    apply(r, { op: 'host.status', id: 'h4', status: 'active', now: 6 }) // it answered again
    const before = rows(r.state)
    const out = outcome(
      apply(r, { op: 'host.status', id: 'h4', status: 'gone', now: 0, from: 'missing' })[0],
    )
    expect(out).toMatchObject({ ok: false, error: expect.stringMatching(/active now/) })
    expect(rows(r.state)).toBe(before)
  })

  it("takes a shard's leader only from the host of the replica it names", () => {
    const r = seeded()
    refuses(r, { op: 'shard.leader', id: 0, leader: 2, term: 9, by: 'h4' }, /its own replica/)
    refuses(r, { op: 'shard.leader', id: 1, leader: 5, term: 9, by: 'h1' }, /its own replica/)
    accepts(r, { op: 'shard.leader', id: 1, leader: 5, term: 9, by: 'h2' })
    expect(r.state.shards.get(1)).toMatchObject({ leader: 5, term: 9 })
  })

  it("takes a shard's leader only for a replica of that shard", () => {
    const r = seeded()
    // Replica 2 is h2's, of shard 0: h2 may not name it the leader of shard 1, at any term.
    for (const term of [9, Number.MAX_SAFE_INTEGER])
      refuses(r, { op: 'shard.leader', id: 1, leader: 2, term, by: 'h2' }, /not a replica/)
    refuses(r, { op: 'shard.leader', id: 0, leader: 5, term: 9, by: 'h2' }, /not a replica/)
    accepts(r, { op: 'shard.leader', id: 0, leader: 2, term: 9, by: 'h2' })
    expect(r.state.shards.get(0)).toMatchObject({ leader: 2, term: 9 })
  })

  it('lets a rejoined host mark gone only a missing earlier identity at its address', () => {
    const r = seeded()
    const h5 = { id: 'h5', apiAddress: 'a2', raftAddress: 'r5', tags: {}, shardTypes: ['kv'] }
    // h2 is active at a2: a host that claims to have rejoined there does not retire it.
    accepts(r, { op: 'host.put', host: h5, rejoined: true, by: 'h5' })
    expect(r.state.hosts.get('h2')?.status).toBe('active')
    // Once the registry leader has it missing (it no longer answers as h2 at a2), it goes.
    accepts(r, { op: 'host.status', id: 'h2', status: 'missing', now: 5, by: 'h1' })
    accepts(r, { op: 'host.put', host: h5, rejoined: true, by: 'h5' })
    expect(r.state.hosts.get('h2')).toMatchObject({ status: 'gone', since: 0 })
  })

  it('forgets used join tokens once expired, by the registry leader only', () => {
    const r = seeded()
    const token = (id: string, expires: number) =>
      signJoinToken(JOIN_KEY, { id, expires, tags: {} })
    accepts(r, { op: 'host.join', hostId: 'h5', token: token('early', 100), now: 50 })
    accepts(r, { op: 'host.join', hostId: 'h6', token: token('late', 900), now: 50 })
    refuses(r, { op: 'tokens.prune', now: 500, by: 'h2' }, /registry leader/)
    accepts(r, { op: 'tokens.prune', now: 500, by: 'h1' })
    expect([...r.state.access.used.keys()]).toEqual(['late'])
  })
})
