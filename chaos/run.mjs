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
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { ChildClient } from '../__test__/fixtures/child-client.mjs'
import { freePort } from '../__test__/fixtures/ports.mjs'
import { History } from './history.mjs'
import { rng } from './rng.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const SECONDS = Number(process.env.CHAOS_SECONDS ?? 60)
const SEED = Number(process.env.CHAOS_SEED ?? 1)
const CLUSTER = 'chaos'
const HOSTS = 5
const SHARDS = 3
const KEYS = Array.from({ length: 24 }, (_, i) => `k${i}`)
const CLIENTS_PER_HOST = 2
const fast = { host: { tickMs: 20 }, reconcileMs: 300, timeoutMs: 2000 }

const log = (msg) => process.stderr.write(`chaos: ${msg}\n`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const now = () => Number(process.hrtime.bigint() / 1000n)

const random = rng(SEED)
const pick = (xs) => xs[Math.floor(random() * xs.length)]
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo))

/** Host is one agent process and what it takes to start it again. */
class Host {
  constructor(i, options) {
    this.i = i
    this.options = options
    this.client = undefined
    this.paused = false
  }

  get up() {
    return this.client !== undefined
  }

  async start(peers, history) {
    const c = await ChildClient.start(join(HERE, 'agent.mjs'))
    c.child.on('message', (m) => {
      if (m.invoke) history.invoke(m.invoke)
      else if (m.complete) history.complete(m.complete)
    })
    const ids = await c.call('start', { cluster: CLUSTER, peers, options: this.options })
    Object.assign(this, ids)
    this.client = c
  }

  call(op, args) {
    if (!this.client) return Promise.reject(new Error(`host ${this.i} is down`))
    return this.client.call(op, args)
  }

  kill() {
    this.client?.kill()
    this.client = undefined
  }

  signal(sig) {
    this.client?.child.kill(sig)
    this.paused = sig === 'SIGSTOP'
  }
}

async function main() {
  const root = mkdtempSync(join(tmpdir(), 'zongzi-chaos-'))
  const checker = join(root, 'checker')
  execFileSync('go', ['build', '-C', join(HERE, 'checker'), '-o', checker, '.'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const history = new History()
  const peers = []
  for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
  const hosts = Array.from(
    { length: HOSTS },
    (_, i) => new Host(i, { dataDir: join(root, `host${i}`), apiAddress: peers[i], ...fast }),
  )
  const faults = { kills: 0, stops: 0, partitions: 0, leader_kills: 0, transfers: 0 }
  const registry = { churned: 0, churn_failed: 0 }
  const recoveries = []
  let shardOf = {}
  const shardIds = []
  try {
    await Promise.all(hosts.slice(0, 3).map((h) => h.start(peers, history)))
    for (const h of hosts.slice(3)) {
      h.options.joinToken = await hosts[0].call('joinToken')
      await h.start(peers, history)
    }
    for (let s = 0; s < SHARDS; s++)
      shardIds.push(await hosts[0].call('createShard', { name: `s${s}` }))
    for (const id of shardIds) await hosts[0].call('waitForShard', { shardId: id })
    shardOf = Object.fromEntries(KEYS.map((k, i) => [k, shardIds[i % SHARDS]]))
    log(`cluster up: ${HOSTS} hosts, shards ${shardIds.join(', ')}; seed ${SEED}, ${SECONDS} s`)

    // Each incarnation of a host runs clients of its own ids, so every written value is new.
    const run = (h) => {
      h.runs = (h.runs ?? 0) + 1
      const base = h.runs * 1000 + h.i * 100
      const clients = Array.from({ length: CLIENTS_PER_HOST }, (_, c) => base + c)
      return h.call('run', {
        clients,
        keys: KEYS,
        shardOf,
        seed: SEED * 100_000 + base,
        timeoutMs: 2000,
      })
    }
    for (const h of hosts) await run(h)

    const restart = async (h) => {
      await h.start(peers, history)
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
    await Promise.all(hosts.map((h) => h.call('halt')))

    // Final linearizable reads, in the history too, then every replica's view of every key.
    const finals = {}
    for (const k of KEYS) {
      const id = `final.${k}`
      history.invoke({ id, client: 9999, key: k, op: 'read', call: now() })
      finals[k] = await hosts[0].call('read', { key: k, shardId: shardOf[k] })
      history.complete({ id, return: now(), value: finals[k] })
    }
    const converged = await convergence(hosts, shardOf)
    const input = join(root, 'history.jsonl')
    writeFileSync(input, `${history.lines().join('\n')}\n`)
    const checked = spawnSync(checker, [], { input: `${history.lines().join('\n')}\n` })
    const verdict = JSON.parse(checked.stdout.toString().trim().split('\n').at(-1) || '{}')
    const times = recoveries
      .map((h) => history.recovery(h, shardOf))
      .filter((x) => x !== null)
      .sort((a, b) => a - b)
    const summary = {
      seconds: SECONDS,
      seed: SEED,
      hosts: HOSTS,
      shards: SHARDS,
      keys: KEYS.length,
      ...history.counts(),
      ...faults,
      ...registry,
      linearizable: verdict.linearizable === true,
      checker_timed_out: verdict.timed_out === true,
      lost_writes: history.lostWrites(finals),
      converged,
      recovery_ms_median: times.length ? Math.round(times[Math.floor(times.length / 2)]) : null,
      recovery_ms_max: times.length ? Math.round(times.at(-1)) : null,
      faults_without_recovery: recoveries.length - times.length,
    }
    const pass = summary.linearizable && summary.lost_writes === 0 && converged
    if (!pass) log(`history kept in ${input}`)
    console.log(JSON.stringify(summary))
    return { pass, root }
  } finally {
    for (const h of hosts) {
      if (h.paused) h.signal('SIGCONT')
      await h.call('stop').catch(() => {})
      h.kill()
    }
  }
}

/**
 * convergence waits (up to 20 s) until every host that runs a replica of a shard reads the
 * same value of each of its keys.
 */
async function convergence(hosts, shardOf) {
  const keys = Object.keys(shardOf)
  for (let tries = 0; tries < 100; tries++) {
    const views = await Promise.all(hosts.map((h) => h.call('values', { keys, shardOf })))
    const same = keys.every((k) => {
      const seen = views.filter((v) => k in v).map((v) => v[k])
      return seen.length >= 3 && seen.every((x) => x === seen[0])
    })
    if (same) return true
    await sleep(200)
  }
  return false
}

const { pass, root } = await main()
if (pass) rmSync(root, { recursive: true, force: true })
process.exit(pass ? 0 : 1)
