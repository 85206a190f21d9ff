// One agent of the demo, in its own process; driven by examples/demo/demo.mjs over the
// harness's IPC (harness/child-client.mjs and harness/serve-ops.mjs).
import { Agent } from '../../dist/index.mjs'
import { serveOps } from '../../harness/serve-ops.mjs'
import { KvStateMachine, set } from '../kv.mjs'

let agent

const ops = {
  start: async ({ cluster, peers, dataDir, apiAddress, zone, tls }) => {
    // httpAddress: the status page and /metrics, over HTTPS with the bus's certificates.
    const httpAddress = '127.0.0.1:0'
    agent = new Agent(cluster, peers, { dataDir, apiAddress, httpAddress, tags: { zone }, tls })
    agent.register('example:kv', () => new KvStateMachine())
    await agent.start()
    return agent.hostId
  },
  httpAddress: async () => agent.httpAddress,
  createShard: ({ name, placement }) =>
    agent.createShard('example:kv', { name, placement }).then((s) => s.id),
  waitReplicas: async ({ shards }) => {
    // Wait until every shard has all its replicas active.
    for (let i = 0; i < 400; i++) {
      const ok = agent.stateLocal((s) =>
        shards.every((id) => {
          const rs = s.replicasOf(id)
          return rs.length > 0 && rs.every((r) => r.status === 'active')
        }),
      )
      if (ok) return
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error('replicas did not start')
  },
  work: async ({ shards, seconds, clients }) => {
    const end = Date.now() + seconds * 1000
    let writes = 0
    let reads = 0
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const client = agent.client(shards[c % shards.length])
        for (let n = 0; Date.now() < end; n++) {
          const key = `${agent.hostId}-${c}-${n % 100}`
          // The command carries an id the state machine de-duplicates, so an ambiguous
          // outcome can safely be retried.
          const cmd = set(key, String(n), `${agent.hostId}-${c}-${n}`)
          for (let attempt = 0; ; attempt++) {
            try {
              await client.propose(cmd)
              break
            } catch (e) {
              if (attempt > 5 || !['ERR_OUTCOME_UNKNOWN', 'ERR_TIMEOUT'].includes(e.code)) throw e
            }
          }
          writes++
          if (Buffer.from(await client.read(Buffer.from(key))).toString() !== String(n))
            throw new Error('read missed a write')
          reads++
        }
      }),
    )
    return { writes, reads }
  },
  topology: () =>
    agent.state((s) => ({
      hosts: [...s.hosts.values()].map((h) => ({ id: h.id, api: h.apiAddress, zone: h.tags.zone })),
      shards: [...s.shards.values()].map((sh) => ({
        id: sh.id,
        name: sh.name,
        leader: sh.leader,
        replicas: s
          .replicasOf(sh.id)
          .map((r) => ({ id: r.id, host: r.hostId, nonVoting: r.nonVoting, status: r.status })),
      })),
    })),
  stop: () => agent.stop(),
}

serveOps(ops)

// If the demo goes away, so does this agent.
process.on('disconnect', () => {
  Promise.resolve(agent?.stop()).finally(() => process.exit(0))
})
process.send({ ready: true })
