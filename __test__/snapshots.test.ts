import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { Host } from '../ts/index'
import { Recorder } from './fixtures/recorder.mjs'
import { replicaId as rid, retry, TempDirs, waitUntil } from './helpers'

// Snapshots taken while TypeScript state machines apply batches of many shards hold exactly
// the state after their index: restoring one never applies an entry twice.

const CLUSTER = 12
const SHARDS = [1, 2, 3]
const OPTS = { clusterId: CLUSTER, tickMs: 10, snapshotEntries: 20, compactionOverhead: 5 }
const dirs = new TempDirs('zongzi-snap-')
const open: Host[] = []

afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()))
  dirs.removeAll()
})

/** Cluster is three hosts in this process whose replicas are recorders. */
class Cluster {
  readonly dirs = [0, 1, 2].map(() => dirs.make())
  readonly hosts: Array<Host | undefined> = []
  readonly addresses: string[] = []
  /** recorders[host].get(shard) is the running replica's state machine. */
  readonly recorders = [0, 1, 2].map(() => new Map<number, Recorder>())

  async start(): Promise<void> {
    for (const [i, d] of this.dirs.entries()) {
      const h = Host.open({ ...OPTS, dataDir: d })
      open.push(h)
      this.hosts[i] = h
      this.addresses[i] = h.address
    }
    for (const s of SHARDS) {
      const voters = this.addresses.map((address, i) => ({ replicaId: rid(s, i), address }))
      await Promise.all(
        this.hosts.map((h, i) =>
          h?.startReplica(s, rid(s, i), { mode: 'bootstrap', voters }, () => this.make(i, s)),
        ),
      )
    }
  }

  make(host: number, shard: number): Recorder {
    const r = new Recorder()
    this.recorders[host].set(shard, r)
    return r
  }

  async stop(i: number): Promise<void> {
    await this.hosts[i]?.close()
    this.hosts[i] = undefined
  }

  /** restart reopens host `i` on its old address and restarts its replicas from disk. */
  async restart(i: number): Promise<void> {
    await this.stop(i)
    const h = Host.open({ ...OPTS, dataDir: this.dirs[i], listenAddress: this.addresses[i] })
    open.push(h)
    this.hosts[i] = h
    for (const r of h.storedReplicas()) {
      await h.startReplica(r.shardId, r.replicaId, { mode: 'restart' }, () =>
        this.make(i, r.shardId),
      )
    }
  }

  /** load runs 12 concurrent writers per shard, each proposing `n` times through `via`. */
  async load(via: number[], n: number): Promise<void> {
    const writers = SHARDS.flatMap((s) =>
      Array.from({ length: 12 }, async (_, w) => {
        const h = via[w % via.length]
        for (let k = 0; k < n; k++) await retry(() => this.host(h).propose(s, Buffer.from('x')))
      }),
    )
    await Promise.all(writers)
  }

  host(i: number): Host {
    const h = this.hosts[i]
    if (!h) throw new Error(`host ${i} is stopped`)
    return h
  }

  /** converge waits until all replicas of every shard applied the same, then compares. */
  async converge(): Promise<void> {
    for (const s of SHARDS) {
      for (const [i] of this.hosts.entries()) await retry(() => this.host(i).readIndex(s))
      let seen: number[][] = []
      // A wait that runs out is not the failure itself: the comparisons below say what differs.
      await waitUntil(
        () => {
          seen = this.recorders.map((m) => m.get(s)?.seen ?? [])
          return seen.every((a) => a.length === seen[0].length && a.at(-1) === seen[0].at(-1))
        },
        { timeoutMs: 10_000, intervalMs: 20 },
      ).catch(() => undefined)
      for (const [i, a] of seen.entries()) {
        // A recovery is told the index its snapshot covers, and the snapshot goes no further.
        for (const r of this.recorders[i].get(s)?.recoveries ?? []) {
          expect(Number.isInteger(r.index) && r.index >= r.last, JSON.stringify(r)).toBe(true)
        }
        expect(increasing(a), `host ${i} shard ${s} applied an entry twice`).toBe(true)
        expect(a, `host ${i} shard ${s} differs from host 0`).toEqual(seen[0])
      }
    }
  }
}

const increasing = (a: number[]) => a.every((v, i) => i === 0 || a[i - 1] < v)

/** Watch reads every snapshot file while the test runs and keeps those ahead of their label. */
class Watch {
  readonly checked = new Set<string>()
  readonly ahead: string[] = []
  readonly #timer: NodeJS.Timeout

  constructor(dataDirs: string[]) {
    this.#timer = setInterval(() => {
      for (const [h, d] of dataDirs.entries()) {
        for (const s of SHARDS) this.#scan(h, join(d, 'snapshots', String(s)), s)
      }
    }, 5)
  }

  #scan(host: number, dir: string, shard: number): void {
    let names: string[] = []
    try {
      names = readdirSync(dir)
    } catch {
      return
    }
    for (const name of names) {
      const m = /^snap-(\d+)$/.exec(name)
      const key = `${host}/${shard}/${name}`
      if (!m || this.checked.has(key)) continue
      let held: number[]
      try {
        const sm = stateMachineBytes(readFileSync(join(dir, name))).toString()
        held = JSON.parse(sm || '[]')
      } catch {
        continue // pruned while being read
      }
      this.checked.add(key)
      const last = held.at(-1) ?? 0
      if (last > Number(m[1])) this.ahead.push(`host ${host} shard ${shard}: ${name} holds ${last}`)
    }
  }

  finish(): void {
    clearInterval(this.#timer)
    expect(this.checked.size).toBeGreaterThan(0)
    expect(this.ahead, `${this.ahead.length} of ${this.checked.size} snapshots ahead`).toEqual([])
  }
}

/**
 * stateMachineBytes returns what a snapshot file holds after the engine's session table (its
 * magic, its length as a little-endian u64, the table): the state machine's own bytes.
 */
function stateMachineBytes(file: Buffer): Buffer {
  expect(file.subarray(0, 8).toString()).toBe('ZZSESS01')
  return file.subarray(16 + Number(file.readBigUInt64LE(8)))
}

describe('snapshots of TypeScript state machines', () => {
  it('hold exactly their index under load, and every host restarted from disk agrees', async () => {
    const c = new Cluster()
    await c.start()
    const watch = new Watch(c.dirs)
    await c.load([0, 1, 2], 30)
    await c.converge()
    for (const i of [0, 1, 2]) await c.stop(i)
    for (const i of [0, 1, 2]) await c.restart(i)
    await c.load([0, 1, 2], 3)
    await c.converge()
    watch.finish()
  })

  it('a follower that installs a snapshot applies the same sequence as the others', async () => {
    const c = new Cluster()
    await c.start()
    const watch = new Watch(c.dirs)
    await c.load([0, 1, 2], 3)
    await c.stop(2)
    await c.load([0, 1], 25)
    await c.restart(2)
    let installed = 0
    c.host(2).on('membershipChanged', () => installed++)
    await c.load([0, 1, 2], 3)
    await c.converge()
    expect(installed, 'host 2 never installed a snapshot').toBeGreaterThan(0)
    const recovered = [...c.recorders[2].values()].flatMap((r) => r.recoveries)
    expect(recovered.length, 'host 2 never recovered a snapshot').toBeGreaterThan(0)
    watch.finish()
  })
})
