import { afterAll, describe, expect, it } from 'vitest'

import { Agent, type AgentOptions } from '../ts/index'
import { KvStateMachine } from '../examples/kv.mjs'
import { codeOf, freePort, TempDirs, waitUntil } from './helpers'

// Placement both ways and the leader balance, on agents with real engines on loopback: a
// shard grows to five voters and shrinks back to three in Raft as in the registry; leadership
// piled on one host spreads out unless the balance is off; and the departure calls refuse
// what they cannot do.

const dirs = new TempDirs('zongzi-rebalance-')
const agents: Agent[] = []

afterAll(async () => {
  await Promise.allSettled(agents.map((a) => a.stop()))
  dirs.removeAll()
})

const fast: Partial<AgentOptions> = { host: { tickMs: 20 }, reconcileMs: 100 }

/** cluster starts three peers and `joiners` hosts that join with tokens, all running `kv`. */
async function cluster(name: string, joiners: number, o: Partial<AgentOptions> = {}) {
  const peers: string[] = []
  for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
  const make = (extra: Partial<AgentOptions>) => {
    const a = new Agent(name, peers, { dataDir: dirs.make(), ...fast, ...o, ...extra })
    a.register('kv', () => new KvStateMachine())
    agents.push(a)
    return a
  }
  const all = peers.map((apiAddress) => make({ apiAddress }))
  await Promise.all(all.map((a) => a.start()))
  for (let i = 0; i < joiners; i++) {
    const a = make({ joinToken: await all[0].createJoinToken() })
    await a.start()
    all.push(a)
  }
  return all
}

/** voters lists a shard's voters in the registry, and as Raft has them on `a`. */
async function voters(a: Agent, shardId: number) {
  const recorded = a
    .stateLocal((s) => s.replicasOf(shardId))
    .filter((r) => !r.nonVoting)
    .map((r) => r.id)
    .sort()
  const raft = [...(await a.replicaStatus(shardId)).membership.voters].sort()
  return { recorded, raft }
}

describe('a placement that grows and shrinks', () => {
  it('adds and promotes voters, then removes or demotes the surplus, in Raft too', async () => {
    const all = await cluster('grow', 2)
    const sh = await all[0].createShard('kv', { placement: { members: { count: 3 } } })
    await all[0].waitForShard(sh.id)
    const c = all[0].client(sh.id)
    await c.propose(Buffer.from('{"key":"a","value":"1"}'))
    await all[0].updateShard(sh.id, { placement: { members: { count: 5 } } })
    await waitUntil(
      async () => {
        const host = all.find((a) => a.runs(sh.id))
        if (!host) return false
        const v = await voters(host, sh.id)
        return v.recorded.length === 5 && v.raft.join() === v.recorded.join()
      },
      { what: 'five voters', timeoutMs: 30_000 },
    )
    await all[0].updateShard(sh.id, { placement: { members: { count: 3 } } })
    await waitUntil(
      async () => {
        const runs = all.filter((a) => a.runs(sh.id))
        if (runs.length !== 3) return false
        const views = await Promise.all(runs.map((a) => voters(a, sh.id)))
        return views.every((v) => v.recorded.length === 3 && v.raft.join() === v.recorded.join())
      },
      { what: 'back to three voters, and only three hosts running it', timeoutMs: 30_000 },
    )
    // Two voters and a group of one: a voter is demoted where it is, keeping its data.
    const hosts = () => all.filter((a) => a.runs(sh.id)).map((a) => a.hostId)
    const before = hosts().sort()
    const placement = { members: { count: 2 }, groups: { g: { count: 1 } } }
    await all[0].updateShard(sh.id, { placement })
    await waitUntil(
      async () => {
        const runs = all.filter((a) => a.runs(sh.id))
        const views = await Promise.all(runs.map((a) => a.replicaStatus(sh.id)))
        return views.every((v) => v.membership.voters.length === 2 && v.membership.nonVoters.length)
      },
      { what: 'two voters and a non-voting replica', timeoutMs: 30_000 },
    )
    expect(hosts().sort()).toEqual(before)
    const read = await c.read(Buffer.from('a'))
    expect(Buffer.from(read ?? '').toString()).toBe('1')
  }, 90_000)
})

