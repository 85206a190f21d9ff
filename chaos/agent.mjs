// One host of the chaos suite, in a process of its own: an agent, and clients that read,
// write and compare-and-set keys through it. Every operation is told to the parent before it
// is sent (`invoke`, once the message is out) and when it ends (`complete`), so that one
// cut short by a kill still counts as possibly applied.
import { Agent } from '../dist/index.mjs'
import { serveOps } from '../harness/serve-ops.mjs'
import { ChaosKv, cas, put } from './kv.mjs'
import { rng } from './rng.mjs'

let agent
let running = false
const loops = []
/** What this agent announced: membership changes and hosts going down or up, with when. */
const events = []

/** now is the time on the machine's monotonic clock, which every process shares, in µs. */
const now = () => Number(process.hrtime.bigint() / 1000n)

/** tell sends `m` to the parent and resolves once it is written to the channel. */
const tell = (m) =>
  new Promise((resolve) => {
    if (!process.connected) return resolve()
    process.send(m, () => resolve())
  })

/** client runs one client's operations until `running` ends. */
async function client(id, o) {
  const random = rng(o.seed)
  const last = new Map() // what this client last saw of each key
  for (let n = 0; running; n++) {
    const key = o.keys[Math.floor(random() * o.keys.length)]
    const shard = o.shardOf[key]
    const r = random()
    const op = r < 0.5 ? 'read' : r < 0.8 ? 'write' : 'cas'
    const value = `${id}.${n}`
    const ev = { id: `${id}.${n}`, client: id, key, op }
    if (op === 'write') ev.value = value
    if (op === 'cas') Object.assign(ev, { from: last.get(key) ?? '', to: value })
    ev.call = now()
    await tell({ invoke: ev })
    const c = agent.client(shard)
    try {
      if (op === 'read') {
        const v = Buffer.from((await c.read(Buffer.from(key), { timeoutMs: o.timeoutMs })) ?? '')
        last.set(key, v.toString())
        void tell({ complete: { id: ev.id, return: now(), value: v.toString() } })
      } else {
        const cmd = op === 'write' ? put(key, value) : cas(key, ev.from, ev.to)
        const res = await c.propose(cmd, { timeoutMs: o.timeoutMs })
        if (op === 'write' || res.value === 1) last.set(key, value)
        void tell({ complete: { id: ev.id, return: now(), ok: res.value === 1 } })
      }
    } catch (e) {
      // A read, or a write that certainly did not apply, did nothing: it leaves the history.
      const nothing = op === 'read' || e?.outcome === 'not-applied'
      void tell({ complete: { id: ev.id, failed: nothing, code: e?.code } })
      await new Promise((r) => setTimeout(r, 20))
    }
  }
}

/**
 * stderrLogger is a Logger (pino's shape) that writes each record to stderr with the time on
 * the shared clock (µs) and its bindings' fields.
 * @param {Record<string, unknown>} bindings
 * @returns {import('../ts/index').Logger}
 */
function stderrLogger(bindings) {
  const write =
    (/** @type {string} */ level) =>
    (/** @type {object} */ fields, msg = '') =>
      process.stderr.write(
        `${now()} ${level} ${msg} ${JSON.stringify({ ...bindings, ...fields })}\n`,
      )
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (b) => stderrLogger({ ...bindings, ...b }),
  }
}

