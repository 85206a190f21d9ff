// bench: the engine benchmark's workload driven from JavaScript — three hosts in this
// process over loopback TCP, fsync on, a TypeScript-style KV state machine, proposals issued
// from JS. The last line printed is one JSON object.
//
//   node bench/bench.mjs --hosts 3 --shards 48 --clients 1024 --payload 16 --seconds 10
//   (--tls 1: the transport over mutual TLS, with certificates made for the run;
//    --sessions 1: every client writes in a client session of its own, registered first;
//    --ops 1: what an operator turns on — each host logs through a pino logger at debug into
//    a discarding stream, and a Prometheus registry with the engine's series is scraped
//    every second)
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Writable } from 'node:stream'
import pino from 'pino'
import { Registry } from 'prom-client'

import { registerEngineMetrics } from '../dist/ops/engine-metrics.js'

import { openCluster, parseArgs, percentile } from './cluster.mjs'
import { BytesKv, command } from './kv-bytes.mjs'

const args = parseArgs(
  { hosts: 3, shards: 48, clients: 1024, payload: 16, seconds: 10, tls: 0, sessions: 0, ops: 0 },
  'bench.mjs [--hosts N] [--shards N] [--clients N] [--payload BYTES] [--seconds N] [--tls 1]' +
    ' [--sessions 1] [--ops 1]',
)
const ops = args.ops === 1
let logLines = 0
const sink = new Writable({
  write: (c, _e, cb) => {
    logLines++
    cb()
  },
})

const cluster = await openCluster({
  hosts: args.hosts,
  shards: args.shards,
  factory: () => new BytesKv(),
  tls: args.tls === 1,
  options: ops ? { logger: pino({ level: 'debug' }, sink) } : {},
})
// With --ops 1, one registry per host, as one per agent; a scrape reads every series, as
// Prometheus does.
const registries = (ops ? cluster.hosts : []).map((h) => {
  const registry = new Registry()
  registerEngineMetrics(registry, () => h)
  return registry
})
let scrapes = 0
const scraper = ops
  ? setInterval(() => {
      for (const r of registries) r.metrics().then(() => scrapes++)
    }, 1000)
  : undefined

// Sessions are registered before the clock starts.
const sessions = args.sessions === 1
if (sessions) {
  await Promise.all(
    Array.from({ length: args.clients }, (_, c) => {
      const shard = (c % args.shards) + 1
      return cluster.leaderOf(shard).registerSession(shard, c + 1)
    }),
  )
}

const lat = []
let errors = 0
const loop = monitorEventLoopDelay()
loop.enable()
const cpu0 = process.cpuUsage()
const start = performance.now()
const end = start + args.seconds * 1000
const clients = []
for (let c = 0; c < args.clients; c++) {
  const shard = (c % args.shards) + 1
  const host = cluster.leaderOf(shard)
  clients.push(
    (async () => {
      const data = Buffer.alloc(args.payload)
      for (let n = 0; performance.now() < end; n++) {
        command(data, c, n)
        const t = performance.now()
        try {
          const session = sessions ? { clientId: c + 1, series: n + 1, respondedTo: n } : undefined
          await host.propose(shard, data, { timeoutMs: 5000, session })
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
clearInterval(scraper)
const cpu = process.cpuUsage(cpu0)
loop.disable()
lat.sort((a, b) => a - b)
const pct = (p) => percentile(lat, p)
const rss = process.memoryUsage().rss / (1 << 20)
await cluster.close()
console.log(
  JSON.stringify({
    mode: 'write',
    driver: 'node',
    hosts: args.hosts,
    shards: args.shards,
    clients: args.clients,
    payload: args.payload,
    tls: args.tls === 1,
    sessions,
    ops,
    scrapes,
    log_lines: logLines,
    seconds: Number(secs.toFixed(1)),
    writes: lat.length,
    errors,
    writes_per_sec: Math.round(lat.length / secs),
    p50_ms: Number(pct(0.5).toFixed(3)),
    p99_ms: Number(pct(0.99).toFixed(3)),
    p999_ms: Number(pct(0.999).toFixed(3)),
    event_loop_p99_ms: Number((loop.percentile(99) / 1e6).toFixed(3)),
    rss_mb: Number(rss.toFixed(1)),
    cpu_us_per_write: Number(((cpu.user + cpu.system) / Math.max(1, lat.length)).toFixed(2)),
  }),
)
