// The process cluster the chaos suites share: agents in processes of their own (chaos/agent.mjs)
// whose clients report every operation to one History, the porcupine checker that judges it,
// and the final reads and convergence check that end a run.
import { execFileSync, spawnSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { ChildClient } from '../harness/child-client.mjs'
import { loopbackAddresses } from '../harness/ports.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** now is the time on the machine's monotonic clock, which every process shares, in µs. */
export const now = () => Number(process.hrtime.bigint() / 1000n)

/** AGENT is the script of one host's process (chaos/agent.mjs). */
export const AGENT = join(HERE, 'agent.mjs')

/**
 * Host is one agent process and what it takes to start it again; `script` is the agent's
 * script (AGENT, or one of another build: see chaos/upgrade.mjs).
 */
export class Host {
  constructor(i, options, script = AGENT) {
    this.i = i
    this.options = options
    this.script = script
    this.client = undefined
    this.paused = false
    /** Each start runs clients of new ids, so that every written value is new. */
    this.runs = 0
  }

  get up() {
    return this.client !== undefined
  }

  async start(cluster, peers, history) {
    const c = await ChildClient.start(this.script)
    c.child.on('message', (m) => {
      if (m.invoke) history.invoke(m.invoke)
      else if (m.complete) history.complete(m.complete)
    })
    const ids = await c.call('start', { cluster, peers, options: this.options }).catch((e) => {
      c.kill()
      throw e
    })
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

  /** run starts `perHost` clients on this host over the keys of `shardOf`. */
  run(shardOf, o) {
    this.runs++
    const base = this.runs * 1000 + this.i * 100
    const clients = Array.from({ length: o.perHost }, (_, c) => base + c)
    return this.call('run', {
      clients,
      keys: Object.keys(shardOf),
      shardOf,
      seed: o.seed * 100_000 + base,
      timeoutMs: o.timeoutMs,
    })
  }
}

/** buildChecker builds the porcupine checker into `root` and returns its path. */
export function buildChecker(root) {
  const checker = join(root, 'checker')
  execFileSync('go', ['build', '-C', join(HERE, 'checker'), '-o', checker, '.'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  return checker
}

/**
 * startCluster starts `count` agents in `root`: three peers, the rest joining with tokens,
 * each with `options` (and a data directory of its own), running `script` (default AGENT).
 */
export async function startCluster({ root, cluster, count, options, history, script }) {
  const peers = await loopbackAddresses(3)
  const hosts = Array.from(
    { length: count },
    (_, i) =>
      new Host(
        i,
        {
          dataDir: join(root, `host${i}`),
          ...(i < 3 ? { apiAddress: peers[i] } : {}),
          ...options,
        },
        script,
      ),
  )
  await Promise.all(hosts.slice(0, 3).map((h) => h.start(cluster, peers, history)))
  for (const h of hosts.slice(3)) {
    h.options.joinToken = await hosts[0].call('joinToken')
    await h.start(cluster, peers, history)
  }
  return { hosts, peers }
}

/** createShards creates `count` shards of three voters and maps `keys` over them. */
export async function createShards(host, count, keys, prefix = 's') {
  const ids = []
  for (let s = 0; s < count; s++)
    ids.push(await host.call('createShard', { name: `${prefix}${s}` }))
  for (const id of ids) await host.call('waitForShard', { shardId: id })
  return { ids, shardOf: Object.fromEntries(keys.map((k, i) => [k, ids[i % count]])) }
}

/**
 * judge halts the clients, reads every key once more (into the history too), and checks the
 * history with the checker: linearizable, no acknowledged write lost, and every host that runs
 * a shard reads the same values.
 */
export async function judge({ hosts, reader, history, shardOf, checker, root }) {
  const up = hosts.filter((h) => h.up)
  await Promise.all(up.map((h) => h.call('halt')))
  const finals = {}
  for (const k of Object.keys(shardOf)) {
    const id = `final.${k}`
    history.invoke({ id, client: 9999, key: k, op: 'read', call: now() })
    finals[k] = await reader.call('read', { key: k, shardId: shardOf[k] })
    history.complete({ id, return: now(), value: finals[k] })
  }
  const converged = await convergence(up, shardOf)
  const input = `${history.lines().join('\n')}\n`
  const checked = spawnSync(checker, [], { input })
  const verdict = JSON.parse(checked.stdout.toString().trim().split('\n').at(-1) || '{}')
  const out = {
    ...history.counts(),
    linearizable: verdict.linearizable === true,
    checker_timed_out: verdict.timed_out === true,
    lost_writes: history.lostWrites(finals),
    converged,
  }
  const pass = out.linearizable && out.lost_writes === 0 && converged
  if (!pass) writeFileSync(join(root, 'history.jsonl'), input)
  return { ...out, pass }
}

/**
 * convergence waits (up to 20 s) until every host that runs a replica of a shard reads the
 * same value of each of its keys, from three replicas or more.
 */
export async function convergence(hosts, shardOf) {
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

/** stopAll stops every host (resuming a paused one first) and ends its process. */
export async function stopAll(hosts) {
  for (const h of hosts) {
    if (h.paused) h.signal('SIGCONT')
    await h.call('stop').catch(() => {})
    h.kill()
  }
}

/**
 * exitWith runs a suite's `main` (resolving to `{ pass, root }`), removes its directory when
 * it passed (a failure's is kept to look at), and exits 0 or 1.
 */
export async function exitWith(main) {
  const { pass, root } = await main()
  if (pass) rmSync(root, { recursive: true, force: true })
  process.exit(pass ? 0 : 1)
}
