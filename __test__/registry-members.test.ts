import { afterEach, describe, expect, it, vi } from 'vitest'

import { Registry } from '../ts/coordinator/registry/registry'
import { isLeaving } from '../ts/coordinator/control/departures'
import {
  BALANCE_RECHECK_MS,
  type DrainContext,
  LeaderBalance,
} from '../ts/coordinator/control/drain'
import { silent } from '../ts/coordinator/control/logger'
import { nextTransfer, nextTransfers } from '../ts/coordinator/control/leader-balance'
import { repairOf } from '../ts/coordinator/control/membership-repair'
import { reconcileRegistry } from '../ts/coordinator/control/registry-members'
import { membershipChanges } from '../ts/coordinator/registry/events'
import { addHost, apply, fresh, run, seed } from './fixtures/registry'

// What the registry leader does besides placing shards, against a registry fed commands
// directly: shard 0's voters (replaced, spread over zones, repaired in Raft), the repair of a
// shard's membership, the leader balance and the membership events.

describe("shard 0's voters", () => {
  /** registry0 has peers h1–h3 in zones `zones`, and h4/h5 joined, non-voting. */
  function registry0(zones: string[]): Registry {
    const r = new Registry()
    seed(r)
    zones.forEach((z, i) => addHost(r, `h${i + 1}`, z))
    for (const [id, zone] of [
      ['h4', 'z4'],
      ['h5', 'z5'],
    ]) {
      run(r, { op: 'replica.create', shardId: 0, hostId: id, nonVoting: true })
      addHost(r, id, zone)
    }
    return r
  }

  /**
   * rounds runs `n` rounds of the registry leader (h1, replica 1) against `r`, with shard 0's
   * Raft membership as the records have it (or as `raft` says), and lists its Raft changes.
   */
  async function rounds(
    r: Registry,
    n: number,
    voters = 3,
    raft?: { voters: number[]; nonVoters: number[] },
  ): Promise<string[]> {
    const calls: string[] = []
    const zero = r.state.replicasOf(0)
    const m = raft ?? {
      voters: zero.filter((x) => !x.nonVoting).map((x) => x.id),
      nonVoters: zero.filter((x) => x.nonVoting).map((x) => x.id),
    }
    const without = (id: number) => {
      m.voters = m.voters.filter((x) => x !== id)
      m.nonVoters = m.nonVoters.filter((x) => x !== id)
    }
    const change = (what: string, id: number, voting?: boolean) => {
      calls.push(`${what} ${id}`)
      without(id)
      if (voting === true) m.voters.push(id)
      if (voting === false) m.nonVoters.push(id)
      return Promise.resolve({ ...m })
    }
    const host = {
      status: async () => ({ replicaId: 1, leaderId: 1, membership: m }) as never,
      promote: async (_s: number, id: number) => change('promote', id, true),
      addNonVoting: async (_s: number, id: number) => change('demote', id, false),
      removeReplica: async (_s: number, id: number) => change('remove', id),
    }
    for (let i = 0; i < n; i++) {
      await reconcileRegistry(
        r.state,
        async (cmd) => {
          run(r, cmd)
          return { ok: true }
        },
        {
          leaving: (h) => isLeaving(h, 10_000, 1_000),
          take: () => true,
          host,
          hostId: 'h1',
          voters,
          timeoutMs: 1000,
        },
      )
    }
    return calls
  }

  it('finishes in Raft what an earlier leader recorded, before anything else', async () => {
    const r = registry0(['z1', 'z2', 'z3'])
    // Recorded: 7 promoted, 2 demoted, 3 deleted; Raft has none of it.
    run(r, { op: 'replica.update', id: 7, nonVoting: false })
    run(r, { op: 'replica.update', id: 2, nonVoting: true })
    run(r, { op: 'replica.delete', id: 3 })
    const raft = { voters: [1, 2, 3], nonVoters: [7, 8] }
    expect(await rounds(r, 3, 3, raft)).toEqual(['demote 2', 'remove 3', 'promote 7'])
    expect(raft.voters.sort()).toEqual([1, 7])
  })

  it('takes a gone peer out, then promotes a joined host in its place', async () => {
    const r = registry0(['z1', 'z2', 'z3'])
    run(r, { op: 'host.status', id: 'h3', status: 'gone', now: 1 })
    // The dead voter goes first (two live voters of two keep the quorum); h4 (replica 7) is in
    // a zone none of the voters left are in.
    expect(await rounds(r, 4)).toEqual(['remove 3', 'promote 7'])
    const voters = r.state.replicasOf(0).filter((x) => !x.nonVoting)
    expect(voters.map((x) => x.hostId).sort()).toEqual(['h1', 'h2', 'h4'])
  })

  it('spreads the voters over zones when the hosts allow it', async () => {
    const r = registry0(['z1', 'z1', 'z2'])
    expect(await rounds(r, 4)).toEqual(['promote 7', 'demote 2'])
    const voters = r.state.replicasOf(0).filter((x) => !x.nonVoting)
    expect(voters.map((x) => x.hostId).sort()).toEqual(['h1', 'h3', 'h4'])
  })

  it('keeps five voters when asked to, once there are hosts for them', async () => {
    const r = registry0(['z1', 'z2', 'z3'])
    expect(await rounds(r, 4, 5)).toEqual(['promote 7', 'promote 8'])
    expect(r.state.replicasOf(0).every((x) => !x.nonVoting)).toBe(true)
  })

  it('demotes a long-missing peer before replacing it, so that it can come back', async () => {
    const r = registry0(['z1', 'z2', 'z3'])
    run(r, { op: 'host.status', id: 'h2', status: 'missing', now: 1 })
    expect(await rounds(r, 3)).toEqual(['demote 2', 'promote 7'])
    expect(r.state.replicas.get(2)?.nonVoting).toBe(true)
  })

  it('demotes surplus voters of silent hosts first, and never below a live quorum', async () => {
    const r = registry0(['z1', 'z2', 'z3'])
    for (const id of [7, 8]) run(r, { op: 'replica.update', id, nonVoting: false })
    for (const id of ['h4', 'h5']) run(r, { op: 'host.status', id, status: 'missing', now: 9_900 })
    // Five voters, three live: demoting a live one would leave two of four.
    expect(await rounds(r, 3)).toEqual(['demote 7', 'demote 8'])
  })

  it('keeps a missing peer until it has been missing long enough', async () => {
    const r = registry0(['z1', 'z2', 'z3'])
    run(r, { op: 'host.status', id: 'h2', status: 'missing', now: 9_900 })
    expect(await rounds(r, 3)).toEqual([])
  })

  it('demotes the vote of a draining host but keeps its replica', async () => {
    const r = registry0(['z1', 'z2', 'z3'])
    run(r, { op: 'host.status', id: 'h2', status: 'draining', now: 1 })
    expect(await rounds(r, 3)).toEqual(['promote 7', 'demote 2'])
    expect(r.state.replicas.get(2)?.nonVoting).toBe(true)
  })
})

