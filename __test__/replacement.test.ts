import { describe, expect, it } from 'vitest'

import { Registry } from '../ts/index'
import { checkReplacement, isLeaving, RateLimit } from '../ts/coordinator/departures'
import { nextTransfer } from '../ts/coordinator/leader-balance'
import { repairOf } from '../ts/coordinator/membership-repair'
import type { Command, HostRecord, Placement } from '../ts/coordinator/records'
import { reconcileRegistry } from '../ts/coordinator/registry-members'
import type { RegistryState } from '../ts/coordinator/registry-state'
import { membershipChanges } from '../ts/coordinator/registry-events'
import {
  type ControllerContext,
  DefaultShardController,
  keepsQuorum,
} from '../ts/coordinator/shard-controller'
import { apply, outcome, seed } from './fixtures/registry'

// Replacement, drain and placement both ways, decided on the registry leader: the registry's
// rules for host states, the order of membership changes a shard goes through, shard 0's
// voters and the leader balance — against a registry fed commands directly.

/** addHost registers host `id` (zone `zone`, running `kv`). */
function addHost(r: Registry, id: string, zone: string): void {
  const host = {
    id,
    apiAddress: `a-${id}`,
    raftAddress: `r-${id}`,
    tags: { zone },
    shardTypes: ['kv'],
  }
  apply(r, { op: 'host.put', host })
}

/** run applies a command and fails the test if the registry refused it. */
function run(r: Registry, cmd: Command): void {
  const out = outcome(apply(r, cmd)[0])
  if (!out.ok) throw new Error(`refused ${JSON.stringify(cmd)}: ${out.error}`)
}

/**
 * Leader plays the registry leader against a registry: it runs the default shard controller
 * with a context that records every membership change, and plays the host controllers of
 * live hosts (a new replica catches up and goes active; a deleting one leaves).
 */
class Leader {
  readonly calls: string[] = []
  tokens = Number.POSITIVE_INFINITY
  readonly controller = new DefaultShardController()

  constructor(readonly r: Registry) {}

  get ctx(): ControllerContext {
    const record = (what: string) => async (_s: RegistryState, shard: number, id: number) => {
      this.calls.push(`${what} ${shard}/${id}`)
    }
    return {
      leaving: (h) => isLeaving(h, 10_000, 1_000),
      alive: (h) => h?.status === 'active' || h?.status === 'draining',
      take: () => this.tokens-- > 0,
      membership: {
        promote: record('promote'),
        demote: record('demote'),
        remove: record('remove'),
      },
    }
  }

  /**
   * round runs the controller once and returns the registry commands it proposed (`calls`
   * has them too, in order with the membership changes).
   */
  async round(): Promise<string[]> {
    const proposed: string[] = []
    await this.controller.reconcile(
      this.r.state,
      async (cmd) => {
        proposed.push(describeCmd(cmd))
        this.calls.push(describeCmd(cmd))
        const out = outcome(apply(this.r, cmd)[0])
        if (!out.ok) throw new Error(String(out.error))
        return out as { ok: true }
      },
      this.ctx,
    )
    return proposed
  }

  /** steps runs `n` rounds, each followed by the hosts' part, and returns what happened. */
  async steps(n: number): Promise<string[]> {
    const out: string[] = []
    for (let i = 0; i < n; i++) {
      await this.round()
      out.push(...this.calls.splice(0))
      this.hosts()
    }
    return out
  }

  /** hosts plays the host controllers of live hosts once. */
  hosts(): void {
    for (const rep of this.r.state.replicas.values()) {
      const live = this.ctx.alive(this.r.state.hosts.get(rep.hostId))
      if (!live || rep.shardId === 0) continue
      if (rep.status === 'new') run(this.r, { op: 'replica.update', id: rep.id, status: 'active' })
      if (rep.status === 'deleting') run(this.r, { op: 'replica.delete', id: rep.id })
    }
  }
}

function describeCmd(c: Command): string {
  if (c.op === 'replica.create') return `create ${c.hostId}${c.nonVoting ? ' non-voting' : ''}`
  if (c.op === 'replica.update') {
    const status = c.status ? ` ${c.status}` : ''
    const voting = c.nonVoting === undefined ? '' : ` nonVoting=${c.nonVoting}`
    return `update ${c.id}${status}${voting}`
  }
  if (c.op === 'replica.delete') return `delete ${c.id}`
  return c.op
}

/** fresh is a registry of hosts h1–h3 with shard 1 on them (active), and h4 and h5. */
function fresh(): Registry {
  const r = new Registry()
  seed(r)
  for (const id of [4, 5, 6]) run(r, { op: 'replica.update', id, status: 'active' })
  addHost(r, 'h4', 'z4')
  addHost(r, 'h5', 'z5')
  return r
}

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
    })
    for (const o of [
      { replaceAfterMs: -1 },
      { replaceAfterMs: 1.5 },
      { changesPerSecond: 0 },
      { registryVoters: 4 },
      { balanceLeaders: 'yes' as unknown as boolean },
    ])
      expect(() => checkReplacement(o)).toThrow(/must be/)
  })

  it('rate-limits membership changes over time', () => {
    const rate = new RateLimit(2, 0)
    expect([rate.take(0), rate.take(0), rate.take(0)]).toEqual([true, true, false])
    expect(rate.take(400)).toBe(false)
    expect(rate.take(500)).toBe(true) // half a second refills one
  })

  it('keeps a quorum of live voters when one stops voting', () => {
    expect(keepsQuorum(3, 3, true)).toBe(true) // 2 of 2 live
    expect(keepsQuorum(3, 2, true)).toBe(false) // 1 of 2 live
    expect(keepsQuorum(3, 2, false)).toBe(true) // the dead one goes: 2 of 2
    expect(keepsQuorum(1, 1, true)).toBe(false) // never none
  })
})

describe('the shard controller, one change at a time', () => {
  it('replaces a replica of a long-missing host: add, catch up, promote, remove', async () => {
    const r = fresh()
    const l = new Leader(r)
    expect(await l.round()).toEqual([]) // everything in place
    run(r, { op: 'host.status', id: 'h3', status: 'missing', now: 9_500 })
    expect(await l.round()).toEqual([]) // missing, not for long enough yet
    run(r, { op: 'host.status', id: 'h3', status: 'missing', now: 1_000 })
    expect(await l.steps(6)).toEqual([
      'create h4 non-voting',
      'update 7 nonVoting=false',
      'promote 1/7',
      'delete 6',
      'remove 1/6',
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
    expect(await l.round()).toEqual(['create h4 non-voting'])
    expect(await l.round()).toEqual([]) // not caught up yet
    expect(l.calls).toEqual(['create h4 non-voting'])
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

  it('promotes a joined host in place of a gone peer, then takes the peer out', async () => {
    const r = registry0(['z1', 'z2', 'z3'])
    run(r, { op: 'host.status', id: 'h3', status: 'gone', now: 1 })
    // h4 (replica 7) is in a zone none of the voters left are in.
    expect(await rounds(r, 4)).toEqual(['promote 7', 'remove 3'])
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

  it('demotes a long-missing peer once replaced, so that it can come back', async () => {
    const r = registry0(['z1', 'z2', 'z3'])
    run(r, { op: 'host.status', id: 'h2', status: 'missing', now: 1 })
    expect(await rounds(r, 3)).toEqual(['promote 7', 'demote 2'])
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
