// Shared by the scale benchmarks (bench/scale.mjs, bench/scale-join.mjs): agents in processes
// of their own (harness/agent-process.mjs) on loopback, the first three of them the peers, and
// what the benchmarks read of them.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { ChildClient } from '../harness/child-client.mjs'
import { loopbackAddresses } from '../harness/ports.mjs'

const FIXTURE = new URL('../harness/agent-process.mjs', import.meta.url).pathname
const CLUSTER = 'scale'

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
export const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d

/** maxOverMean is the largest of `xs` over their mean (1 when all are 0). */
export const maxOverMean = (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length
  return mean === 0 ? 1 : round(Math.max(...xs) / mean)
}

/**
 * ScaleCluster runs agents in child processes: `start(n)` starts the three peers and joins
 * the rest with tokens, `join()` one more; `close()` stops them and removes their data.
 * `options` are the agents' options beyond their addresses and data directories.
 */
export class ScaleCluster {
  /** @type {ChildClient[]} */
  agents = []
  #root = mkdtempSync(join(tmpdir(), 'zongzi-scale-'))
  #peers = []

  constructor(options = {}) {
    this.options = options
  }

  get first() {
    return this.agents[0]
  }

  async #start(i, joinToken) {
    const c = await ChildClient.start(FIXTURE)
    this.agents[i] = c
    const options = {
      dataDir: join(this.#root, `agent${i}`),
      apiAddress: i < 3 ? this.#peers[i] : undefined,
      joinToken,
      ...this.options,
    }
    const started = await c.call('start', {
      cluster: CLUSTER,
      peers: this.#peers,
      options,
      types: ['kv'],
    })
    return started.hostId
  }

  /** start starts `n` agents (three at least) and waits until the registry lists them all. */
  async start(n) {
    this.#peers = await loopbackAddresses(3)
    await Promise.all([0, 1, 2].map((i) => this.#start(i)))
    for (let i = 3; i < n; i++) await this.join()
    for (;;) {
      const sp = await this.first.call('spread')
      if (Object.keys(sp.hosts).length >= Math.max(3, n)) return
      await sleep(100)
    }
  }

  /** join starts one more agent, which joins with a token; it resolves with its host id. */
  async join() {
    const token = await this.first.call('joinToken', { ttlMs: 600_000 })
    return this.#start(this.agents.length, token)
  }

  /** createShards creates `count` shards of 3 voters from every agent at once. */
  async createShards(count) {
    const perAgent = Math.ceil(count / this.agents.length)
    const made = await Promise.all(
      this.agents.map((a, i) =>
        a.call('createShards', {
          type: 'kv',
          count: Math.max(0, Math.min(perAgent, count - i * perAgent)),
          placement: { members: { count: 3 } },
        }),
      ),
    )
    return made.flat()
  }

  /**
   * spread is the first agent's view of replicas and leaders per host (see agent-process),
   * with the registry snapshot's size when `o.bytes` is set.
   */
  spread(o = {}) {
    return this.first.call('spread', o)
  }

  /** waitActive waits until `want` replicas of user shards are active, or `timeoutMs` passed. */
  async waitActive(want, timeoutMs) {
    const t0 = performance.now()
    for (;;) {
      const sp = await this.spread()
      const active = Object.values(sp.hosts).reduce((n, h) => n + h.active, 0)
      if (active >= want) return sp
      if (performance.now() - t0 > timeoutMs) {
        throw new Error(`only ${active} of ${want} replicas active after ${timeoutMs} ms`)
      }
      // A poll walks every replica on the agent it asks: less often on large registries.
      await sleep(Math.max(100, want / 60))
    }
  }

  async close() {
    const agents = this.agents
    await Promise.allSettled(agents.map((a) => a.call('stop')))
    // Let the children exit on their own (a --cpu-prof profile is written at exit).
    for (const a of agents) a.child.disconnect()
    await Promise.race([Promise.all(agents.map((a) => a.exited())), sleep(10_000)])
    for (const a of agents) a.kill()
    rmSync(this.#root, { recursive: true, force: true })
  }
}

/** balance is the replicas and leaders per host of a spread, each with its max over mean. */
export function balance(sp) {
  const hosts = Object.values(sp.hosts)
  const replicas = hosts.map((h) => h.replicas)
  const leaders = hosts.map((h) => h.leaders)
  return {
    replicasPerHost: replicas,
    replicasMaxOverMean: maxOverMean(replicas),
    leadersPerHost: leaders,
    leadersMaxOverMean: maxOverMean(leaders),
  }
}
