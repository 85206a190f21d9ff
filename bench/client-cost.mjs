// The JavaScript cost of one ShardClient call on its own: a client of a shard with a replica on
// this host, over a stand-in host that answers each call in a microtask, so what is measured is
// the client's routing, session and timeout work per call (and the garbage it leaves), not Raft.
// Closed loop with --inflight calls outstanding. The last line printed is one JSON object.
//
//   node bench/client-cost.mjs [--calls 300000] [--inflight 256] [--read 0|1] [--session 0|1]
import { PerformanceObserver } from 'node:perf_hooks'

import { ShardClient } from '../dist/index.mjs'
import { parseArgs } from './cluster.mjs'

const args = parseArgs(
  { calls: 300_000, inflight: 256, read: 0, session: 1 },
  'client-cost.mjs [--calls N] [--inflight N] [--read 0|1] [--session 0|1]',
)
const SHARD = 7
const result = { value: 1, data: Buffer.alloc(0) }
const answer = Buffer.alloc(8)
const host = {
  propose: async () => result,
  commit: async () => 1,
  read: async () => answer,
  readIndex: async () => 1,
  registerSession: async () => {},
  unregisterSession: async () => {},
  stateMachine: () => undefined,
}
const replicas = [1, 2, 3].map((id) => ({ id, shardId: SHARD, hostId: `h${id}`, status: 'active' }))
const hosts = new Map(
  replicas.map((r) => [r.hostId, { status: 'active', apiAddress: `127.0.0.1:${r.id}` }]),
)
const state = {
  shards: new Map([[SHARD, { id: SHARD, status: 'active', leader: 1, term: 1 }]]),
  hosts,
  replicasOf: () => replicas,
}
const context = {
  hostId: 'h1',
  timeoutMs: 30_000,
  host,
  bus: {},
  registry: () => state,
  runs: () => true,
}
const client = new ShardClient(context, SHARD, { session: !!args.session })
const data = Buffer.alloc(16)
const call = args.read ? () => client.read(data) : () => client.propose(data)

let gcMs = 0
const gc = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration
})
let done = 0
async function loop() {
  while (done < args.calls) {
    await call()
    done++
  }
}
await Promise.all(Array.from({ length: 1000 }, () => call())) // warm up
gc.observe({ entryTypes: ['gc'] })
const cpu0 = process.cpuUsage()
const t0 = performance.now()
await Promise.all(Array.from({ length: args.inflight }, loop))
const ms = performance.now() - t0
const cpu = process.cpuUsage(cpu0)
await new Promise((r) => setImmediate(r))
gc.disconnect()
console.log(
  JSON.stringify({
    bench: 'client-cost',
    op: args.read ? 'read' : 'propose',
    session: !!args.session,
    calls: done,
    ns_per_call: Math.round((ms * 1e6) / done),
    cpu_ns_per_call: Math.round(((cpu.user + cpu.system) * 1e3) / done),
    gc_pct: Math.round((1000 * gcMs) / ms) / 10,
  }),
)