describe('the leader balance', () => {
  /**
   * pile moves the leadership of every shard to `to`. A shard counts once `to` has led it: the
   * leader balance, when on, may hand it on again at once (which the test then watches).
   */
  async function pile(all: Agent[], ids: number[], to: Agent) {
    const led = new Set<number>()
    to.on('event', (e) => {
      if (e.type === 'leaderChanged' && e.leaderId !== 0 && e.leaderId === e.replicaId)
        led.add(e.shardId)
    })
    for (const id of ids) {
      await waitUntil(
        async () => {
          const st = await to.replicaStatus(id)
          if (led.has(id) || st.leaderId === st.replicaId) return true
          const leader = all.find((a) =>
            a.stateLocal((s) => s.replicas.get(st.leaderId)?.hostId === a.hostId),
          )
          await leader?.transferLeader(id, to.hostId).catch(() => {})
          return false
        },
        { what: `shard ${id} led by one host`, timeoutMs: 10_000 },
      )
    }
  }

  async function leaders(all: Agent[], ids: number[]) {
    const out = new Map<string, number>()
    for (const a of all) {
      for (const id of ids) {
        const st = await a.replicaStatus(id)
        if (st.leaderId === st.replicaId) out.set(a.hostId, (out.get(a.hostId) ?? 0) + 1)
      }
    }
    return out
  }

  async function shards(a: Agent, n: number) {
    const ids: number[] = []
    for (let i = 0; i < n; i++) {
      const sh = await a.createShard('kv', { placement: { members: { count: 3 } } })
      ids.push(sh.id)
    }
    for (const id of ids) await a.waitForShard(id)
    return ids
  }

  it('spreads leaders piled on one host', async () => {
    const all = await cluster('balance', 0)
    const ids = await shards(all[0], 4)
    await pile(all, ids, all[0])
    // 4-0-0: h1 leads two above the mean and hands two over at once, to h2 and h3.
    await waitUntil(
      async () => {
        const counts = [...(await leaders(all, ids)).values()]
        return counts.length === 3 && Math.max(...counts) - Math.min(...counts) <= 1
      },
      { what: 'leaders on every host', timeoutMs: 60_000 },
    )
  }, 90_000)

  it('leaves them where they are when it is off', async () => {
    const all = await cluster('no-balance', 0, { balanceLeaders: false })
    const ids = await shards(all[0], 4)
    await pile(all, ids, all[0])
    await new Promise((r) => setTimeout(r, 3000))
    expect((await leaders(all, ids)).get(all[0].hostId)).toBe(4)
  }, 60_000)
})

