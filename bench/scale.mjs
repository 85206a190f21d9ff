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
import { balance, round, ScaleCluster, sleep } from './scale-cluster.mjs'
import { parseArgs } from './cluster.mjs'

const args = parseArgs(
  { shards: 200, agents: 3, idle: 10, timeout: 600, reconcileMs: 0 },
  'node bench/scale.mjs --shards N --agents M [--idle S] [--timeout S] [--reconcileMs MS]',
)
const cluster = new ScaleCluster(args.reconcileMs ? { reconcileMs: args.reconcileMs } : {})

try {
  await cluster.start(args.agents)
  const agents = cluster.agents
  const t0 = performance.now()
  // Created from every agent at once, as many callers would.
  await cluster.createShards(args.shards)
  const createMs = performance.now() - t0
  await cluster.waitActive(args.shards * 3, args.timeout * 1000 - (performance.now() - t0))
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
  const sp = await cluster.spread({ bytes: true })
  console.log(
    JSON.stringify({
      shards: args.shards,
      agents: args.agents,
      createMs: Math.round(createMs),
      activeMs: Math.round(activeMs),
      ...balance(sp),
      idleCpuPct,
      rssMb: after.map((u) => Math.round(u.rss / 2 ** 20)),
      snapshotBytes: sp.snapshotBytes,
    }),
  )
} finally {
  await cluster.close()
}
