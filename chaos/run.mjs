// The chaos suite: five agents in processes of their own on loopback (three peers, two that
// join with tokens), three user shards of three replicas, and clients on every host reading,
// writing and compare-and-setting 24 keys, while a nemesis kills and restarts hosts, pauses
// them, cuts the Raft links between groups of hosts, kills the registry's leader and moves
// shards' leadership. Then the faults stop, and the history goes to a linearizability
// checker (porcupine, chaos/checker); no acknowledged write may be lost, and the replicas
// must converge. The last line printed is one JSON summary; the exit code is 0 only if all
// of it holds.
//
//   npm run test:chaos                       (60 s, seed 1)
//   CHAOS_SECONDS=600 CHAOS_SEED=7 npm run test:chaos
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  buildChecker,
  createShards,
  exitWith,
  judge,
  now,
  sleep,
  startCluster,
  stopAll,
} from './cluster.mjs'
import { History } from './history.mjs'
import { rng } from './rng.mjs'

const SECONDS = Number(process.env.CHAOS_SECONDS ?? 60)
const SEED = Number(process.env.CHAOS_SEED ?? 1)
const CLUSTER = 'chaos'
const HOSTS = 5
const SHARDS = 3
const KEYS = Array.from({ length: 24 }, (_, i) => `k${i}`)
const CLIENTS = { perHost: 2, seed: SEED, timeoutMs: 2000 }
const fast = { host: { tickMs: 20 }, reconcileMs: 300, timeoutMs: 2000 }

const log = (msg) => process.stderr.write(`chaos: ${msg}\n`)

const random = rng(SEED)
const pick = (xs) => xs[Math.floor(random() * xs.length)]
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo))

async function main() {
  const root = mkdtempSync(join(tmpdir(), 'zongzi-chaos-'))
  const checker = buildChecker(root)
  const history = new History()
  const faults = { kills: 0, stops: 0, partitions: 0, leader_kills: 0, transfers: 0 }
  const registry = { churned: 0, churn_failed: 0 }
  const recoveries = []
  let hosts = []
  try {
    const started = await startCluster({
      root,
      cluster: CLUSTER,
      count: HOSTS,
      options: fast,
      history,
    })
    hosts = started.hosts
    const { peers } = started
    const { ids: shardIds, shardOf } = await createShards(hosts[0], SHARDS, KEYS)
    log(`cluster up: ${HOSTS} hosts, shards ${shardIds.join(', ')}; seed ${SEED}, ${SECONDS} s`)
    const run = (h) => h.run(shardOf, CLIENTS)
    for (const h of hosts) await run(h)

    const restart = async (h) => {
      await h.start(CLUSTER, peers, history)
      await run(h)
    }
    const end = Date.now() + SECONDS * 1000
    // Registry activity all along: shards created, filled with replicas and deleted.
    const churning = (async () => {
      for (let n = 0; Date.now() < end; n++) {
        const h = pick(hosts.filter((x) => x.up && !x.paused))
        const ok = await h
          ?.call('churn', { name: `churn-${n}` })
          .then(() => true)
          .catch(() => false)
        if (ok) registry.churned++
        else registry.churn_failed++
        await sleep(between(500, 1500))
      }
    })()
    while (Date.now() < end) {
      await sleep(between(1000, 2000))
      const kind = pick(['kill', 'pause', 'partition', 'leader', 'transfer'])
      const up = hosts.filter((h) => h.up)
      let healedAt
      if (kind === 'kill') {
        const h = pick(up)
        log(`kill host ${h.i}`)
        h.kill()
        faults.kills++
        await sleep(between(500, 2500))
        await restart(h)
        healedAt = now()
      } else if (kind === 'pause') {
        const h = pick(up)
        log(`pause host ${h.i}`)
        h.signal('SIGSTOP')
        faults.stops++
        await sleep(between(500, 2500))
        h.signal('SIGCONT')
        healedAt = now()
      } else if (kind === 'partition') {
        const minority = new Set()
        const size = between(1, 3)
        while (minority.size < size) minority.add(pick(up).i)
        log(`partition {${[...minority].join(',')}} from the rest`)
        const side = (h) => minority.has(h.i)
        await Promise.all(
          up.map((h) =>
            h.call('cut', {
              addresses: hosts.filter((o) => side(o) !== side(h)).map((o) => o.raftAddress),
            }),
          ),
        )
        faults.partitions++
        await sleep(between(1000, 3000))
        await Promise.all(up.map((h) => h.call('cut', { addresses: [] }).catch(() => {})))
        healedAt = now()
      } else if (kind === 'leader') {
        const leads = await Promise.all(
          up.map((h) => h.call('leaderOf', { shardId: 0 }).catch(() => ({ leads: false }))),
        )
        const h = up[leads.findIndex((l) => l.leads)]
        if (!h) continue
        log(`kill the registry leader, host ${h.i}`)
        h.kill()
        faults.leader_kills++
        await sleep(between(500, 2000))
        await restart(h)
        healedAt = now()
      } else {
        const shardId = pick(shardIds)
        const leads = await Promise.all(
          up.map((h) => h.call('leaderOf', { shardId }).catch(() => ({ leads: false }))),
        )
        const leader = up[leads.findIndex((l) => l.leads)]
        const to = pick(up.filter((h) => h !== leader))
        if (!leader || !to) continue
        log(`move shard ${shardId}'s leadership to host ${to.i}`)
        await leader.call('transfer', { shardId, hostId: to.hostId }).catch(() => {})
        faults.transfers++
        healedAt = now()
      }
      recoveries.push(healedAt)
    }
    await churning
    log('faults stop')
    await sleep(3000)
    const verdict = await judge({ hosts, reader: hosts[0], history, shardOf, checker, root })
    const times = recoveries
      .map((h) => history.recovery(h, shardOf))
      .filter((x) => x !== null)
      .sort((a, b) => a - b)
    const { pass, ...checked } = verdict
    const summary = {
      seconds: SECONDS,
      seed: SEED,
      hosts: HOSTS,
      shards: SHARDS,
      keys: KEYS.length,
      ...checked,
      ...faults,
      ...registry,
      recovery_ms_median: times.length ? Math.round(times[Math.floor(times.length / 2)]) : null,
      recovery_ms_max: times.length ? Math.round(times.at(-1)) : null,
      faults_without_recovery: recoveries.length - times.length,
    }
    if (!pass) log(`history kept in ${join(root, 'history.jsonl')}`)
    console.log(JSON.stringify(summary))
    return { pass, root }
  } finally {
    await stopAll(hosts)
  }
}

await exitWith(main)