const ops = {
  async start({ cluster, peers, options }) {
    // CHAOS_LOG=1: every agent logs to stderr, with the time on the shared clock (µs).
    const logger = process.env.CHAOS_LOG ? stderrLogger({}) : undefined
    agent = new Agent(cluster, peers, { ...options, logger })
    agent.register('kv', () => new ChaosKv())
    agent.on('membership', (m) => events.push({ at: now(), type: 'membership', ...m }))
    for (const type of ['hostDown', 'hostUp'])
      agent.on(type, (e) => events.push({ at: now(), type, ...e }))
    await agent.start()
    return { hostId: agent.hostId, apiAddress: agent.apiAddress, raftAddress: agent.raftAddress }
  },
  joinToken: () => agent.createJoinToken({ ttlMs: 600_000 }),
  createShard: async ({ name }) =>
    (await agent.createShard('kv', { name, placement: { members: { count: 3 } } })).id,
  waitForShard: async ({ shardId }) => (await agent.waitForShard(shardId)).id,
  /** churn creates a shard, waits for its replicas and deletes it: registry writes. */
  async churn({ name }) {
    const sh = await agent.createShard('kv', { name, placement: { members: { count: 3 } } })
    await agent.waitForShard(sh.id, { timeoutMs: 10_000 })
    await agent.deleteShard(sh.id)
  },
  async run({ clients, keys, shardOf, seed, timeoutMs }) {
    running = true
    for (let i = 0; i < clients.length; i++)
      loops.push(client(clients[i], { keys, shardOf, seed: seed + i, timeoutMs }))
  },
  async halt() {
    running = false
    await Promise.allSettled(loops.splice(0))
  },
  /** leaderOf says whether this host's replica of a shard leads, and the shard's hosts. */
  async leaderOf({ shardId }) {
    const st = await agent.replicaStatus(shardId)
    return { leads: st.leaderId !== 0 && st.leaderId === st.replicaId }
  },
  async transfer({ shardId, hostId }) {
    await agent.transferLeader(shardId, hostId)
  },
  async cut({ addresses }) {
    agent.cutLinks(addresses)
  },
  /** read reads a key linearizably, waiting out leader elections. */
  async read({ key, shardId }) {
    for (let i = 0; ; i++) {
      try {
        const v = await agent.client(shardId).read(Buffer.from(key), { timeoutMs: 5000 })
        return Buffer.from(v ?? '').toString()
      } catch (e) {
        if (i >= 10) throw e
      }
    }
  },
  /** values reads the keys of the shards this host runs from its own replicas, no barrier. */
  async values({ keys, shardOf }) {
    const out = {}
    for (const k of keys) {
      if (!agent.runs(shardOf[k])) continue
      const v = await agent.client(shardOf[k]).read(Buffer.from(k), { stale: true })
      out[k] = Buffer.from(v ?? '').toString()
    }
    return out
  },
  async applied({ shardId }) {
    return (await agent.replicaStatus(shardId)).applied
  },
  /** events lists what this agent announced at or after `since` (µs, see now). */
  events: async ({ since }) => events.filter((e) => e.at >= since),
  /** registryVersion is the registry format the cluster writes, as this host knows it. */
  registryVersion: async () => agent.stateLocal((s) => s.version ?? 1),
  /** view is the registry as this host's replica has it: hosts and replicas. */
  view: async () =>
    agent.stateLocal((s) => ({
      hosts: [...s.hosts.values()].map((h) => ({ id: h.id, status: h.status })),
      replicas: [...s.replicas.values()].map((r) => ({
        id: r.id,
        shardId: r.shardId,
        hostId: r.hostId,
        nonVoting: r.nonVoting,
        status: r.status,
      })),
    })),
  /** voters are the voters of a shard in this host's replica of it, or null if it has none. */
  voters: async ({ shardId }) =>
    agent.runs(shardId) ? (await agent.replicaStatus(shardId)).membership.voters : null,
  /** stored lists the replicas with data on this host's disk. */
  stored: async () => agent.storedReplicas(),
  drain: ({ timeoutMs }) => agent.drain({ timeoutMs }),
  removeHost: ({ hostId }) => agent.removeHost(hostId),
  replaceHost: ({ hostId }) => agent.replaceHost(hostId),
  stop: ({ drain } = {}) => agent?.stop({ drain }),
}
serveOps(ops)
process.on('disconnect', () => {
  Promise.resolve(agent?.stop()).finally(() => process.exit(0))
})
process.send({ ready: true })
