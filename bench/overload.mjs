// overload: offers a cluster several times the writes its state machines can apply, for a
// fixed time, and prints memory every second. Admission control should keep memory flat:
// writes past the in-flight limits are refused at once with ERR_BUSY (nothing proposed),
// and accepted writes keep a bounded latency. Every second a JSON line goes to stderr; the
// last line printed to stdout is one JSON object.
//
//   node bench/overload.mjs --hosts 3 --shards 8 --seconds 60 --slowUs 100 --factor 3
import { openCluster, parseArgs, percentile } from './cluster.mjs'

const args = parseArgs(
  { hosts: 3, shards: 8, seconds: 60, slowUs: 100, factor: 3, payload: 16, maxInFlight: 2048 },
  'overload.mjs [--hosts N] [--shards N] [--seconds N] [--slowUs N] [--factor N] ' +
    '[--payload N] [--maxInFlight N]',
)

/** Slow is a counter that spends `slowUs` of CPU on every entry it applies. */
class Slow {
  count = 0
  update(entries) {
    return entries.map(() => {
      const until = performance.now() + args.slowUs / 1000
      while (performance.now() < until) {}
      this.count++
      return { value: this.count }
    })
  }
  query() {
    return Buffer.from(String(this.count))
  }
  async saveSnapshot(out) {
    out.end(String(this.count))
  }
  async recoverFromSnapshot(input) {
    let text = ''
    for await (const c of input) text += c
    this.count = Number(text)
  }
}

const cluster = await openCluster({
  hosts: args.hosts,
  shards: args.shards,
  factory: () => new Slow(),
  // The in-flight limit is what bounds memory and latency: at most this many writes wait on
  // a host, the rest are refused at once.
  options: { maxInFlight: args.maxInFlight },
})
// Every entry is applied once per host, all on this one JavaScript thread.
const capacity = 1e6 / (args.slowUs * args.hosts)
const offered = capacity * args.factor
const tickMs = 10
console.error(`capacity ~${Math.round(capacity)}/s, offering ${Math.round(offered)}/s`)

const lat = []
const counts = { accepted: 0, busy: 0, other: 0 }
const second = { accepted: 0, busy: 0, other: 0 }
const rss = []
const start = performance.now()
const end = start + args.seconds * 1000
const data = Buffer.alloc(args.payload)
let next = 0
let pending = 0
// Open loop: each tick catches up with the offered rate, however late the tick runs (the
// state machines share this thread), so the offer does not slow down with the cluster.
const offer = setInterval(() => {
  const now = Math.min(performance.now(), end)
  const due = Math.floor(((now - start) * offered) / 1000)
  while (next < due) {
    const shard = (next++ % args.shards) + 1
    const t = performance.now()
    pending++
    cluster
      .leaderOf(shard)
      .propose(shard, data, { timeoutMs: 5000 })
      .then(
        () => {
          lat.push(performance.now() - t)
          counts.accepted++
          second.accepted++
        },
        (e) => {
          const kind = e?.code === 'ERR_BUSY' ? 'busy' : 'other'
          counts[kind]++
          second[kind]++
        },
      )
      .finally(() => pending--)
  }
}, tickMs)
const report = setInterval(() => {
  const mb = process.memoryUsage().rss / (1 << 20)
  rss.push(mb)
  const t = Math.round((performance.now() - start) / 1000)
  console.error(JSON.stringify({ t, rss_mb: Number(mb.toFixed(1)), pending, ...second }))
  second.accepted = second.busy = second.other = 0
}, 1000)

await new Promise((r) => setTimeout(r, args.seconds * 1000))
clearInterval(offer)
// Let what was accepted finish (bounded by the proposals' own deadlines).
for (let i = 0; pending > 0 && i < 600; i++) await new Promise((r) => setTimeout(r, 10))
clearInterval(report)
const secs = (performance.now() - start) / 1000
await cluster.close()
lat.sort((a, b) => a - b)
const later = rss.slice(Math.floor(rss.length / 4))
console.log(
  JSON.stringify({
    mode: 'overload',
    hosts: args.hosts,
    shards: args.shards,
    seconds: Number(secs.toFixed(1)),
    slow_us_per_entry: args.slowUs,
    offered_per_sec: Math.round(offered),
    max_in_flight: args.maxInFlight,
    accepted_per_sec: Math.round(counts.accepted / args.seconds),
    busy: counts.busy,
    other_errors: counts.other,
    p50_ms: Number(percentile(lat, 0.5).toFixed(1)),
    p99_ms: Number(percentile(lat, 0.99).toFixed(1)),
    rss_first_mb: Number((rss[0] ?? 0).toFixed(1)),
    rss_max_mb: Number(Math.max(...rss).toFixed(1)),
    rss_last_quarter_to_end_min_mb: Number(Math.min(...later).toFixed(1)),
    rss_last_mb: Number((rss.at(-1) ?? 0).toFixed(1)),
  }),
)
