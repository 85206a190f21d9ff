// An agent in a process of its own with the recipes' state machines (zongzi/recipes) and a
// LeaderClock on each of their shards, driven by its parent over IPC: KV writes and reads,
// locks held under leases, campaigns and observers of elections run here, so that killing
// this process kills what they hold.
import { Agent } from '../dist/index.mjs'
import {
  ElectionClient,
  ElectionStateMachine,
  KvClient,
  KvStateMachine,
  LeaderClock,
  LockClient,
  LockStateMachine,
} from '../dist/recipes/index.mjs'
import { serveOps } from './serve-ops.mjs'

/** TYPES are the recipes' state machines by type name. */
const TYPES = {
  'zongzi/kv': () => new KvStateMachine(),
  'zongzi/lock': () => new LockStateMachine(),
  'zongzi/election': () => new ElectionStateMachine(),
}

let agent
const clocks = []
const leases = new Map()
/** What observers saw, by election: candidate names (null: no leader). */
const observed = new Map()

const kv = (shardId) => new KvClient(agent.client(shardId))

const ops = {
  async start({ cluster, peers, options }) {
    agent = new Agent(cluster, peers, options)
    for (const [type, make] of Object.entries(TYPES)) agent.register(type, make)
    await agent.start()
    return { hostId: agent.hostId, raftAddress: agent.raftAddress }
  },
  /** createShards creates a shard of each recipe, three voters each, and waits for them. */
  async createShards() {
    const ids = {}
    for (const [name, type] of [
      ['kv', 'zongzi/kv'],
      ['lock', 'zongzi/lock'],
      ['election', 'zongzi/election'],
    ]) {
      const sh = await agent.createShard(type, { name, placement: { members: { count: 3 } } })
      await agent.waitForShard(sh.id)
      ids[name] = sh.id
    }
    return ids
  },
  /** clocks starts a LeaderClock on each shard: this host's time goes in while it leads. */
  async clocks({ shardIds, intervalMs }) {
    for (const id of shardIds) clocks.push(LeaderClock.forAgent(agent, id, { intervalMs }).start())
  },
  async leads({ shardId }) {
    const s = await agent.replicaStatus(shardId)
    return s.leaderId !== 0 && s.leaderId === s.replicaId
  },
  transfer: ({ shardId, hostId }) => agent.transferLeader(shardId, hostId),
  kvSet: ({ shardId, key, value, ttlMs, ifVersion }) =>
    kv(shardId).set(key, value, { ttlMs, ifVersion }),
  kvCas: ({ shardId, key, expect, value }) => kv(shardId).compareAndSet(key, expect, value),
  kvGet: async ({ shardId, key }) => (await kv(shardId).get(key)) ?? null,
  /** lockAcquire waits for a lock and holds it (renewing its lease) in this process. */
  async lockAcquire({ shardId, name, owner, leaseMs, timeoutMs }) {
    const lease = await new LockClient(agent.client(shardId), { owner, leaseMs }).acquire(name, {
      timeoutMs,
    })
    leases.set(name, lease)
    return lease.token
  },
  async lockHolder({ shardId, name }) {
    return (await new LockClient(agent.client(shardId)).holder(name)) ?? null
  },
  /** campaign waits until `candidate` leads and resolves with its term. */
  async campaign({ shardId, election, candidate, value, leaseMs }) {
    const client = new ElectionClient(agent.client(shardId), election, { candidate, leaseMs })
    const won = await client.campaign(value)
    leases.set(`election:${election}`, won)
    return won.term
  },
  /** observe records each leader of `election` from now on (see `observed`). */
  async observe({ shardId, election }) {
    const seen = []
    observed.set(election, seen)
    const client = new ElectionClient(agent.client(shardId), election)
    void (async () => {
      for await (const l of client.observe()) seen.push(l?.candidate ?? null)
    })().catch(() => {})
  },
  observed: async ({ election }) => observed.get(election) ?? [],
  async stop() {
    for (const c of clocks) c.stop()
    for (const l of leases.values()) l.keepAlive.stop()
    await agent?.stop()
  },
}
serveOps(ops)
process.on('disconnect', () => {
  Promise.resolve(agent?.stop()).finally(() => process.exit(0))
})
process.send?.({ ready: true })