describe('membership repair', () => {
  it("names what brings a shard's Raft membership in line with the records", () => {
    const r = fresh() // shard 1: replicas 4, 5, 6 voters
    const m = (voters: number[], nonVoters: number[] = []) => ({ voters, nonVoters })
    expect(repairOf(r.state, 1, m([4, 5, 6]), 4)).toBeUndefined()
    run(r, { op: 'replica.update', id: 6, nonVoting: true })
    expect(repairOf(r.state, 1, m([4, 5, 6]), 4)).toEqual({ op: 'demote', replicaId: 6 })
    expect(repairOf(r.state, 1, m([4, 5], [6]), 4)).toBeUndefined()
    run(r, { op: 'replica.delete', id: 6 })
    expect(repairOf(r.state, 1, m([4, 5], [6]), 4)).toEqual({ op: 'remove', replicaId: 6 })
    // An id this view has not given out yet: a newer replica, left alone.
    expect(repairOf(r.state, 1, m([4, 5], [99]), 4)).toBeUndefined()
    run(r, { op: 'replica.update', id: 5, status: 'deleting' })
    expect(repairOf(r.state, 1, m([4], [5]), 4)).toBeUndefined() // its host takes it out
  })
})

describe('leader balance', () => {
  /** withLeaders gives shards 1–4 (voters on h1–h3) the leaders on `hosts`. */
  function withLeaders(hosts: string[]): Registry {
    const r = fresh()
    for (let s = 2; s <= 4; s++) {
      run(r, { op: 'shard.create', name: `s${s}`, type: 'kv' })
      apply(r, {
        op: 'replicas.create',
        shardId: s,
        items: ['h1', 'h2', 'h3'].map((hostId) => ({ hostId, nonVoting: false, initial: true })),
      })
    }
    hosts.forEach((h, i) => {
      const rep = r.state.replicasOf(i + 1).find((x) => x.hostId === h)
      for (const x of r.state.replicasOf(i + 1))
        run(r, { op: 'replica.update', id: x.id, status: 'active' })
      run(r, { op: 'shard.leader', id: i + 1, leader: rep?.id ?? 0, term: 1 })
    })
    return r
  }

  it('hands one leadership from a host leading two more than another', () => {
    const r = withLeaders(['h1', 'h1', 'h1', 'h2'])
    const t = nextTransfer(r.state, 'h1')
    expect(t?.shardId).toBe(1)
    expect(r.state.replicas.get(t?.replicaId ?? 0)?.hostId).toBe('h3') // h3 leads none
    expect(nextTransfer(r.state, 'h2')).toBeUndefined()
    expect(nextTransfer(withLeaders(['h1', 'h1', 'h2', 'h3']).state, 'h1')).toBeUndefined()
  })

  it('hands several over at once without piling them on one host', () => {
    const r = withLeaders(['h1', 'h1', 'h1', 'h1'])
    const ts = nextTransfers(r.state, 'h1', 4)
    // 4-0-0: one to h2, one to h3, and then h1 leads two, no more than two above anyone.
    expect(ts.map((t) => r.state.replicas.get(t.replicaId)?.hostId)).toEqual(['h2', 'h3'])
    expect(ts.map((t) => t.shardId)).toEqual([1, 2])
  })

  afterEach(() => vi.useRealTimers())

  it('looks again at a registry that did not change only every BALANCE_RECHECK_MS', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    // h1 leads two, h2 and h3 one each: nothing to hand over.
    const r = withLeaders(['h1', 'h1', 'h2', 'h3'])
    const ctx = {
      hostId: 'h1',
      log: silent,
      registry: () => r.state,
    } as unknown as DrainContext
    const looks = vi.spyOn(r.state, 'replicasOn')
    const balance = new LeaderBalance(5_000)
    await balance.once(ctx)
    await balance.once(ctx)
    expect(looks).toHaveBeenCalledTimes(1)
    vi.setSystemTime(Date.now() + BALANCE_RECHECK_MS)
    await balance.once(ctx)
    expect(looks).toHaveBeenCalledTimes(2)
  })

  it('hands every leadership of a draining host over, shard 0 first', () => {
    const r = withLeaders(['h2', 'h3', 'h2', 'h3'])
    run(r, { op: 'shard.leader', id: 0, leader: 2, term: 1 })
    run(r, { op: 'host.status', id: 'h2', status: 'draining', now: 1 })
    expect(nextTransfer(r.state, 'h2')).toEqual({ shardId: 0, replicaId: 1 })
  })
})

describe('membership events', () => {
  it('name each replica added, promoted, demoted and removed', () => {
    const r = fresh()
    const before = r.state
    run(r, { op: 'replica.create', shardId: 1, hostId: 'h4', nonVoting: true })
    run(r, { op: 'replica.update', id: 7, nonVoting: false })
    run(r, { op: 'replica.update', id: 4, nonVoting: true })
    run(r, { op: 'replica.delete', id: 6 })
    expect(membershipChanges(before, r.state).map((m) => `${m.change} ${m.replicaId}`)).toEqual([
      'demoted 4',
      'added 7',
      'removed 6',
    ])
  })
})
