import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { Agent, type AgentOptions } from '../ts/index'
import { Registry } from '../ts/coordinator/registry/registry'
import { Liveness } from '../ts/coordinator/control/liveness'
import { hostChanges } from '../ts/coordinator/registry/events'
import { KvStateMachine } from '../examples/kv.mjs'
import { apply, seed } from './fixtures/registry'
import { ChildClient, freePort, stopsAfterAll, waitUntil } from './helpers'

// Liveness: the registry leader's heartbeats mark a host that stopped answering missing, and
// active again when it answers; every agent announces both, and the host keeps its replicas.

const { dirs, agents, children } = stopsAfterAll('zongzi-liveness-')

describe('a host state from heartbeats', () => {
  it('is up, then suspect, then down as its silence grows, and up when it answers', () => {
    const l = new Liveness({ suspectMs: 100, downMs: 300 })
    expect(l.state('h', 1000)).toBe('up') // first seen now
    expect(l.state('h', 1099)).toBe('up')
    expect(l.state('h', 1100)).toBe('suspect')
    expect(l.state('h', 1300)).toBe('down')
    l.heard('h', 1301)
    expect(l.state('h', 1302)).toBe('up')
  })

  it('calls for one registry write per change, and none for this host or a gone one', () => {
    const r = new Registry()
    seed(r) // hosts h1, h2, h3, all active
    const l = new Liveness({ suspectMs: 100, downMs: 300 })
    expect(l.changes(r.state, 'h1', 0)).toEqual([])
    l.heard('h2', 500)
    expect(l.changes(r.state, 'h1', 500)).toEqual([{ id: 'h3', status: 'missing' }])
    const before = r.state
    apply(r, { op: 'host.status', id: 'h3', status: 'missing' })
    expect(l.changes(r.state, 'h1', 500)).toEqual([])
    expect(hostChanges(before, r.state)).toEqual([{ type: 'hostDown', hostId: 'h3' }])
    l.heard('h3', 600)
    expect(l.changes(r.state, 'h1', 600)).toEqual([{ id: 'h3', status: 'active' }])
    // A new leader leaves a missing host missing until it answers.
    const fresh = new Liveness({ suspectMs: 100, downMs: 300 })
    expect(fresh.changes(r.state, 'h1', 700)).toEqual([])
    fresh.heard('h3', 710)
    expect(fresh.changes(r.state, 'h1', 720)).toEqual([{ id: 'h3', status: 'active' }])
  })
})

describe('the registry leader itself', () => {
  it('calls for itself to be active when the registry has it missing', () => {
    const r = new Registry()
    seed(r) // h1 leads shard 0
    apply(r, { op: 'host.status', id: 'h1', status: 'missing', now: 5 })
    const l = new Liveness({ suspectMs: 100, downMs: 300 })
    expect(l.changes(r.state, 'h1', 10)).toEqual([{ id: 'h1', status: 'active' }])
  })
})

describe('agents watching a host in another process', () => {
  it('mark it missing when killed, active when restarted, and keep its replicas', async () => {
    const cluster = 'liveness'
    const peers: string[] = []
    for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
    const fast: Partial<AgentOptions> = {
      host: { tickMs: 20 },
      reconcileMs: 100,
      liveness: { suspectMs: 300, downMs: 1000 },
    }
    const local = peers.map((apiAddress) => {
      const a = new Agent(cluster, peers, { dataDir: dirs.make(), apiAddress, ...fast })
      a.register('kv', () => new KvStateMachine())
      agents.push(a)
      return a
    })
    await Promise.all(local.map((a) => a.start()))
    const events: string[] = []
    for (const a of local) {
      a.on('hostDown', (e: { hostId: string }) => events.push(`down ${e.hostId}`))
      a.on('hostUp', (e: { hostId: string }) => events.push(`up ${e.hostId}`))
    }
    const options = { dataDir: dirs.make(), joinToken: await local[0].createJoinToken(), ...fast }
    const startChild = async () => {
      const c = await ChildClient.start(join(__dirname, '..', 'harness', 'agent-process.mjs'))
      children.push(c)
      const ids = await c.call<{ hostId: string }>('start', {
        cluster,
        peers,
        options,
        types: ['kv'],
      })
      return { c, hostId: ids.hostId }
    }
    const first = await startChild()
    const status = () => local[0].stateLocal((s) => s.hosts.get(first.hostId)?.status)
    // A shard with a replica on every host, the child's included.
    const sh = await local[0].createShard('kv', { placement: { members: { count: 4 } } })
    await local[0].waitForShard(sh.id)
    const replicas = () => local[0].stateLocal((s) => s.replicasOf(sh.id).map((r) => r.hostId))
    const held = replicas()
    expect(held).toContain(first.hostId)

    first.c.kill()
    await waitUntil(() => status() === 'missing', { what: 'the killed host marked missing' })
    await waitUntil(() => events.filter((e) => e === `down ${first.hostId}`).length === 3, {
      what: 'hostDown on every agent',
    })
    expect(replicas().sort()).toEqual([...held].sort()) // nothing moved
    // Writes go on without it.
    await local[1].client(sh.id).propose(Buffer.from('{"key":"k","value":"v"}'))

    await startChild() // the same data directory: the same host
    await waitUntil(() => status() === 'active', { what: 'the host active again' })
    await waitUntil(() => events.includes(`up ${first.hostId}`), { what: 'hostUp' })
    expect(replicas().sort()).toEqual([...held].sort())
  }, 120_000)
})
