import { describe, expect, it } from 'vitest'

import { checkReplacement, isLeaving, RateLimit } from '../ts/coordinator/control/departures'
import type { HostRecord, Placement } from '../ts/coordinator/registry/records'
import { keepsQuorum } from '../ts/coordinator/control/shard-controller'
import { Leader } from './fixtures/leader'
import { addHost, apply, fresh, outcome, run } from './fixtures/registry'

// Replacement, drain and placement both ways, decided on the registry leader: the registry's
// rules for host states, which hosts are leaving, and the order of membership changes a shard
// goes through — against a registry fed commands directly (shard 0's voters, repair and the
// leader balance are in registry-members.test.ts).

describe('the registry on host states', () => {
  it('records when a status changed, and keeps a gone host gone', () => {
    const r = fresh()
    run(r, { op: 'host.status', id: 'h2', status: 'missing', now: 500 })
    expect(r.state.hosts.get('h2')).toMatchObject({ status: 'missing', since: 500 })
    run(r, { op: 'host.status', id: 'h2', status: 'missing' }) // the same status: nothing
    expect(r.state.hosts.get('h2')?.since).toBe(500)
    run(r, { op: 'host.status', id: 'h2', status: 'gone', now: 600 })
    const back = outcome(apply(r, { op: 'host.status', id: 'h2', status: 'active' })[0])
    expect(back).toMatchObject({ ok: false, error: 'host h2 was removed from the cluster' })
    const put = { id: 'h2', apiAddress: 'a2', raftAddress: 'r2', tags: {}, shardTypes: ['kv'] }
    const again = outcome(apply(r, { op: 'host.put', host: put })[0])
    expect(again.ok).toBe(false)
    expect(String(again.error)).toMatch(/removed from the cluster; to come back, start it with/)
    expect(r.state.hosts.get('h2')?.status).toBe('gone')
  })

  it('marks gone the earlier identity of a peer that rejoined at its address', () => {
    const r = fresh()
    const host = { id: 'h2-new', apiAddress: 'a2', raftAddress: 'r9', tags: {}, shardTypes: [] }
    run(r, { op: 'host.put', host: { ...host, id: 'h2-other' } }) // an address reused: nothing
    expect(r.state.hosts.get('h2')?.status).toBe('active')
    // The registry leader has both missing: neither answers as itself at a2 any more (a
    // rejoined host leaves an active one alone, see registry-proposers.test.ts).
    for (const id of ['h2', 'h2-other'])
      run(r, { op: 'host.status', id, status: 'missing', now: 5 })
    run(r, { op: 'host.put', host, rejoined: true })
    expect(r.state.hosts.get('h2')?.status).toBe('gone')
    expect(r.state.hosts.get('h2-other')?.status).toBe('gone')
    expect(r.state.hosts.get('h2-new')?.status).toBe('active')
  })

  it('keeps a draining host draining when it writes its record again', () => {
    const r = fresh()
    run(r, { op: 'host.status', id: 'h4', status: 'draining', now: 1 })
    addHost(r, 'h4', 'z4')
    expect(r.state.hosts.get('h4')?.status).toBe('draining')
  })

  it('refuses a bad status or time, changing nothing', () => {
    const r = fresh()
    for (const cmd of [
      { op: 'host.status', id: 'h2', status: 'asleep' },
      { op: 'host.status', id: 'h2', status: 'missing', now: -1 },
      { op: 'host.status', id: 'nobody', status: 'gone' },
    ]) {
      expect(outcome(apply(r, cmd)[0]).ok).toBe(false)
    }
    expect(r.state.hosts.get('h2')?.status).toBe('active')
  })
})

describe('which hosts are leaving', () => {
  const host = (status: HostRecord['status'], since?: number) =>
    ({ id: 'h', status, since }) as HostRecord
  it('counts a host draining, gone, missing for replaceAfterMs, or to be replaced', () => {
    expect(isLeaving(host('active'), 5000, 1000)).toBe(false)
    expect(isLeaving(host('missing', 4500), 5000, 1000)).toBe(false)
    expect(isLeaving(host('missing', 4000), 5000, 1000)).toBe(true)
    expect(isLeaving(host('missing', 4000), 5000, 0)).toBe(false)
    expect(isLeaving(host('missing'), 5000, 1000)).toBe(false) // since unknown
    expect(isLeaving(host('missing', 0), 5000, 0)).toBe(true) // to be replaced at once
    expect(isLeaving(host('draining'), 0, 0)).toBe(true)
    expect(isLeaving(host('gone'), 0, 0)).toBe(true)
    expect(isLeaving(undefined, 0, 1000)).toBe(false) // a peer that has not written its record
  })

  it('refuses bad replacement options', () => {
    expect(checkReplacement({})).toEqual({
      replaceAfterMs: 60_000,
      changesPerSecond: 4,
      registryVoters: 3,
      balanceLeaders: true,
      rebalance: true,
      rebalanceThreshold: 0.2,
    })
    for (const o of [
      { replaceAfterMs: -1 },
      { replaceAfterMs: 1.5 },
      { changesPerSecond: 0 },
      { registryVoters: 4 },
      { balanceLeaders: 'yes' as unknown as boolean },
      { rebalance: 1 as unknown as boolean },
      { rebalanceThreshold: 0 },
      { rebalanceThreshold: Number.NaN },
    ])
      expect(() => checkReplacement(o)).toThrow(/must be/)
  })

  it('rate-limits membership changes over time', () => {
    const rate = new RateLimit(2, 0)
    expect([rate.take(0), rate.take(0), rate.take(0)]).toEqual([true, true, false])
    expect(rate.take(400)).toBe(false)
    expect(rate.take(500)).toBe(true) // half a second refills one
  })

  it('still hands out changes at less than one a second', () => {
    const rate = new RateLimit(0.5, 0)
    expect([rate.take(0), rate.take(0)]).toEqual([true, false])
    expect(rate.take(1_000)).toBe(false)
    expect(rate.take(2_000)).toBe(true) // two seconds refill one
  })

  it('keeps a quorum of live voters when one stops voting', () => {
    expect(keepsQuorum(3, 3, true)).toBe(true) // 2 of 2 live
    expect(keepsQuorum(3, 2, true)).toBe(false) // 1 of 2 live
    expect(keepsQuorum(3, 2, false)).toBe(true) // the dead one goes: 2 of 2
    expect(keepsQuorum(1, 1, true)).toBe(false) // never none
  })
})

