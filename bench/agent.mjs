// bench:agent — the user's path: three agents in processes of their own on loopback, shards
// of 3 voters, clients spread over the agents, each bound to one shard, writing through
// ShardClient.propose (16-byte commands by default) into a JavaScript state machine, with a
// share of linearizable reads. Closed loop by default; `--rate N` runs open loop at N
// operations a second in all. The last line printed is one JSON object.
//
//   npm run bench:agent -- [--shards 48] [--clients 1024] [--payload 16] [--seconds 10]
//     [--reads 0.0] [--tls 0|1] [--rate 0] [--cpuprof 0|1] [--semispace 0] [--hedgems 0]
//
// --semispace N starts the agents' processes with V8's --max-semi-space-size=N (MiB; 0: Node's
// default), the young generation where a call's short-lived objects are collected.
// --hedgems N sets the agents' shortest hedging delay of reads (health.minHedgeMs; 0: default).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  createCertificateAuthority,
  createHostCertificate,
  writeHostFiles,
} from '../dist/index.mjs'
import { ChildClient } from '../harness/child-client.mjs'
import { loopbackAddresses } from '../harness/ports.mjs'
import { parseArgs, percentile } from './cluster.mjs'

const WORKER = new URL('./agent-worker.mjs', import.meta.url).pathname
const AGENTS = 3

const args = parseArgs(
  {
    shards: 48,
    clients: 1024,
    payload: 16,
    seconds: 10,
    reads: 0,
    tls: 0,
    rate: 0,
    cpuprof: 0,
    semispace: 0,
    hedgems: 0,
  },
  'agent.mjs [--shards N] [--clients N] [--payload BYTES] [--seconds N] [--reads SHARE]' +
    ' [--tls 0|1] [--rate OPS_PER_SEC] [--cpuprof 0|1] [--semispace MIB] [--hedgems MS]',
)
const root = mkdtempSync(join(tmpdir(), 'zongzi-bench-agent-'))
// With --cpuprof 1 each agent writes a V8 CPU profile of its main thread during the load
// alone (not start-up or shard creation) into this directory.
const profileDir = args.cpuprof ? join(tmpdir(), 'zongzi-prof') : undefined
const peers = await loopbackAddresses(AGENTS)
const execArgv = args.semispace ? [`--max-semi-space-size=${args.semispace}`] : []
const agents = await Promise.all(peers.map(() => ChildClient.start(WORKER, { execArgv })))
const ca = args.tls ? createCertificateAuthority() : undefined

const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d
try {
  await Promise.all(
    agents.map((a, i) => {
      const tls = ca
        ? writeHostFiles(join(root, `tls${i}`), ca, createHostCertificate(ca, ['127.0.0.1']))
        : undefined
      const health = args.hedgems ? { minHedgeMs: args.hedgems } : undefined
      const options = { dataDir: join(root, `agent${i}`), apiAddress: peers[i], tls, health }
      return a.call('start', { cluster: 'bench', peers, options })
    }),
  )
  const per = Math.ceil(args.shards / AGENTS)
  const made = await Promise.all(
    agents.map((a, i) =>
      a.call('createShards', { count: Math.max(0, Math.min(per, args.shards - i * per)) }),
    ),
  )
  const shards = made.flat().sort((x, y) => x - y)
  await Promise.all(agents.map((a) => a.call('ready', { shards })))

  // Client c runs on agent c % 3 and is bound to shard c % shards.
  const results = await Promise.all(
    agents.map((a, i) =>
      a.call('load', {
        shards,
        clients: Math.floor(args.clients / AGENTS) + (i < args.clients % AGENTS ? 1 : 0),
        first: i,
        stride: AGENTS,
        seconds: args.seconds,
        payload: args.payload,
        readShare: args.reads,
        rate: args.rate / AGENTS,
        profileDir,
      }),
    ),
  )
  const secs = Math.max(...results.map((r) => r.seconds))
  const all = (k) => results.flatMap((r) => r[k]).sort((x, y) => x - y)
  const lat = all('writes')
  const rlat = all('reads')
  const ms = (xs, p) => round(percentile(xs, p), 2)
  console.log(
    JSON.stringify({
      bench: 'agent',
      agents: AGENTS,
      shards: args.shards,
      clients: args.clients,
      payload: args.payload,
      readShare: args.reads,
      tls: !!args.tls,
      rate: args.rate,
      semispace: args.semispace,
      hedgems: args.hedgems,
      seconds: round(secs),
      writes_per_sec: Math.round(lat.length / secs),
      reads_per_sec: Math.round(rlat.length / secs),
      errors: results.reduce((n, r) => n + r.errors, 0),
      p50_ms: ms(lat, 0.5),
      p99_ms: ms(lat, 0.99),
      p999_ms: ms(lat, 0.999),
      read_p50_ms: ms(rlat, 0.5),
      read_p99_ms: ms(rlat, 0.99),
      cpu_pct: results.map((r) => round(r.cpuPct)),
      rss_mb: results.map((r) => Math.round(r.rssMb)),
      event_loop_p99_ms: results.map((r) => round(r.eventLoopP99Ms, 2)),
      cpu_us_per_op: round(
        (results.reduce((n, r) => n + r.cpuPct, 0) / 100 / ((lat.length + rlat.length) / secs)) *
          1e6,
      ),
      thread_pct: results.map((r) => r.threadPct),
      profiles: profileDir ? results.map((r) => r.profile) : undefined,
    }),
  )
} finally {
  await Promise.allSettled(agents.map((a) => a.call('stop')))
  for (const a of agents) if (a.child.connected) a.child.disconnect()
  await Promise.race([
    Promise.all(agents.map((a) => a.exited())),
    new Promise((r) => setTimeout(r, 10_000)),
  ])
  for (const a of agents) a.kill()
  rmSync(root, { recursive: true, force: true })
}
