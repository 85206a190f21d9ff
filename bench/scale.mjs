// Scale benchmark: --agents agents in processes of their own (harness/agent-process.mjs; the
// first three are the peers, the others join with tokens), --shards shards of 3 voters of a
// KV state machine created at once, then an idle cluster measured for --idle seconds. It
// prints, as its last line, one JSON object:
// - createMs: from the first createShard to the last one answered;
// - activeMs: from the first createShard until the registry lists every replica active;
// - replicasMaxOverMean, leadersMaxOverMean: the most loaded host over the mean, by replicas
//   and by leaders of user shards (leaders as the registry records them);
// - idleCpuPct: per agent, its process's CPU time (every thread) over --idle seconds, in % of
//   one core; rssMb: per agent, resident memory after the idle time;
// - snapshotBytes: the size of the registry's snapshot (JSON Lines).
// Engine and agent defaults unless --reconcileMs is given.
//
//   npm run bench:scale -- --shards 200 --agents 3 [--idle 10] [--timeout 600]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { ChildClient } from '../harness/child-client.mjs'
import { loopbackAddresses } from '../harness/ports.mjs'
import { parseArgs } from './cluster.mjs'

const FIXTURE = new URL('../harness/agent-process.mjs', import.meta.url).pathname
const CLUSTER = 'scale'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d

const args = parseArgs(
  { shards: 200, agents: 3, idle: 10, timeout: 600, reconcileMs: 0 },
  'node bench/scale.mjs --shards N --agents M [--idle S] [--timeout S] [--reconcileMs MS]',
)
const root = mkdtempSync(join(tmpdir(), 'zongzi-scale-'))
const peers = await loopbackAddresses(3)
const agents = []
const options = (i, joinToken) => ({
  dataDir: join(root, `agent${i}`),
  apiAddress: i < 3 ? peers[i] : undefined,
  joinToken,
  ...(args.reconcileMs ? { reconcileMs: args.reconcileMs } : {}),
})
const start = async (i, joinToken) => {
  const c = await ChildClient.start(FIXTURE)
  agents[i] = c
  await c.call('start', { cluster: CLUSTER, peers, options: options(i, joinToken), types: ['kv'] })
  return c
}

/** maxOverMean is the largest of `xs` over their mean (1 when all are 0). */
const maxOverMean = (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length
  return mean === 0 ? 1 : round(Math.max(...xs) / mean)
}

try {
  await Promise.all([0, 1, 2].filter((i) => i < Math.max(3, args.agents)).map((i) => start(i)))
  const first = agents[0]
  for (let i = 3; i < args.agents; i++) {
    await start(i, await first.call('joinToken', { ttlMs: 600_000 }))
  }
  // Every host in the registry as active before shards are placed.
  for (;;) {
    const sp = await first.call('spread')
    if (Object.keys(sp.hosts).length >= args.agents) break
    await sleep(100)
  }

  const t0 = performance.now()
  // Created from every agent at once, as many callers would.
  const perAgent = Math.ceil(args.shards / args.agents)
  await Promise.all(
    agents.map((a, i) =>
      a.call('createShards', {
        type: 'kv',
        count: Math.max(0, Math.min(perAgent, args.shards - i * perAgent)),
        placement: { members: { count: 3 } },
      }),
    ),
  )
  const createMs = performance.now() - t0
  const want = args.shards * 3
  let sp
  for (;;) {
    sp = await first.call('spread')
    const active = Object.values(sp.hosts).reduce((n, h) => n + h.active, 0)
    if (active >= want) break
    if (performance.now() - t0 > args.timeout * 1000) {
      throw new Error(`only ${active} of ${want} replicas active after ${args.timeout} s`)
    }
    // A poll walks every replica on the agent it asks: less often on large registries.
    await sleep(Math.max(100, args.shards / 20))
  }
  const activeMs = performance.now() - t0
  console.error(
    `${args.shards} shards on ${args.agents} agents active in ${round(activeMs / 1000, 1)} s`,
  )

  // Leaders as the registry records them settle a little after activation.
  await sleep(2000)
  const before = await Promise.all(agents.map((a) => a.call('usage')))
  const t1 = performance.now()
  await sleep(args.idle * 1000)
  const after = await Promise.all(agents.map((a) => a.call('usage')))
  const wallUs = (performance.now() - t1) * 1000
  const idleCpuPct = after.map((u, i) => {
    const b = before[i].cpu
    return round((100 * (u.cpu.user - b.user + u.cpu.system - b.system)) / wallUs)
  })
  sp = await first.call('spread', { bytes: true })
  const hosts = Object.values(sp.hosts)
  console.log(
    JSON.stringify({
      shards: args.shards,
      agents: args.agents,
      createMs: Math.round(createMs),
      activeMs: Math.round(activeMs),
      replicasPerHost: hosts.map((h) => h.replicas),
      replicasMaxOverMean: maxOverMean(hosts.map((h) => h.replicas)),
      leadersPerHost: hosts.map((h) => h.leaders),
      leadersMaxOverMean: maxOverMean(hosts.map((h) => h.leaders)),
      idleCpuPct,
      rssMb: after.map((u) => Math.round(u.rss / 2 ** 20)),
      snapshotBytes: sp.snapshotBytes,
    }),
  )
} finally {
  await Promise.allSettled(agents.map((a) => a.call('stop')))
  // Let the children exit on their own (a --cpu-prof profile is written at exit).
  for (const a of agents) a.child.disconnect()
  await Promise.race([Promise.all(agents.map((a) => a.exited())), sleep(10_000)])
  for (const a of agents) a.kill()
  rmSync(root, { recursive: true, force: true })
}
