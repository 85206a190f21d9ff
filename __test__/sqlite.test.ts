// The SQLite example (examples/sqlite): a persistent state machine through the test kit, a
// restart that resumes at the index kept with the data, and a snapshot installed on a replica
// that fell behind.
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterEach, describe, expect, it } from 'vitest'

import { SqliteKv, set } from '../examples/sqlite/sqlite-kv.mjs'
import { type Entry, Host } from '../ts/index'
import { checkStateMachine, type Random } from '../ts/testing/index'
import { agreedLeader, replicaId as rid, retry, TempDirs, text, waitUntil } from './helpers'

const dirs = new TempDirs('zongzi-sqlite-')
const hosts: Host[] = []
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()))
  dirs.removeAll()
})

const open = (dataDir: string, extra: Partial<Parameters<typeof Host.open>[0]> = {}) => {
  const h = Host.open({ clusterId: 31, dataDir, tickMs: 10, snapshotEntries: 0, ...extra })
  hosts.push(h)
  return h
}
const leaderOf = (hs: Host[]) =>
  waitUntil(
    async () => agreedLeader(await Promise.all(hs.map((h) => h.status(1).catch(() => undefined)))),
    { what: 'an agreed leader' },
  )

/** Recorded is the example, recording the indexes it is handed. */
class Recorded extends SqliteKv {
  readonly handed: number[] = []
  override update(entries: Entry[]) {
    for (const e of entries) this.handed.push(e.index)
    return super.update(entries)
  }
}

describe('the SQLite state machine', () => {
  it('passes the test kit: restarts at its own index, snapshots and installs', async () => {
    const dir = dirs.make()
    const report = await checkStateMachine({
      factory: (_shard, replica) => new SqliteKv(join(dir, `r${replica}.db`)),
      commands: (r: Random, i: number) =>
        r.chance(0.2)
          ? Buffer.from(JSON.stringify({ op: 'delete', key: `k${r.int(20)}` }))
          : set(`k${r.int(20)}`, `v${i}`),
      queries: () => Array.from({ length: 20 }, (_, k) => Buffer.from(`k${k}`)),
      entries: 200,
      faults: { restart: 0.1 },
    })
    expect(report.faults.restart).toBeGreaterThan(0)
    expect(report.faults.install).toBeGreaterThan(0)
  })

  it('streams a snapshot of one moment while later entries go on applying', async () => {
    const sm = new SqliteKv(join(dirs.make(), 'kv.db'))
    expect(await sm.open()).toBe(0)
    const entries = (from: number, n: number, tag: string) =>
      Array.from({ length: n }, (_, i) => ({
        index: from + i,
        data: set(`key${String(i).padStart(5, '0')}`, `${tag}${'.'.repeat(100)}`),
      }))
    sm.update(entries(1, 5000, 'old'))
    // A slow reader: the snapshot waits on its backpressure, and the thread is free meanwhile.
    const chunks: Buffer[] = []
    let applied = false
    const out = new Writable({
      highWaterMark: 1024,
      write(chunk, _e, done) {
        chunks.push(Buffer.from(chunk))
        setTimeout(done, 1)
      },
    })
    const saving = sm.saveSnapshot(out)
    sm.update(entries(5001, 5000, 'new'))
    applied = true
    await saving
    expect(applied).toBe(true)
    const lines = Buffer.concat(chunks).toString().trim().split('\n')
    expect(JSON.parse(lines[0])).toEqual({ index: 5000 })
    expect(lines).toHaveLength(5001)
    expect(lines.slice(1).every((l) => JSON.parse(l)[1].startsWith('old'))).toBe(true)
    expect(sm.query(Buffer.from('key00000'))?.toString()).toMatch(/^new/)
    sm.close()
  })

  it('reopens at the index stored with its data; only later entries replay', async () => {
    const dir = [dirs.make(), dirs.make(), dirs.make()]
    const hs = dir.map((d) => open(d))
    const voters = hs.map((h, i) => ({ replicaId: rid(1, i), address: h.raftAddress }))
    await Promise.all(
      hs.map((h, i) =>
        h.startReplica(1, rid(1, i), { mode: 'bootstrap', voters }, () => {
          return new SqliteKv(join(dir[i], 'kv.db'))
        }),
      ),
    )
    const l = await leaderOf(hs)
    for (let i = 0; i < 20; i++) await retry(() => hs[l].propose(1, set(`k${i}`, `${i}`)))
    const f = (l + 1) % 3
    const before = (await hs[f].status(1)).applied
    await hs[f].readIndex(1)
    const addr = hs[f].raftAddress
    await hs[f].close()
    await retry(() => hs[l].propose(1, set('k20', '20')))

    const back = open(dir[f], { raftAddress: addr })
    const reopened: Recorded[] = []
    await back.startReplica(1, rid(1, f), { mode: 'restart' }, () => {
      const sm = new Recorded(join(dir[f], 'kv.db'))
      reopened.push(sm)
      return sm
    })
    expect(text(await retry(() => back.read(1, Buffer.from('k20'))))).toBe('20')
    expect(text(await back.read(1, Buffer.from('k3'), { stale: true }))).toBe('3')
    expect(reopened).toHaveLength(1)
    expect(reopened[0].handed.length).toBeGreaterThan(0)
    expect(reopened[0].handed.every((i) => i > before)).toBe(true)
  })

  it('installs a snapshot on a replica that fell behind a compacted log', async () => {
    const dir = [dirs.make(), dirs.make(), dirs.make()]
    const opts = { compactionOverhead: 5, snapshotEntries: 50 }
    const hs = dir.map((d) => open(d, opts))
    const factory = (i: number) => () => new SqliteKv(join(dir[i], 'kv.db'))
    const voters = hs.map((h, i) => ({ replicaId: rid(1, i), address: h.raftAddress }))
    await Promise.all(
      hs.map((h, i) => h.startReplica(1, rid(1, i), { mode: 'bootstrap', voters }, factory(i))),
    )
    const l = await leaderOf(hs)
    const lag = (l + 1) % 3
    const lagAddr = hs[lag].raftAddress
    await hs[lag].close()
    const w = (l + 2) % 3
    for (let i = 0; i < 200; i++) await retry(() => hs[w].propose(1, set(`k${i}`, `${i}`)))
    await hs[l].requestSnapshot(1)
    await hs[w].requestSnapshot(1)

    const back = open(dir[lag], { ...opts, raftAddress: lagAddr })
    const reopened: Recorded[] = []
    await back.startReplica(1, rid(1, lag), { mode: 'restart' }, () => {
      const sm = new Recorded(join(dir[lag], 'kv.db'))
      reopened.push(sm)
      return sm
    })
    expect(text(await retry(() => back.read(1, Buffer.from('k199'))))).toBe('199')
    expect(text(await back.read(1, Buffer.from('k0'), { stale: true }))).toBe('0')
    // The early entries came in the snapshot, not one by one: the log no longer had them.
    expect(reopened[0].handed.filter((i) => i <= 100)).toEqual([])
  })
})