describe('the shard controller, one change at a time', () => {
  it('replaces a replica of a long-missing host: remove it, add, catch up, promote', async () => {
    const r = fresh()
    const l = new Leader(r)
    expect(await l.round()).toEqual([]) // everything in place
    run(r, { op: 'host.status', id: 'h3', status: 'missing', now: 9_500 })
    expect(await l.round()).toEqual([]) // missing, not for long enough yet
    run(r, { op: 'host.status', id: 'h3', status: 'missing', now: 1_000 })
    // The dead voter goes first (two live voters of two keep the quorum): promoting first
    // would make four voters, and a death of the new one's host would leave no quorum.
    expect(await l.steps(6)).toEqual([
      'delete 6',
      'remove 1/6',
      'create h4 non-voting',
      'update 7 nonVoting=false',
      'promote 1/7',
    ])
    const members = r.state.replicasOf(1).map((x) => [x.hostId, x.nonVoting, x.status])
    expect(members.sort()).toEqual([
      ['h1', false, 'active'],
      ['h2', false, 'active'],
      ['h4', false, 'active'],
    ])
  })

  it('waits while a new replica catches up, and while the change rate is spent', async () => {
    const r = fresh()
    const l = new Leader(r)
    run(r, { op: 'host.status', id: 'h3', status: 'gone', now: 1 })
    l.tokens = 0
    expect(await l.round()).toEqual([])
    l.tokens = 10
    expect(await l.round()).toEqual(['delete 6'])
    expect(await l.round()).toEqual(['create h4 non-voting'])
    expect(await l.round()).toEqual([]) // not caught up yet
    expect(l.calls).toEqual(['delete 6', 'remove 1/6', 'create h4 non-voting'])
  })

  it('moves the replicas of a draining host, and takes its own out through it', async () => {
    const r = fresh()
    const l = new Leader(r)
    run(r, { op: 'host.status', id: 'h2', status: 'draining', now: 1 })
    // The draining host is alive: it is asked to leave (deleting), not removed from here.
    expect(await l.steps(6)).toEqual([
      'create h4 non-voting',
      'update 7 nonVoting=false',
      'promote 1/7',
      'update 5 deleting',
    ])
    expect(r.state.replicasOn('h2').filter((x) => x.shardId === 1)).toEqual([])
  })

  it('grows and shrinks with the placement, keeping a quorum, and demotes', async () => {
    const r = fresh()
    const l = new Leader(r)
    const place = (p: Placement) => run(r, { op: 'shard.update', id: 1, placement: p })
    const settle = async () => {
      for (let i = 0; i < 12; i++) {
        await l.round()
        l.hosts()
      }
      return r.state
        .replicasOf(1)
        .map((x) => `${x.hostId}${x.nonVoting ? '-' : '+'}`)
        .sort()
    }
    place({ members: { count: 5 } })
    expect(await settle()).toEqual(['h1+', 'h2+', 'h3+', 'h4+', 'h5+'])
    place({ members: { count: 3 } })
    expect(await settle()).toEqual(['h1+', 'h2+', 'h3+'])
    place({ members: { count: 2 }, groups: { g: { count: 1, tags: { zone: 'z3' } } } })
    expect(await settle()).toEqual(['h1+', 'h2+', 'h3-'])
    expect(l.calls).toContain('demote 1/6')
  })

  it('removes the stranded replica of a host that left while it joined', async () => {
    const r = fresh()
    const l = new Leader(r)
    run(r, { op: 'replica.create', shardId: 1, hostId: 'h4', nonVoting: true })
    run(r, { op: 'host.status', id: 'h4', status: 'gone', now: 1 })
    expect(await l.round()).toEqual(['delete 7'])
    expect(l.calls).toEqual(['delete 7', 'remove 1/7'])
  })
})
