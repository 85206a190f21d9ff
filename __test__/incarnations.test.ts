// A replica stopped and started again while its slow state machine still has batches queued:
// nothing of one start reaches the state machine of the next.
import { afterEach, describe, expect, it } from 'vitest'

import { Host } from '../ts/index'
import { SlowRecorder } from './fixtures/recorder.mjs'
import { agreedLeader, replicaId as rid, retry, sleep, TempDirs, waitUntil } from './helpers'

const dirs = new TempDirs('zongzi-incarnations-')
const hosts: Host[] = []
const OPTS = { clusterId: 13, tickMs: 10, snapshotEntries: 40, compactionOverhead: 5 }

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()))
  dirs.removeAll()
})

const increasing = (a: number[]) => a.every((v, i) => i === 0 || a[i - 1] < v)

describe('a replica restarted under load', () => {
  it('hands each start only its own entries, in order, and ends equal to the others', async () => {
    const hs = [0, 1, 2].map(() => Host.open({ ...OPTS, dataDir: dirs.make() }))
    hosts.push(...hs)
    // Every start of every replica, in order: host → its state machines.
    const starts: SlowRecorder[][] = [[], [], []]
    const make = (i: number) => () => {
      const r = new SlowRecorder(15)
      starts[i].push(r)
      return r
    }
    const voters = hs.map((h, i) => ({ replicaId: rid(1, i), address: h.raftAddress }))
    await Promise.all(
      hs.map((h, i) => h.startReplica(1, rid(1, i), { mode: 'bootstrap', voters }, make(i))),
    )
    const leader = await waitUntil(async () =>
      agreedLeader(await Promise.all(hs.map((h) => h.status(1).catch(() => undefined)))),
    )
    // The restarted host is a follower, so the writers through the others keep going.
    const victim = (leader + 1) % 3
    const via = [0, 1, 2].filter((i) => i !== victim)
    let stop = false
    const writers = Array.from({ length: 64 }, async (_, w) => {
      for (let k = 0; k < 400 && !stop; k++)
        await retry(() => hs[via[w % 2]].propose(1, Buffer.from('x')))
    })
    for (let n = 0; n < 20; n++) {
      await sleep(300)
      await hs[victim].stopReplica(1)
      await hs[victim].startReplica(1, rid(1, victim), { mode: 'restart' }, make(victim))
    }
    stop = true
    await Promise.all(writers)

    for (const h of hs) await retry(() => h.readIndex(1))
    const last = (i: number) => starts[i].at(-1) as SlowRecorder
    await waitUntil(() => {
      const seen = [0, 1, 2].map((i) => last(i).seen)
      return seen.every((a) => a.length === seen[0].length && a.at(-1) === seen[0].at(-1))
    }).catch(() => undefined)
    expect(starts[victim].length).toBe(21)
    for (const [i, recs] of starts.entries()) {
      for (const [n, r] of recs.entries()) {
        expect(increasing(r.handed), `host ${i} start ${n} was handed ${r.handed}`).toBe(true)
        expect(increasing(r.seen), `host ${i} start ${n} applied an entry twice`).toBe(true)
      }
    }
    for (const i of [1, 2]) expect(last(i).seen).toEqual(last(0).seen)
  }, 120_000)
})
