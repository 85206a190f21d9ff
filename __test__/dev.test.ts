import { existsSync } from 'node:fs'
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest'

import {
  Agent,
  type AgentStatus,
  type CircuitState,
  type MembershipChange,
  shardType,
} from '../ts/index'
import { KvStateMachine, set } from '../examples/kv.mjs'
import { TypedKv } from './fixtures/typed-kv'
import { codeOf, TempDirs, text, waitUntil } from './helpers'

const dirs = new TempDirs('zongzi-dev-test-')
afterAll(() => dirs.removeAll())

const kv = shardType('typed-kv', () => new TypedKv())

/** voters counts the voting replicas the registry lists for a shard. */
const voters = (a: Agent, id: number) =>
  a.stateLocal((s) => s.replicasOf(id).filter((r) => !r.nonVoting).length)

describe('Agent.dev(): one agent in one process', () => {
  it('serves every call, a shard of one voter by default; its data goes on stop', async () => {
    const agent = Agent.dev()
    agent.register(kv).register('kv', () => new KvStateMachine())
    try {
      await agent.start()
      expect(agent.peers).toEqual([agent.apiAddress])
      const typed = await agent.createShard(kv, { name: 'typed' })
      expect(typed.placement).toEqual({ members: { count: 3, min: 1 } })
      const c = agent.client(typed)
      expect(await c.propose({ op: 'set', key: 'a', value: '1' })).toEqual({ size: 1 })
      expect(await c.read({ key: 'a' })).toBe('1')
      expect(voters(agent, typed.id)).toBe(1)
      const bytes = await agent.createShard('kv')
      await agent.client(bytes.id).propose(set('b', '2'))
      expect(text(await agent.client(bytes.id).read(Buffer.from('b'), { stale: true }))).toBe('2')
      const ac = new AbortController()
      for await (const v of c.watch({ key: 'a' }, { signal: ac.signal })) {
        if (v === '1') await c.propose({ op: 'set', key: 'a', value: '2' })
        else ac.abort()
      }
      expect(await agent.state((s) => s.hosts.size)).toBe(1)
      expect(existsSync(agent.dataDir)).toBe(true)
    } finally {
      await agent.stop()
    }
    expect(existsSync(agent.dataDir)).toBe(false)
  })

  it('keeps a data directory it is given, and starts again from it', async () => {
    const dataDir = dirs.make()
    const first = Agent.dev({ dataDir }).register(kv)
    await first.start()
    const sh = await first.createShard(kv, { name: 'kept' })
    await first.client(sh).propose({ op: 'set', key: 'k', value: 'v' })
    await first.stop()
    expect(existsSync(dataDir)).toBe(true)
    const again = Agent.dev({ dataDir }).register(kv)
    try {
      await again.start()
      const found = await again.findShard('kept')
      expect(found?.id).toBe(sh.id)
      expect(await again.client(sh.id, { type: kv }).read({ key: 'k' })).toBe('v')
    } finally {
      await again.stop()
    }
  })

  it('types the listeners of its events, and goes with its data on stop before start', async () => {
    const agent = Agent.dev()
    const statuses: AgentStatus[] = []
    agent.on('status', (s) => {
      expectTypeOf(s).toEqualTypeOf<AgentStatus>()
      statuses.push(s)
    })
    agent.on('hostDown', (c) => expectTypeOf(c).toEqualTypeOf<{ hostId: string }>())
    agent.on('membership', (m) => expectTypeOf(m).toEqualTypeOf<MembershipChange>())
    agent.on('circuit', (c) => expectTypeOf(c.state).toEqualTypeOf<CircuitState>())
    expect(existsSync(agent.dataDir)).toBe(true)
    await agent.stop()
    expect(statuses).toEqual(['stopping', 'stopped'])
    expect(existsSync(agent.dataDir)).toBe(false)
  })

  it('takes a single host that names itself as its one peer', async () => {
    const [agent] = await Agent.devCluster(1)
    agent.register(kv)
    try {
      await agent.start()
      expect(agent.peers).toEqual([agent.apiAddress])
      const sh = await agent.createShard(kv)
      expect(await agent.client(sh).propose({ op: 'set', key: 'a', value: '1' })).toEqual({
        size: 1,
      })
    } finally {
      await agent.stop()
    }
  })

  it('refuses a peer list with other hosts for a single host', () => {
    const o = { dataDir: dirs.make(), singleHost: true }
    expect(() => new Agent('x', ['127.0.0.1:1', '127.0.0.1:2'], o)).toThrow(/single host/)
    expect(() => new Agent('x', [], { dataDir: dirs.make() })).toThrow(/at least three/)
    expect(() => Agent.dev({ keepaliveMs: 0 })).toThrow(/keepaliveMs/)
    expect(() => Agent.dev({ health: { failures: -1 } })).toThrow(/health/)
  })
})

