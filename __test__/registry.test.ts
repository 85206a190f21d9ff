import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'

import { Registry } from '../ts/coordinator/registry/registry'
import { signJoinToken } from '../ts/coordinator/registry/join-tokens'
import { apply, JOIN_KEY, outcome, seed } from './fixtures/registry'

async function snapshotOf(r: Registry): Promise<Buffer> {
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c) => chunks.push(c))
  await r.saveSnapshot(out)
  return Buffer.concat(chunks)
}

describe('registry', () => {
  it('round-trips through a JSON Lines snapshot; recovery replaces, never merges', async () => {
    const a = new Registry()
    seed(a)
    const snap = await snapshotOf(a)
    const lines = snap
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines[0]).toMatchObject({
      kind: 'header',
      hosts: 3,
      shards: 2,
      replicas: 6,
      nextShardId: 2,
      nextReplicaId: 7,
    })
    expect(lines).toHaveLength(1 + 3 + 2 + 6)

    const b = new Registry()
    apply(b, {
      op: 'cluster.init',
      peers: [{ hostId: 'other', replicaId: 9, raftAddress: 'x', apiAddress: 'y' }],
    })
    apply(b, {
      op: 'host.put',
      host: { id: 'other', apiAddress: 'y', raftAddress: 'x', tags: {}, shardTypes: [] },
    })
    const input = new PassThrough()
    input.end(snap)
    await b.recoverFromSnapshot(input)
    for (const k of [
      'hosts',
      'shards',
      'replicas',
      'nextShardId',
      'nextReplicaId',
      'index',
      'access',
    ] as const) {
      expect(b.state[k]).toEqual(a.state[k])
    }
    expect(b.state.hosts.has('other')).toBe(false)
  })

  it('admits a host with a join token once, until it expires, and keeps used ones', async () => {
    const r = new Registry()
    seed(r)
    const token = (id: string, expires: number, tags = {}) =>
      signJoinToken(JOIN_KEY, { id, expires, tags })
    const join = (hostId: string, t: string, now: number, tags?: Record<string, string>) =>
      outcome(apply(r, { op: 'host.join', hostId, token: t, now, tags })[0])
    const t1 = token('t1', 2000)
    const first = join('h4', t1, 1000)
    expect(first).toEqual({ ok: true, id: expect.any(Number) })
    expect(r.state.replicas.get(first.id as number)).toMatchObject({
      shardId: 0,
      hostId: 'h4',
      nonVoting: true,
    })
    // The same host again (a retried join) before it expires: the same replica; not after.
    expect(join('h4', t1, 1500)).toEqual(first)
    const refused = (why: RegExp) => ({
      ok: false,
      error: expect.stringMatching(why),
      code: 'ERR_UNAUTHENTICATED',
    })
    expect(join('h4', t1, 3000)).toEqual(refused(/expired/))
    expect(join('h5', t1, 1000)).toEqual(refused(/another host/))
    expect(join('h5', token('t2', 2000), 2001)).toEqual(refused(/expired/))
    expect(
      join('h5', signJoinToken('cd'.repeat(32), { id: 't3', expires: 9e12, tags: {} }), 1),
    ).toEqual(refused(/not signed/))
    expect(join('h5', token('t4', 9e12, { zone: 'z9' }), 1, { zone: 'z1' })).toEqual(
      refused(/tagged/),
    )
    expect(join('h5', '', 1)).toEqual(refused(/required/))
    // Used tokens survive a snapshot, and are forgotten once expired.
    const b = new Registry()
    const input = new PassThrough()
    input.end(await snapshotOf(r))
    await b.recoverFromSnapshot(input)
    expect(b.state.access).toEqual(r.state.access)
    expect([...b.state.access.used.keys()]).toEqual(['t1'])
    expect(
      outcome(apply(b, { op: 'host.join', hostId: 'h6', token: token('t5', 9e12), now: 2500 })[0])
        .ok,
    ).toBe(true)
    expect([...b.state.access.used.keys()]).toEqual(['t5'])
  })

  it("refuses a join under a known host id, or one that holds the registry's replica", () => {
    const r = new Registry()
    seed(r)
    const token = (id: string) => signJoinToken(JOIN_KEY, { id, expires: 9e12, tags: {} })
    const join = (hostId: string, t: string) =>
      outcome(apply(r, { op: 'host.join', hostId, token: t, now: 1 })[0])
    const before = JSON.stringify([[...r.state.replicas.values()], [...r.state.access.used]])
    // h2 votes in shard 0; a fresh token must not hand its replica to another process.
    for (const hostId of ['h1', 'h2', 'h3'])
      expect(join(hostId, token(`t-${hostId}`))).toMatchObject({
        ok: false,
        code: 'ERR_UNAUTHENTICATED',
        error: expect.stringMatching(/one host for good/),
      })
    expect(JSON.stringify([[...r.state.replicas.values()], [...r.state.access.used]])).toBe(before)
    // A host that joined but has not written its record may retry with its own token only.
    const first = join('h4', token('mine'))
    expect(first).toMatchObject({ ok: true })
    expect(join('h4', token('mine'))).toEqual(first)
    expect(join('h4', token('another'))).toMatchObject({
      ok: false,
      code: 'ERR_UNAUTHENTICATED',
      error: expect.stringMatching(/replica of the registry/),
    })
    apply(r, {
      op: 'host.put',
      host: { id: 'h4', apiAddress: 'a4', raftAddress: 'r4', tags: {}, shardTypes: [] },
    })
    expect(join('h4', token('mine'))).toMatchObject({ ok: false, code: 'ERR_UNAUTHENTICATED' })
  })

  it('takes a retried join only from the Raft address and certificate of the first', async () => {
    const r = new Registry()
    seed(r)
    const mine = signJoinToken(JOIN_KEY, { id: 'mine', expires: 9e12, tags: {} })
    const join = (raftAddress: string, certificate?: string) =>
      outcome(
        apply(r, {
          op: 'host.join',
          hostId: 'h4',
          token: mine,
          now: 1,
          raftAddress,
          ...(certificate === undefined ? {} : { certificate }),
        })[0],
      )
    const first = join('r4', 'AA:01')
    expect(first).toMatchObject({ ok: true })
    const before = JSON.stringify([[...r.state.replicas.values()], [...r.state.access.used]])
    // Whoever holds h4's token (and any certificate of the cluster) is not h4 retrying.
    for (const [address, certificate] of [
      ['evil:1', 'AA:01'],
      ['r4', 'BB:02'],
      ['r4', undefined],
    ])
      expect(join(address as string, certificate), `${address} ${certificate}`).toMatchObject({
        ok: false,
        code: 'ERR_UNAUTHENTICATED',
        error: expect.stringMatching(/another Raft address or certificate/),
      })
    expect(JSON.stringify([[...r.state.replicas.values()], [...r.state.access.used]])).toBe(before)
    expect(join('r4', 'AA:01')).toEqual(first)
    // What the token was first used from survives a snapshot.
    const b = new Registry()
    const input = new PassThrough()
    input.end(await snapshotOf(r))
    await b.recoverFromSnapshot(input)
    expect(b.state.access.used.get('mine')).toEqual({
      hostId: 'h4',
      expires: 9e12,
      raftAddress: 'r4',
      certificate: 'AA:01',
    })
  })

  it('admits nobody with a token signed before the join key was rotated', () => {
    const r = new Registry()
    seed(r)
    const old = signJoinToken(JOIN_KEY, { id: 'old', expires: 9e12, tags: {} })
    const key = 'cd'.repeat(32)
    expect(outcome(apply(r, { op: 'access.rotate', joinKey: key })[0])).toEqual({ ok: true })
    const join = (hostId: string, t: string) =>
      outcome(apply(r, { op: 'host.join', hostId, token: t, now: 1 })[0])
    expect(join('h4', old)).toMatchObject({ ok: false, error: expect.stringMatching(/not signed/) })
    const fresh = signJoinToken(key, { id: 'new', expires: 9e12, tags: {} })
    expect(join('h4', fresh)).toMatchObject({ ok: true })
  })

  it('applies the commands of a registry made before proposers were named as written', async () => {
    const r = new Registry()
    seed(r)
    expect(r.state.access.named).toBe(true)
    // A snapshot of a registry made before the rule: its header does not have it.
    const old = (await snapshotOf(r)).toString().replace(',"named":true', '')
    const b = new Registry()
    const input = new PassThrough()
    input.end(old)
    await b.recoverFromSnapshot(input)
    expect(b.state.access.named).toBeUndefined()
    const put = (apiAddress: string) => ({
      op: 'host.put',
      host: { id: 'h2', apiAddress, raftAddress: 'r2', tags: {}, shardTypes: ['kv'] },
      by: 'h1',
    })
    // As such a log was written: no proposer checks, whatever `by` says (or lacks).
    expect(outcome(apply(b, put('a2-old'))[0])).toEqual({ ok: true })
    expect(outcome(apply(b, { op: 'access.name' })[0])).toEqual({ ok: true })
    expect(outcome(apply(b, put('a2-new'))[0])).toMatchObject({ code: 'ERR_UNAUTHENTICATED' })
    expect(b.state.hosts.get('h2')?.apiAddress).toBe('a2-old')
    expect(b.state.access.named).toBe(true)
  })

  it('replays the joins of a registry made before proposers were named as written', async () => {
    const r = new Registry()
    seed(r)
    const old = (await snapshotOf(r)).toString().replace(',"named":true', '')
    const b = new Registry()
    const input = new PassThrough()
    input.end(old)
    await b.recoverFromSnapshot(input)
    const token = (id: string) => signJoinToken(JOIN_KEY, { id, expires: 2000, tags: {} })
    const join = (hostId: string, t: string, now: number) =>
      outcome(apply(b, { op: 'host.join', hostId, token: t, now })[0])
    // The rules such a log was written under: a used token admits its host again after it
    // expired, and a join under a known id answers that host's replica of shard 0.
    const first = join('h4', token('t1'), 1000)
    expect(first).toMatchObject({ ok: true })
    expect(join('h4', token('t1'), 3000)).toEqual(first)
    expect(join('h2', token('t2'), 1000)).toEqual({ ok: true, id: 2 })
    expect([...b.state.access.used.keys()].sort()).toEqual(['t1', 't2'])
    // And a host that rejoined at h3's address retired h3, active as it was.
    const h5 = { id: 'h5', apiAddress: 'a3', raftAddress: 'r5', tags: {}, shardTypes: [] }
    expect(outcome(apply(b, { op: 'host.put', host: h5, rejoined: true })[0])).toEqual({ ok: true })
    expect(b.state.hosts.get('h3')?.status).toBe('gone')
  })

  it('rejects invalid commands with a result and changes nothing', () => {
    const r = new Registry()
    seed(r)
    const before = r.state
    const results = apply(
      r,
      'not json',
      { op: 'nope' },
      { op: 'shard.create', name: 'x', type: '' },
      { op: 'shard.create', name: 'x', type: 'kv', tags: { '': 'empty name' } },
      { op: 'shard.create', name: 'users', type: 'other' },
      { op: 'replicas.create', shardId: 1, items: [{ hostId: 'h1', nonVoting: true }] },
      { op: 'replica.update', id: 999, status: 'active' },
      { op: 'host.put', host: { id: 'h4' } },
    )
    expect(results.map((x) => x.value)).toEqual([0, 0, 0, 0, 0, 0, 0, 0])
    for (const x of results) expect(outcome(x).error).toBeTruthy()
    expect(r.state.hosts).toEqual(before.hosts)
    expect(r.state.shards).toEqual(before.shards)
    expect(r.state.replicas).toEqual(before.replicas)
    expect(r.state.nextReplicaId).toBe(before.nextReplicaId)
  })

  it('creates shards idempotently by name', () => {
    const r = new Registry()
    seed(r)
    const [again] = apply(r, { op: 'shard.create', name: 'users', type: 'kv' })
    expect(outcome(again)).toEqual({ ok: true, id: 1 })
    expect(r.state.shards.size).toBe(2)
  })

  it('gives readers a consistent snapshot while writes go on', () => {
    const r = new Registry()
    seed(r)
    const view = r.state
    apply(r, { op: 'shard.create', name: 'users', type: 'kv' })
    apply(
      r,
      { op: 'shard.create', name: 'orders', type: 'kv' },
      {
        op: 'host.put',
        host: { id: 'h4', apiAddress: 'a4', raftAddress: 'r4', tags: {}, shardTypes: [] },
      },
    )
    expect(view.shards.size).toBe(2)
    expect(view.hosts.size).toBe(3)
    expect(r.state.shards.size).toBe(3)
    expect(r.state.hosts.size).toBe(4)
  })

  it('keeps a shard being deleted on its way out', () => {
    const r = new Registry()
    seed(r)
    apply(r, {
      op: 'host.put',
      host: { id: 'h4', apiAddress: 'a4', raftAddress: 'r4', tags: {}, shardTypes: ['kv'] },
    })
    apply(r, { op: 'shard.delete', id: 1 })
    const [back, grow, undelete] = apply(
      r,
      { op: 'replica.update', id: 4, status: 'active' },
      {
        op: 'replicas.create',
        shardId: 1,
        items: [{ hostId: 'h4', nonVoting: true, initial: false }],
      },
      { op: 'shard.status', id: 1, status: 'active' },
    )
    expect([back.value, grow.value, undelete.value]).toEqual([0, 0, 0])
    expect(r.state.shards.get(1)?.status).toBe('deleting')
    expect(r.state.replicasOf(1).every((x) => x.status === 'deleting')).toBe(true)
  })

  it('touches the hosts of a shard when the shard changes', () => {
    const r = new Registry()
    seed(r)
    const updated = (id: string) => {
      const h = r.state.hosts.get(id)
      if (!h) throw new Error(`host ${id} is gone`)
      return h.updated
    }
    const before = updated('h2')
    apply(r, { op: 'shard.update', id: 1, tags: { owner: 'team' } })
    expect(updated('h2')).toBeGreaterThan(before)
    expect(r.state.shards.get(1)?.updated).toBe(r.state.index)
  })
})
