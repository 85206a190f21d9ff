import { afterEach, describe, expect, it } from 'vitest'

import { Host } from '../ts/index'
import { KvStateMachine, set } from '../examples/kv.mjs'
import { RecorderCluster } from './fixtures/recorder-cluster'
import { codeOf, replicaId as rid, retry, TempDirs, text } from './helpers'

// Client sessions through the host API: a write sent again with its session and series
// applies once, after snapshots, a snapshot install and restarts from disk, and a session the
// shard evicted applies nothing.

const dirs = new TempDirs('zongzi-sessions-')
const closing: Array<{ close(): Promise<void> }> = []

afterEach(async () => {
  await Promise.all(closing.splice(0).map((c) => c.close()))
  dirs.removeAll()
})

const session = (clientId: number, series: number, respondedTo = 0) => ({
  clientId,
  series,
  respondedTo,
})

describe('client sessions', () => {
  it('answer a series sent again with its first result, across restarts', async () => {
    const c = new RecorderCluster(dirs)
    closing.push(c)
    await c.start()
    const x = Buffer.from('x')
    await retry(() => c.host(0).registerSession(1, 77))
    // A recorder answers how many entries it has applied: a second application would say more.
    const first = await retry(() => c.host(0).propose(1, x, { session: session(77, 1) }))
    await c.stop(2)
    await c.load([0, 1], 25) // snapshots, and a log compacted past what host 2 has
    await c.restart(2)
    const viaInstalled = await retry(() => c.host(2).propose(1, x, { session: session(77, 1) }))
    expect(viaInstalled).toEqual(first)
    for (const i of [0, 1, 2]) await c.stop(i)
    for (const i of [0, 1, 2]) await c.restart(i)
    const afterRestart = await retry(() => c.host(1).propose(1, x, { session: session(77, 1) }))
    expect(afterRestart).toEqual(first)
    await c.converge()
  })

  it('keep the example store exact: a retry after a restart applies nothing', async () => {
    const opts = { clusterId: 31, tickMs: 10, snapshotEntries: 3, compactionOverhead: 1 }
    const ds = [0, 1, 2].map(() => dirs.make())
    let hosts = ds.map((dataDir) => Host.open({ ...opts, dataDir }))
    const addresses = hosts.map((h) => h.raftAddress)
    closing.push({ close: async () => void (await Promise.all(hosts.map((h) => h.close()))) })
    const voters = addresses.map((address, i) => ({ replicaId: rid(1, i), address }))
    const kv = () => new KvStateMachine()
    await Promise.all(
      hosts.map((h, i) => h.startReplica(1, rid(1, i), { mode: 'bootstrap', voters }, kv)),
    )
    const put = (i: number, value: string, series: number, respondedTo = 0) =>
      retry(() =>
        hosts[i].propose(1, set('k', value), { session: session(5, series, respondedTo) }),
      )
    await retry(() => hosts[0].registerSession(1, 5))
    expect(text((await put(0, 'v1', 1)).data)).toBe('') // the value before it
    expect(text((await put(1, 'v2', 2, 1)).data)).toBe('v1')
    for (const h of hosts) await h.requestSnapshot(1)
    await Promise.all(hosts.map((h) => h.close()))
    hosts = ds.map((dataDir, i) => Host.open({ ...opts, dataDir, raftAddress: addresses[i] }))
    await Promise.all(hosts.map((h, i) => h.startReplica(1, rid(1, i), { mode: 'restart' }, kv)))
    // Series 2 sent again: answered as before, and k is not set back.
    expect(text((await put(2, 'v2', 2, 1)).data)).toBe('v1')
    // Series 1 was answered (respondedTo 1): it never applies again.
    const stale = hosts[0].propose(1, set('k', 'v1'), { session: session(5, 1, 1) })
    expect(await codeOf(stale)).toBe('ERR_SESSION_EXPIRED')
    for (const h of hosts) {
      await retry(() => h.readIndex(1))
      expect(text(await h.read(1, Buffer.from('k'), { stale: true }))).toBe('v2')
    }
  })

  it('refuse a session the shard evicted, and bad sessions, applying nothing', async () => {
    const h = Host.open({ clusterId: 32, dataDir: dirs.make(), tickMs: 10, maxSessionsPerShard: 1 })
    closing.push(h)
    const voters = [{ replicaId: 1, address: h.raftAddress }]
    await h.startReplica(1, 1, { mode: 'bootstrap', voters }, () => new KvStateMachine())
    await retry(() => h.registerSession(1, 1))
    await h.registerSession(1, 2) // evicts client 1
    expect(await codeOf(h.propose(1, set('k', 'x'), { session: session(1, 1) }))).toBe(
      'ERR_SESSION_EXPIRED',
    )
    for (const bad of [session(0, 1), session(1, 0), { clientId: -1, series: 1 }])
      expect(await codeOf(h.propose(1, set('k', 'x'), { session: bad as never }))).toBe(
        'ERR_INVALID_ARGUMENT',
      )
    expect(await codeOf(h.registerSession(1, 0))).toBe('ERR_INVALID_ARGUMENT')
    expect(text(await h.read(1, Buffer.from('k')))).toBe('')
    expect((await h.propose(1, set('k', 'y'), { session: session(2, 1) })).value).toBe(1)
  })
})
