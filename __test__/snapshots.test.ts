import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { RecorderCluster, SHARDS } from './fixtures/recorder-cluster'
import { TempDirs } from './helpers'

// Snapshots taken while TypeScript state machines apply batches of many shards hold exactly
// the state after their index: restoring one never applies an entry twice.

const dirs = new TempDirs('zongzi-snap-')
const clusters: RecorderCluster[] = []
/** cluster makes a RecorderCluster that is closed after the test. */
function cluster(): RecorderCluster {
  const c = new RecorderCluster(dirs)
  clusters.push(c)
  return c
}

afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()))
  dirs.removeAll()
})

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
    const c = cluster()
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
    const c = cluster()
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