describe('Agent.devCluster(3): three agents in one process', () => {
  it('places a shard without placement on every host that runs its type, up to three', async () => {
    const agents = await Agent.devCluster(3)
    // The third agent does not run the type: the shard gets the two hosts that do.
    for (const a of agents.slice(0, 2)) a.register(kv)
    let joiner: Agent | undefined
    try {
      await Promise.all(agents.map((a) => a.start()))
      const sh = await agents[0].createShard(kv, { name: 'users' })
      await agents[2].waitForShard(sh.id)
      expect(voters(agents[0], sh.id)).toBe(2)
      const c = agents[2].client(sh)
      await c.propose({ op: 'set', key: 'a', value: '1' })
      // A host that runs the type joins: the shard grows to three voters.
      const joinToken = await agents[0].createJoinToken()
      joiner = new Agent(agents[0].clusterName, [...agents[0].peers], {
        dataDir: dirs.make(),
        joinToken,
        host: { tickMs: 20 },
        reconcileMs: 200,
      }).register(kv)
      await joiner.start()
      await waitUntil(() => voters(agents[0], sh.id) === 3, { what: 'a third voter' })
      await joiner.replica(sh.id, { timeoutMs: 30_000 })
      expect(await joiner.client(sh).read({ key: 'a' })).toBe('1')
    } finally {
      await Promise.allSettled([...agents, ...(joiner ? [joiner] : [])].map((a) => a.stop()))
    }
    for (const a of agents) expect(existsSync(a.dataDir)).toBe(false)
  })

  it('creates by name idempotently, and refuses other placement or tags for a name', async () => {
    const agents = await Agent.devCluster(3)
    for (const a of agents) a.register(kv)
    try {
      await Promise.all(agents.map((a) => a.start()))
      const sh = await agents[0].createShard(kv, { name: 'n', tags: { team: 'a' } })
      expect((await agents[1].createShard(kv, { name: 'n' })).id).toBe(sh.id)
      const same = { name: 'n', placement: { members: { min: 1, count: 3 } }, tags: { team: 'a' } }
      expect((await agents[2].createShard(kv, same)).id).toBe(sh.id)
      const other = { name: 'n', placement: { members: { count: 1 } } }
      const e = await agents[1].createShard(kv, other).catch((x) => x)
      expect([e.code, e.outcome]).toEqual(['ERR_SHARD_EXISTS', 'not-applied'])
      expect(e.message).toMatch(/placement.*updateShard/)
      expect(await codeOf(agents[1].createShard(kv, { name: 'n', tags: {} }))).toBe(
        'ERR_SHARD_EXISTS',
      )
      expect((await agents[0].findShard('n'))?.placement).toEqual(same.placement)
      const updated = await agents[0].updateShard(sh.id, other)
      expect(updated.placement).toEqual(other.placement)
      expect((await agents[1].createShard(kv, other)).id).toBe(sh.id)
    } finally {
      await Promise.allSettled(agents.map((a) => a.stop()))
    }
  })

  it('takes a signal and a timeout on its calls', async () => {
    const agents = await Agent.devCluster(3)
    for (const a of agents) a.register(kv)
    try {
      await Promise.all(agents.map((a) => a.start()))
      const signal = AbortSignal.abort()
      expect(await codeOf(agents[0].createShard(kv, { signal }))).toBe('ERR_ABORTED')
      expect(await codeOf(agents[0].state((s) => s.hosts.size, { signal }))).toBe('ERR_ABORTED')
      expect(await codeOf(agents[0].replica(0, { signal }))).toBe('ERR_ABORTED')
      expect(await agents[0].state((s) => s.hosts.size, { timeoutMs: 5000 })).toBe(3)
      expect(await agents[0].state((s) => s.hosts.size, 5000)).toBe(3) // the older form
      await agents[0].replica(0, 5000)
      expect(await codeOf(() => agents[0].state((s) => s, { timeoutMs: -1 }))).toBe(
        'ERR_INVALID_ARGUMENT',
      )
    } finally {
      await Promise.allSettled(agents.map((a) => a.stop()))
    }
  })
})
