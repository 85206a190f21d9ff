// bench: the engine benchmark's workload driven from JavaScript — three hosts in this
// process over loopback TCP, fsync on, a TypeScript-style KV state machine, proposals issued
// from JS. The last line printed is one JSON object.
//
//   node bench/bench.mjs --hosts 3 --shards 48 --clients 1024 --payload 16 --seconds 10
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'

import { Host } from '../dist/index.js'

const args = { hosts: 3, shards: 48, clients: 1024, payload: 16, seconds: 10 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, '')
  if (!(key in args) || !Number.isFinite(Number(argv[i + 1]))) {
    console.error(
      'usage: bench.mjs [--hosts N] [--shards N] [--clients N] [--payload BYTES] [--seconds N]',
    )
    process.exit(2)
  }
  args[key] = Number(argv[i + 1])
}

/** Kv keys entries by their first 8 bytes, like the engine benchmark's state machine. */
class Kv {
  map = new Map()
  entries = 0
  update(entries) {
    this.entries += entries.length
    return entries.map((e) => {
      this.map.set(e.data.toString('latin1', 0, 8), e.data)
      return { value: e.index }
    })
  }
  query(q) {
    return this.map.get(Buffer.from(q).toString('latin1')) ?? Buffer.alloc(0)
  }
  async saveSnapshot(out) {
    for (const [k, v] of this.map) {
      const len = Buffer.alloc(4)
      len.writeUInt32LE(v.length)
      out.write(Buffer.concat([Buffer.from(k, 'latin1'), len, v]))
    }
    out.end()
  }
  async recoverFromSnapshot(input) {
    const chunks = []
    for await (const c of input) chunks.push(c)
    const b = Buffer.concat(chunks)
    this.map.clear()
    for (let p = 0; p + 12 <= b.length; ) {
      const k = b.toString('latin1', p, p + 8)
      const n = b.readUInt32LE(p + 8)
      this.map.set(k, b.subarray(p + 12, p + 12 + n))
      p += 12 + n
    }
  }
}

const root = mkdtempSync(join(tmpdir(), 'zongzi-bench-'))
const hosts = []
for (let i = 0; i < args.hosts; i++)
  hosts.push(Host.open({ clusterId: 1, dataDir: join(root, `host${i}`) }))
const machines = []
const t0 = performance.now()
for (let s = 1; s <= args.shards; s++) {
  const voters = hosts.map((h, i) => ({ replicaId: s * 16 + i + 1, address: h.raftAddress }))
  await Promise.all(
    hosts.map((h, i) =>
      h.startReplica(s, s * 16 + i + 1, { mode: 'bootstrap', voters }, () => {
        const sm = new Kv()
        machines.push(sm)
        return sm
      }),
    ),
  )
}
const leaderHost = new Map()
for (let attempt = 0; leaderHost.size < args.shards && attempt < 2400; attempt++) {
  for (let s = 1; s <= args.shards; s++) {
    if (leaderHost.has(s)) continue
    for (const h of hosts) {
      const st = await h.status(s)
      if (st.leaderId !== 0 && st.leaderId === st.replicaId) leaderHost.set(s, h)
    }
  }
  await new Promise((r) => setTimeout(r, 50))
}
const readySecs = (performance.now() - t0) / 1000
console.error(`${args.shards} shards on ${args.hosts} hosts ready in ${readySecs.toFixed(1)}s`)

const lat = []
let errors = 0
const loop = monitorEventLoopDelay()
loop.enable()
const start = performance.now()
const end = start + args.seconds * 1000
const clients = []
for (let c = 0; c < args.clients; c++) {
  const shard = (c % args.shards) + 1
  const host = leaderHost.get(shard) ?? hosts[0]
  clients.push(
    (async () => {
      const data = Buffer.alloc(args.payload)
      for (let n = 0; performance.now() < end; n++) {
        data.writeUInt32LE(c, 0)
        if (args.payload >= 8) data.writeUInt32LE(n & 0xffff, 4)
        const t = performance.now()
        try {
          await host.propose(shard, data, { timeoutMs: 5000 })
          lat.push(performance.now() - t)
        } catch {
          errors++
        }
      }
    })(),
  )
}
await Promise.all(clients)
const secs = (performance.now() - start) / 1000
loop.disable()
lat.sort((a, b) => a - b)
const pct = (p) => (lat.length ? lat[Math.round((lat.length - 1) * p)] : 0)
const rss = process.memoryUsage().rss / (1 << 20)
await Promise.all(hosts.map((h) => h.close()))
rmSync(root, { recursive: true, force: true })
console.log(
  JSON.stringify({
    mode: 'write',
    driver: 'node',
    hosts: args.hosts,
    shards: args.shards,
    clients: args.clients,
    payload: args.payload,
    seconds: Number(secs.toFixed(1)),
    writes: lat.length,
    errors,
    writes_per_sec: Math.round(lat.length / secs),
    p50_ms: Number(pct(0.5).toFixed(3)),
    p99_ms: Number(pct(0.99).toFixed(3)),
    p999_ms: Number(pct(0.999).toFixed(3)),
    event_loop_p99_ms: Number((loop.percentile(99) / 1e6).toFixed(3)),
    rss_mb: Number(rss.toFixed(1)),
  }),
)
