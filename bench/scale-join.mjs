// Join benchmark: --agents agents (bench/scale-cluster.mjs) with --shards shards of 3 voters,
// left until every replica is active and the leaders settled; then, under a light write load
// (--writes per second, one after another, over all shards, from the first agent), one more
// agent joins and rebalancing moves its share of replicas to it. It prints, as its last line,
// one JSON object:
// - before, after, end: replicas and leaders per host and their max over mean, before the
//   join, once the new agent has its share of replicas, and at the end (or the timeout);
// - shareMs: from the join until the new agent holds at least the mean over 1.2 of the
//   replicas, all active; leadersShareMs: the same for the leaders it leads; evenMs: until
//   replicas per host differ by 2 at most, all active (null if not by --timeout);
// - writes, failedWrites: the writes made from the join until the end, and those that failed.
// Agent defaults (changesPerSecond 4) unless --changesPerSecond is given.
//
//   npm run bench:scale-join -- --shards 300 --agents 6 [--writes 20] [--timeout 300]
import { balance, round, ScaleCluster, sleep } from './scale-cluster.mjs'
import { parseArgs } from './cluster.mjs'

const args = parseArgs(
  { shards: 300, agents: 6, writes: 20, timeout: 300, changesPerSecond: 0, settle: 30 },
  'node bench/scale-join.mjs --shards N --agents M [--writes PER_S] [--timeout S] ' +
    '[--changesPerSecond N] [--settle S]',
)
const cluster = new ScaleCluster(
  args.changesPerSecond ? { changesPerSecond: args.changesPerSecond } : {},
)

/** share is the part of replicas (all active) and of leaders that `hostId` holds. */
function share(sp, hostId) {
  const hosts = Object.values(sp.hosts)
  const mean = (k) => hosts.reduce((n, h) => n + h[k], 0) / hosts.length
  const h = sp.hosts[hostId] ?? { replicas: 0, active: 0, leaders: 0 }
  return {
    replicas: h.active === h.replicas && h.active >= mean('replicas') / 1.2,
    leaders: h.leaders >= mean('leaders') / 1.2,
  }
}

/** even tells whether replicas per host differ by 2 at most, every one active. */
function even(sp) {
  const hosts = Object.values(sp.hosts)
  const n = hosts.map((h) => h.replicas)
  return hosts.every((h) => h.active === h.replicas) && Math.max(...n) - Math.min(...n) <= 2
}

try {
  await cluster.start(args.agents)
  const ids = await cluster.createShards(args.shards)
  await cluster.waitActive(args.shards * 3, args.timeout * 1000)
  // Leaders settle: until they are within 1.2 of the mean, or --settle seconds.
  let sp = await cluster.spread()
  for (let t = 0; t < args.settle * 10 && balance(sp).leadersMaxOverMean > 1.2; t++) {
    await sleep(100)
    sp = await cluster.spread()
  }
  const before = balance(sp)
  console.error(`${args.shards} shards on ${args.agents} agents: ${JSON.stringify(before)}`)

  let writing = true
  let writes = 0
  let failedWrites = 0
  const errors = new Map()
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const t = performance.now()
      try {
        const shardId = ids[i % ids.length]
        await cluster.first.call('propose', { shardId, key: `k${i}`, value: `${i}` })
        writes++
      } catch (e) {
        failedWrites++
        errors.set(e.code ?? e.message, (errors.get(e.code ?? e.message) ?? 0) + 1)
      }
      await sleep(Math.max(0, 1000 / args.writes - (performance.now() - t)))
    }
  })()

  const t0 = performance.now()
  const newcomer = await cluster.join()
  let shareMs = null
  let leadersShareMs = null
  let evenMs = null
  let after
  while (performance.now() - t0 < args.timeout * 1000) {
    sp = await cluster.spread()
    const s = share(sp, newcomer)
    const ms = Math.round(performance.now() - t0)
    if (s.replicas && shareMs === null) {
      shareMs = ms
      after = balance(sp)
    }
    if (s.leaders && leadersShareMs === null) leadersShareMs = ms
    if (evenMs === null && even(sp)) evenMs = ms
    if (shareMs !== null && leadersShareMs !== null && evenMs !== null) break
    await sleep(250)
  }
  writing = false
  await writer
  console.error(`the new agent had its share in ${round((shareMs ?? Number.NaN) / 1000, 1)} s`)
  console.log(
    JSON.stringify({
      shards: args.shards,
      agents: args.agents,
      before,
      after: after ?? balance(sp),
      end: balance(sp),
      shareMs,
      leadersShareMs,
      evenMs,
      writes,
      failedWrites,
      ...(errors.size ? { errors: Object.fromEntries(errors) } : {}),
    }),
  )
} finally {
  await cluster.close()
}
