// Failures that last: five agents in processes of their own (three peers, two that joined
// with tokens), three shards of three voters and clients writing on every host, then one
// lasting fault per scenario:
//   kill       a host is killed for good: every shard gets back to three voters elsewhere;
//   peer       the registry's leader (a peer) is killed for good: shard 0 gets back to three
//              voters, and the shards to theirs;
//   empty-dir  a peer restarts with an emptied data directory: it joins as a new host, its
//              old identity is marked gone and its replicas are replaced;
//   drain      a host is drained under the write load, then stops for good;
//   operator   with automatic replacement off, a peer killed for good stays in place until
//              `replaceHost` replaces it; `removeHost` then marks it gone;
//   flap       a host is stopped and resumed every second or so: it goes missing and comes
//              back, and none of its replicas is replaced.
// Each run's history is checked for linearizability (chaos/checker) and lost writes. One JSON
// line per scenario, then a summary line; the exit code is 0 only if every scenario held.
//
//   node chaos/failures.mjs [scenario ...]      (all of them by default)
//   FAILURE_RUNS=5 node chaos/failures.mjs kill (runs each scenario five times)
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { buildChecker, createShards, judge, now, sleep, startCluster, stopAll } from './cluster.mjs'
import { History } from './history.mjs'

const RUNS = Number(process.env.FAILURE_RUNS ?? 1)
const KEYS = Array.from({ length: 12 }, (_, i) => `k${i}`)
const CLIENTS = { perHost: 1, seed: 1, timeoutMs: 2000 }
const REPLACE_AFTER_MS = 2000
const options = {
  host: { tickMs: 20 },
  reconcileMs: 300,
  timeoutMs: 2000,
  liveness: { suspectMs: 300, downMs: 1000 },
  replaceAfterMs: REPLACE_AFTER_MS,
}
/** What a scenario changes of the agents' options. */
const OPTIONS = { operator: { replaceAfterMs: 0 } }
/** Failures a client may see while a host fails or leaves: each says "try again". */
const RETRYABLE = new Set([
  'ERR_TIMEOUT',
  'ERR_UNAVAILABLE',
  'ERR_NO_LEADER',
  'ERR_NOT_READY',
  'ERR_DROPPED',
  'ERR_BUSY',
  'ERR_LEADER_CHANGED',
  'ERR_OUTCOME_UNKNOWN',
])

const log = (msg) => process.stderr.write(`failures: ${msg}\n`)