describe('a host that joins a balanced cluster', () => {
  it('receives its share of the replicas, with writes going on', async () => {
    // Rebalancing moves 20 replicas at once here (maxMoves is changesPerSecond, rounded up).
    const o = { changesPerSecond: 20 }
    const all = await cluster('join-share', 0, o)
    const ids: number[] = []
    for (let i = 0; i < 8; i++) {
      ids.push((await all[0].createShard('kv', { placement: { members: { count: 3 } } })).id)
    }
    for (const id of ids) await all[0].waitForShard(id)
    const moved: Array<{ shardId: number; from: string; to: string }> = []
    for (const a of all) a.on('rebalance', (m) => moved.push(m))
    const newcomer = new Agent('join-share', [...all[0].peers], {
      dataDir: dirs.make(),
      ...fast,
      ...o,
      joinToken: await all[0].createJoinToken(),
    })
    newcomer.register('kv', () => new KvStateMachine())
    agents.push(newcomer)
    await newcomer.start()
    // One write after another to every shard while replicas move: none fails.
    let writing = true
    let writes = 0
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const id = ids[i % ids.length]
        await all[0].client(id).propose(Buffer.from(`{"key":"k${i}","value":"${i}"}`))
        writes++
      }
    })()
    const mine = () =>
      all[0].stateLocal(
        (s) => s.replicasOn(newcomer.hostId).filter((r) => r.status === 'active').length,
      )
    // 24 replicas over 4 hosts: 6 each.
    await waitUntil(() => mine() === 6 && moved.length === 6, {
      what: 'six replicas on the new host',
      timeoutMs: 60_000,
    })
    writing = false
    await writer
    expect(writes).toBeGreaterThan(0)
    expect(new Set(moved.map((m) => m.to))).toEqual(new Set([newcomer.hostId]))
    for (const id of ids) {
      const voters = all[0].stateLocal((s) => s.replicasOf(id).filter((r) => !r.nonVoting))
      expect(voters.length).toBe(3)
    }
    const c = newcomer.client(ids[0])
    expect(Buffer.from((await c.read(Buffer.from('k0'))) ?? '').toString()).toBe('0')
  }, 90_000)
})

describe('a drain that cannot finish', () => {
  it('says what is left when no other host fits, and undrain ends it', async () => {
    const all = await cluster('stuck-drain', 0)
    const sh = await all[0].createShard('kv', { placement: { members: { count: 3 } } })
    await all[0].waitForShard(sh.id)
    const err = await all[1].drain({ timeoutMs: 2000 }).catch((e) => e)
    expect(err.code).toBe('ERR_TIMEOUT')
    expect(err.message).toMatch(new RegExp(`a replica of shard ${sh.id} \\(members: wants 3`))
    const status = () => all[0].state((s) => s.hosts.get(all[1].hostId)?.status)
    expect(await status()).toBe('draining')
    // A drained stop that cannot drain leaves the agent running.
    expect(await codeOf(all[1].stop({ drain: { timeoutMs: 500 } }))).toBe('ERR_TIMEOUT')
    expect(all[1].status).toBe('ready')
    // A drain waiting when the host is undrained ends.
    const waiting = all[1].drain({ timeoutMs: 30_000 }).catch((e) => e)
    await all[1].undrain()
    expect((await waiting).code).toBe('ERR_ABORTED')
    expect(await status()).toBe('active')
    await waitUntil(
      () => all[0].stateLocal((s) => s.shards.get(sh.id)?.tags['placement:error'] === undefined),
      { what: 'the placement error cleared' },
    )
    expect(all[0].stateLocal((s) => s.replicasOf(sh.id).length)).toBe(3)
  }, 60_000)
})

describe('the departure calls', () => {
  it('refuse what they cannot do, with clear errors', async () => {
    const all = await cluster('departures', 0)
    const [a, b] = all
    expect(await codeOf(a.removeHost(''))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(a.removeHost('nobody'))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(a.removeHost(a.hostId))).toBe('ERR_INVALID_ARGUMENT')
    const up = await a.replaceHost(b.hostId).catch((e) => e)
    expect(up.code).toBe('ERR_INVALID_ARGUMENT')
    expect(up.message).toMatch(/is up \(active\); drain it/)
    expect(await codeOf(a.drain({ timeoutMs: -1 }))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(a.drain(null as never))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(a.stop(null as never))).toBe('ERR_INVALID_ARGUMENT')
    expect(a.stateLocal((s) => [...s.hosts.values()].map((h) => h.status))).toEqual([
      'active',
      'active',
      'active',
    ])
    const bad = (o: Partial<AgentOptions>) => () =>
      new Agent('x', ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'], { dataDir: 'd', ...o })
    expect(bad({ replaceAfterMs: -5 })).toThrow(/replaceAfterMs/)
    expect(bad({ registryVoters: 4 })).toThrow(/registryVoters/)
  }, 60_000)
})
