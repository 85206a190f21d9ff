// @ts-check
// An agent in a process of its own, driven by its parent over IPC (ChildClient.start this
// file, then `call('start', …)` and the other operations below).
import { Agent } from '../dist/index.mjs'
import { KvStateMachine, set } from '../examples/kv.mjs'
import { serveOps } from './serve-ops.mjs'

/** @typedef {import('../dist/index.mjs').AgentOptions} AgentOptions */
/** @typedef {import('../dist/index.mjs').Placement} Placement */

/** @type {Agent | undefined} */
let current
/** started is the agent, once `start` has made it. */
const started = () => {
  if (!current) throw new Error('the agent is not started')
  return current
}

const ops = {
  /**
   * start makes and starts the agent, with a KV state machine for each of `types`.
   * @param {{ cluster: string, peers: string[], options: AgentOptions, types: string[] }} a
   */
  async start({ cluster, peers, options, types }) {
    const agent = new Agent(cluster, peers, options)
    current = agent
    for (const t of types) agent.register(t, () => new KvStateMachine())
    await agent.start()
    return { hostId: agent.hostId, apiAddress: agent.apiAddress, raftAddress: agent.raftAddress }
  },
  /** @param {{ type: string, placement?: Placement }} a */
  createShard: async ({ type, placement }) => (await started().createShard(type, { placement })).id,
  /** @param {{ shardId: number }} a */
  waitForShard: async ({ shardId }) => (await started().waitForShard(shardId)).id,
  /** @param {{ ttlMs?: number, tags?: Record<string, string> }} a */
  joinToken: ({ ttlMs, tags }) => started().createJoinToken({ ttlMs, tags }),
  rotateJoinKey: () => started().rotateJoinKey(),
  // The registry's index: it moves with every command applied, refused ones included.
  registryIndex: () => started().state((s) => s.index),
  // What a refused caller must leave as it was: the registry's tables and used join tokens.
  registry: () =>
    started().state((s) =>
      JSON.stringify({
        hosts: [...s.hosts.values()].map(({ updated, ...h }) => h),
        shards: [...s.shards.values()].map(({ updated, leader, term, ...sh }) => sh),
        replicas: [...s.replicas.values()].map(({ updated, ...r }) => r),
        tokens: [...s.access.used.keys()],
      }),
    ),
  /** @param {{ shardId: number, key: string, value: string }} a */
  propose: async ({ shardId, key, value }) =>
    (await started().client(shardId).propose(set(key, value))).value,
  /** @param {{ shardId: number, key: string, stale?: boolean }} a */
  read: async ({ shardId, key, stale }) => {
    const answer = await started().client(shardId).read(Buffer.from(key), { stale })
    // An absent answer fails the call, as Buffer.from(undefined) does.
    return Buffer.from(/** @type {Buffer} */ (answer)).toString()
  },
  /** @param {{ shardId: number }} a */
  runs: async ({ shardId }) => started().runs(shardId),
  /**
   * createShards makes `count` shards in one registry command (none when `count` is 0).
   * @param {{ type: string, count: number, placement?: Placement }} a
   */
  createShards: async ({ type, count, placement }) => {
    const made = await started().createShards(
      Array.from({ length: count }, () => ({ type, placement })),
    )
    return made.map((sh) => sh.id)
  },
  // This process's CPU time (user and system, µs, every thread) and resident memory (bytes).
  usage: async () => ({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss }),
  /**
   * spread is where the registry (this host's view) has the replicas and leaders of user
   * shards, and with `bytes` the size of its snapshot (JSON Lines, as Registry.saveSnapshot
   * writes it; it costs a pass over every record, so pollers leave it out).
   * @param {{ bytes?: boolean }} [a]
   */
  spread: async ({ bytes: withBytes = false } = {}) =>
    started().stateLocal((s) => {
      /** @type {Record<string, { replicas: number, active: number, leaders: number }>} */
      const hosts = {}
      for (const h of s.hosts.values()) hosts[h.id] = { replicas: 0, active: 0, leaders: 0 }
      let bytes = 0
      for (const rows of withBytes
        ? [s.hosts.values(), s.shards.values(), s.replicas.values()]
        : [])
        for (const r of rows) bytes += JSON.stringify(r).length + 1
      for (const r of s.replicas.values()) {
        const h = hosts[r.hostId]
        if (r.shardId === 0 || !h) continue
        h.replicas++
        if (r.status === 'active') h.active++
      }
      for (const sh of s.shards.values()) {
        const h = sh.id === 0 ? undefined : hosts[s.replicas.get(sh.leader)?.hostId ?? '']
        if (h) h.leaders++
      }
      return { hosts, shards: s.shards.size - (s.shards.has(0) ? 1 : 0), snapshotBytes: bytes }
    }),
  stop: () => started().stop(),
}
serveOps(ops)
process.on('disconnect', () => {
  Promise.resolve(current?.stop()).finally(() => process.exit(0))
})
process.send?.({ ready: true })