/** until polls `f` every 100 ms until it returns something truthy, for up to `ms`. */
async function until(what, ms, f) {
  const end = Date.now() + ms
  for (;;) {
    const v = await f().catch(() => undefined)
    if (v) return v
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`)
    await sleep(100)
  }
}

/**
 * replicated tells whether, in `view`, shard 0 has three voters and every shard of `ids` three
 * active voters and nothing else, none of them on `without` hosts.
 */
function replicated(view, ids, without) {
  const on = (r) => !without.includes(r.hostId)
  const zero = view.replicas.filter((r) => r.shardId === 0 && !r.nonVoting)
  if (zero.length !== 3 || !zero.every(on)) return false
  return ids.every((id) => {
    const rs = view.replicas.filter((r) => r.shardId === id)
    return rs.length === 3 && rs.every((r) => on(r) && !r.nonVoting && r.status === 'active')
  })
}

/** raftAgrees tells whether every live host running a shard has its recorded voters. */
async function raftAgrees(hosts, view, ids) {
  for (const id of [0, ...ids]) {
    const want = view.replicas
      .filter((r) => r.shardId === id && !r.nonVoting)
      .map((r) => r.id)
      .sort((a, b) => a - b)
    for (const h of hosts.filter((x) => x.up && !x.paused)) {
      const got = await h.call('voters', { shardId: id })
      if (got && JSON.stringify([...got].sort((a, b) => a - b)) !== JSON.stringify(want))
        return false
    }
  }
  return true
}

/** fullyReplicated waits until the registry and Raft agree on full shards without `without`. */
async function fullyReplicated(hosts, reader, ids, without, ms = 60_000) {
  await until('every shard back to three voters', ms, async () => {
    const view = await reader.call('view')
    return replicated(view, ids, without) && (await raftAgrees(hosts, view, ids))
  })
}

/** replicasOn counts the user-shard replicas a host has in `view`. */
const replicasOn = (view, hostId) =>
  view.replicas.filter((r) => r.hostId === hostId && r.shardId !== 0).length

/** pickVictim picks the host with the most user-shard replicas among `candidates`. */
async function pickVictim(reader, candidates) {
  const view = await reader.call('view')
  return [...candidates].sort((a, b) => replicasOn(view, b.hostId) - replicasOn(view, a.hostId))[0]
}

/** registryLeader finds the host leading shard 0. */
async function registryLeader(hosts) {
  for (const h of hosts) {
    const { leads } = await h.call('leaderOf', { shardId: 0 }).catch(() => ({ leads: false }))
    if (leads) return h
  }
  return undefined
}

const SCENARIOS = {
  async kill({ hosts, ids, peers, history, shardOf, cluster }) {
    const leader = await registryLeader(hosts)
    const victim = await pickVictim(
      hosts[0],
      hosts.filter((h) => h !== leader && h !== hosts[0]),
    )
    const reader = hosts[0]
    const before = (await reader.call('view')).replicas.filter(
      (r) => r.hostId === victim.hostId && r.shardId !== 0,
    )
    log(`kill host ${victim.i} for good`)
    const t0 = Date.now()
    victim.kill()
    await fullyReplicated(hosts, reader, ids, [victim.hostId])
    const replaced_ms = Date.now() - t0
    // It comes back after all: the data of the replicas replaced meanwhile goes.
    log(`host ${victim.i} comes back`)
    await victim.start(cluster, peers, history)
    await victim.run(shardOf, CLIENTS)
    await until(
      'the returning host deleting the data of its replaced replicas',
      20_000,
      async () => {
        const stored = await victim.call('stored')
        return !before.some((r) => stored.some((x) => x.replicaId === r.id))
      },
    )
    return { reader, facts: { victim: victim.i, replicas: before.length, replaced_ms } }
  },

  async peer({ hosts, ids }) {
    const victim = (await registryLeader(hosts.slice(0, 3))) ?? hosts[1]
    log(`kill the registry leader, peer host ${victim.i}, for good`)
    const t0 = Date.now()
    victim.kill()
    const reader = hosts.find((h) => h.up)
    await fullyReplicated(hosts, reader, ids, [victim.hostId])
    return { reader, facts: { victim: victim.i, replaced_ms: Date.now() - t0 } }
  },

  async 'empty-dir'({ hosts, ids, peers, history, shardOf, cluster }) {
    const victim = hosts[2]
    const reader = hosts[0]
    const old = victim.hostId
    log(`host ${victim.i} restarts with an emptied data directory`)
    victim.kill()
    const t0 = Date.now()
    rmSync(victim.options.dataDir, { recursive: true, force: true })
    victim.options.joinToken = await reader.call('joinToken')
    await victim.start(cluster, peers, history)
    await victim.run(shardOf, CLIENTS)
    if (victim.hostId === old) throw new Error('the host came back under its old id')
    await until('the old identity marked gone', 30_000, async () => {
      const view = await reader.call('view')
      return view.hosts.find((h) => h.id === old)?.status === 'gone'
    })
    await fullyReplicated(hosts, reader, ids, [old])
    return { reader, facts: { old_id: old, new_id: victim.hostId, replaced_ms: Date.now() - t0 } }
  },

  async drain({ hosts, ids }) {
    const victim = await pickVictim(hosts[0], hosts.slice(1))
    const reader = hosts[0]
    log(`drain host ${victim.i} under load`)
    const t0 = Date.now()
    await victim.call('drain', { timeoutMs: 60_000 })
    const drained_ms = Date.now() - t0
    const view = await reader.call('view')
    if (replicasOn(view, victim.hostId) !== 0) throw new Error('the drained host has replicas')
    await fullyReplicated(hosts, reader, ids, [victim.hostId])
    await victim.call('halt') // its own clients end before it leaves
    await victim.call('stop', { drain: true })
    victim.kill()
    await until('the drained host marked gone', 10_000, async () => {
      const v = await reader.call('view')
      return v.hosts.find((h) => h.id === victim.hostId)?.status === 'gone'
    })
    return { reader, facts: { victim: victim.i, drained_ms } }
  },

  async operator({ hosts, ids }) {
    const victim = hosts[1]
    const reader = hosts[0]
    log(`kill peer host ${victim.i}; automatic replacement is off`)
    victim.kill()
    await until('the killed host marked missing', 20_000, async () => {
      const view = await reader.call('view')
      return view.hosts.find((h) => h.id === victim.hostId)?.status === 'missing'
    })
    await sleep(2 * REPLACE_AFTER_MS)
    // A peer: it holds a vote in shard 0 at least.
    const held = (await reader.call('view')).replicas.filter((r) => r.hostId === victim.hostId)
    if (!held.some((r) => r.shardId === 0)) throw new Error('replicas moved with replaceAfterMs 0')
    const t0 = Date.now()
    await reader.call('replaceHost', { hostId: victim.hostId })
    await fullyReplicated(hosts, reader, ids, [victim.hostId])
    const replaced_ms = Date.now() - t0
    await reader.call('removeHost', { hostId: victim.hostId })
    const view = await reader.call('view')
    if (view.hosts.find((h) => h.id === victim.hostId)?.status !== 'gone')
      throw new Error('the removed host is not marked gone')
    return { reader, facts: { victim: victim.i, replicas: held.length, replaced_ms } }
  },

  async flap({ hosts }) {
    const victim = await pickVictim(hosts[0], hosts.slice(1))
    const reader = hosts[0]
    log(`stop and resume host ${victim.i} every second or so`)
    const since = now()
    for (let n = 0; n < 8; n++) {
      victim.signal('SIGSTOP')
      await sleep(1500)
      victim.signal('SIGCONT')
      await sleep(1000)
    }
    const downs = (await reader.call('events', { since })).filter((e) => e.type === 'hostDown')
    if (downs.length === 0) throw new Error('the flapping host was never marked down')
    return { reader, facts: { victim: victim.i, marked_down: downs.length } }
  },
}

/** scenario runs one scenario on a cluster of its own and returns its JSON summary. */
async function scenario(name, run) {
  const root = mkdtempSync(join(tmpdir(), `zongzi-failures-${name}-`))
  const checker = buildChecker(root)
  const history = new History()
  const cluster = `failures-${name}`
  let hosts = []
  try {
    const started = await startCluster({
      root,
      cluster,
      count: 5,
      options: { ...options, ...OPTIONS[name] },
      history,
    })
    hosts = started.hosts
    const { ids, shardOf } = await createShards(hosts[0], 3, KEYS)
    for (const h of hosts) await h.run(shardOf, CLIENTS)
    await sleep(1000)
    const since = now()
    const { reader, facts } = await SCENARIOS[name]({
      hosts,
      ids,
      shardOf,
      peers: started.peers,
      history,
      cluster,
    })
    const events = await reader.call('events', { since })
    const changes = {}
    for (const e of events.filter((x) => x.type === 'membership'))
      changes[e.change] = (changes[e.change] ?? 0) + 1
    await sleep(500)
    const { pass, ...verdict } = await judge({ hosts, reader, history, shardOf, checker, root })
    const failed = failedWrites(history, since)
    const unexpected = Object.keys(failed).filter((c) => !RETRYABLE.has(c))
    const stormFree = name !== 'flap' || Object.keys(changes).length === 0
    const held = pass && unexpected.length === 0 && stormFree
    const summary = {
      scenario: name,
      run,
      held,
      ...facts,
      membership_changes: changes,
      failed_writes: failed,
      ...verdict,
    }
    if (held) rmSync(root, { recursive: true, force: true })
    else log(`${name}: kept ${root}`)
    return summary
  } catch (e) {
    log(`${name}: ${e.stack ?? e}`)
    return { scenario: name, run, held: false, error: String(e?.message ?? e) }
  } finally {
    await stopAll(hosts)
  }
}

/** failedWrites counts, by code, the writes called after `since` that a client saw fail. */
function failedWrites(history, since) {
  const out = {}
  for (const op of history.ops.values()) {
    if (op.op === 'read' || op.call < since || op.return !== undefined || !op.code) continue
    out[op.code] = (out[op.code] ?? 0) + 1
  }
  return out
}

const names = process.argv.slice(2)
for (const n of names) if (!(n in SCENARIOS)) throw new Error(`no scenario ${n}`)
const results = []
for (const name of names.length ? names : Object.keys(SCENARIOS)) {
  for (let run = 1; run <= RUNS; run++) {
    const r = await scenario(name, run)
    results.push(r)
    console.log(JSON.stringify(r))
  }
}
const medianOf = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b)
  return s.length ? s[Math.floor(s.length / 2)] : null
}
const byScenario = {}
for (const r of results) {
  byScenario[r.scenario] ??= []
  byScenario[r.scenario].push(r)
}
const summary = {
  runs: results.length,
  held: results.every((r) => r.held),
  failed: results.filter((r) => !r.held).map((r) => `${r.scenario}#${r.run}`),
  replaced_ms_median: Object.fromEntries(
    Object.entries(byScenario).map(([k, rs]) => [k, medianOf(rs.map((r) => r.replaced_ms))]),
  ),
}
console.log(JSON.stringify(summary))
process.exit(summary.held ? 0 : 1)
