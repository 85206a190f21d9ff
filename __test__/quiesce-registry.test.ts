import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { Agent, type AgentOptions } from '../ts/index'
import { KvStateMachine } from '../examples/kv.mjs'
import { ChildClient, freePort, stopsAfterAll, waitUntil } from './helpers'

// Idle shards quiesce (HostOptions.quiesce): a quiesced follower starts no election until work
// reaches it. The registry (shard 0) must not wait for work to notice that its leader's host
// died: liveness, replacement and every registry write hang on it.

const { dirs, agents, children } = stopsAfterAll('zongzi-quiet-')

describe('a quiesced registry', () => {
  it('elects a new leader, and marks the old one missing, once its host is killed', async () => {
    const cluster = 'quiet-registry'
    const peers: string[] = []
    for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
    const fast: Partial<AgentOptions> = {
      host: { tickMs: 20 },
      reconcileMs: 100,
      liveness: { suspectMs: 300, downMs: 1000 },
    }
    // The third peer runs in a process of its own, to be killed without a word.
    const child = await ChildClient.start(join(__dirname, '..', 'harness', 'agent-process.mjs'))
    children.push(child)
    const childOptions = { dataDir: dirs.make(), apiAddress: peers[2], ...fast }
    const local = peers.slice(0, 2).map((apiAddress) => {
      const a = new Agent(cluster, peers, { dataDir: dirs.make(), apiAddress, ...fast })
      a.register('kv', () => new KvStateMachine())
      agents.push(a)
      return a
    })
    const [{ hostId: childId }] = await Promise.all([
      child.call<{ hostId: string }>('start', { cluster, peers, options: childOptions, types: [] }),
      ...local.map((a) => a.start()),
    ])
    // The child leads the registry, and the registry goes quiet on every local host.
    await waitUntil(
      async () => {
        for (const a of local) {
          const st = await a.replicaStatus(0)
          if (a.stateLocal((s) => s.replicas.get(st.leaderId)?.hostId) === childId) return true
          // The leader hands over to the child's replica.
          if (st.leaderId === st.replicaId) await a.transferLeader(0, childId).catch(() => {})
        }
        return false
      },
      { what: 'the child leading shard 0' },
    )
    await waitUntil(
      async () =>
        (await Promise.all(local.map((a) => a.replicaStatus(0)))).every((s) => s.quiesced),
      { what: 'shard 0 quiesced on both local hosts' },
    )

    child.kill()
    await child.exited()
    // No write or read is made: the agents alone must notice.
    await waitUntil(
      async () => {
        const st = await local[0].replicaStatus(0)
        return (
          st.leaderId !== 0 &&
          local[0].stateLocal((s) => s.replicas.get(st.leaderId)?.hostId) !== childId
        )
      },
      { what: 'a new registry leader', timeoutMs: 20_000 },
    )
    await waitUntil(() => local[1].stateLocal((s) => s.hosts.get(childId)?.status) === 'missing', {
      what: 'the killed host marked missing',
      timeoutMs: 20_000,
    })
    expect(local[0].stateLocal((s) => s.hosts.get(childId)?.status)).toBe('missing')
  }, 90_000)
})
