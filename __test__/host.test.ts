import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { Host, ZongziError, type HostEvent } from '../ts/index'
import { Kv, MaybeKv, PersistentKv, put } from './fixtures/kv.mjs'
import { agreedLeader, codeOf, replicaId as rid, retry, TempDirs, text, waitUntil } from './helpers'

const CLUSTER = 11
const dirs = new TempDirs('zongzi-host-')
const tmp = () => dirs.make()
const hosts: Host[] = []

function open(dataDir: string, extra: Partial<Parameters<typeof Host.open>[0]> = {}): Host {
  const h = Host.open({ clusterId: CLUSTER, dataDir, tickMs: 10, snapshotEntries: 0, ...extra })
  hosts.push(h)
  return h
}

afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()))
  dirs.removeAll()
})

async function bootstrap(hs: Host[], shard: number, factory = () => new Kv()) {
  const voters = hs.map((h, i) => ({ replicaId: rid(shard, i), address: h.raftAddress }))
  await Promise.all(
    hs.map((h, i) => h.startReplica(shard, rid(shard, i), { mode: 'bootstrap', voters }, factory)),
  )
}

function leaderOf(hs: Host[], shard: number): Promise<number> {
  return waitUntil(
    async () =>
      agreedLeader(await Promise.all(hs.map((h) => h.status(shard).catch(() => undefined)))),
    { what: `an agreed leader of shard ${shard}` },
  )
}

describe('Host (one process, three hosts)', () => {
  it('replicates writes and serves linearizable and stale reads on every host', async () => {
    const hs = [open(tmp()), open(tmp()), open(tmp())]
    await bootstrap(hs, 1)
    const l = await leaderOf(hs, 1)
    const r = await retry(() => hs[l].propose(1, put('a', '1')))
    expect(r.value).toBe(1)
    const r2 = await retry(() => hs[(l + 1) % 3].propose(1, put('a', '2')))
    expect(text(r2.data)).toBe('1')
    for (const h of hs) expect(text(await h.read(1, Buffer.from('a')))).toBe('2')
    const idx = await hs[l].commit(1, put('b', '3'))
    expect(idx).toBeGreaterThan(1)
    await hs[2].readIndex(1)
    expect(text(await hs[2].read(1, Buffer.from('b'), { stale: true }))).toBe('3')
  })

  it('a lagging replica installs a snapshot produced by the TypeScript state machine', async () => {
    const dir = [tmp(), tmp(), tmp()]
    const hs = [open(dir[0]), open(dir[1]), open(dir[2], { compactionOverhead: 5 })]
    for (const h of hs) void h
    const opts = { compactionOverhead: 5, snapshotEntries: 50 }
    await hs.splice(0).reduce(async (p, h) => {
      await p
      await h.close()
    }, Promise.resolve())
    const hs2 = dir.map((d) => open(d, opts))
    await bootstrap(hs2, 1)
    const l = await leaderOf(hs2, 1)
    const lag = (l + 1) % 3
    const lagAddr = hs2[lag].raftAddress
    await hs2[lag].close()
    const w = (l + 2) % 3
    for (let i = 0; i < 200; i++) await retry(() => hs2[w].propose(1, put(`k${i}`, String(i))))
    await hs2[l].requestSnapshot(1)
    await hs2[w].requestSnapshot(1)
    const back = open(dir[lag], { ...opts, raftAddress: lagAddr })
    for (const s of back.storedReplicas())
      await back.startReplica(s.shardId, s.replicaId, { mode: 'restart' }, () => new Kv())
    expect(text(await retry(() => back.read(1, Buffer.from('k199'))))).toBe('199')
    expect(text(await back.read(1, Buffer.from('#size'), { stale: true }))).toBe('200')
  })

  it('a persistent state machine reopens at its own applied index', async () => {
    const dir = [tmp(), tmp(), tmp()]
    const hs = dir.map((d) => open(d))
    const sms: InstanceType<typeof PersistentKv>[] = []
    const voters = hs.map((h, i) => ({ replicaId: rid(1, i), address: h.raftAddress }))
    await Promise.all(
      hs.map((h, i) =>
        h.startReplica(1, rid(1, i), { mode: 'bootstrap', voters }, () => {
          const sm = new PersistentKv(join(dir[i], 'kv.json'))
          sms[i] = sm
          return sm
        }),
      ),
    )
    const l = await leaderOf(hs, 1)
    for (let i = 0; i < 20; i++) await retry(() => hs[l].propose(1, put(`k${i}`, String(i))))
    const f = (l + 1) % 3
    await hs[f].readIndex(1)
    const appliedBefore = sms[f].applied
    const addr = hs[f].raftAddress
    await hs[f].close()
    await retry(() => hs[l].propose(1, put('k20', '20')))
    const back = open(dir[f], { raftAddress: addr })
    const reopened: InstanceType<typeof PersistentKv>[] = []
    await back.startReplica(1, rid(1, f), { mode: 'restart' }, () => {
      const sm = new PersistentKv(join(dir[f], 'kv.json'))
      reopened.push(sm)
      return sm
    })
    expect(reopened).toHaveLength(1)
    const [fresh] = reopened
    expect(fresh.applied).toBe(appliedBefore)
    expect(text(await retry(() => back.read(1, Buffer.from('k20'))))).toBe('20')
    expect(fresh.replayed.length).toBeGreaterThan(0)
    expect(fresh.replayed.every((i) => i > appliedBefore)).toBe(true)
  })

  it('a throwing state machine stops only its replica', async () => {
    const hs = [open(tmp()), open(tmp()), open(tmp())]
    const events: HostEvent[] = []
    for (const h of hs) h.on('event', (e: HostEvent) => events.push(e))
    await bootstrap(hs, 1)
    await bootstrap(hs, 2)
    const l = await leaderOf(hs, 2)
    await retry(() => hs[l].propose(2, put('ok', '1')))
    const err = await hs[l].propose(2, put('throw', 'x')).catch((e) => e)
    expect(err).toBeInstanceOf(ZongziError)
    expect(err.code).toBe('ERR_STATE_MACHINE')
    await waitUntil(() => events.filter((e) => e.type === 'replicaFailed').length >= 3, {
      what: 'three replicaFailed events',
    })
    expect(events.filter((e) => e.type === 'replicaFailed' && e.shardId === 2)).toHaveLength(3)
    const e = await hs[l].status(2).catch((x) => x)
    expect(e.code).toBe('ERR_SHARD_NOT_FOUND')
    const l1 = await leaderOf(hs, 1)
    await retry(() => hs[l1].propose(1, put('still', 'here')))
    expect(text(await hs[(l1 + 1) % 3].read(1, Buffer.from('still')))).toBe('here')
  })

  it('a replica stopped with proposals in flight leaves their outcome unknown', async () => {
    const hs = [open(tmp()), open(tmp()), open(tmp())]
    await bootstrap(hs, 1)
    const l = await leaderOf(hs, 1)
    await retry(() => hs[l].propose(1, put('warm', '1')))
    const f = (l + 1) % 3 // a follower: the others go on committing what it proposed
    const writes = Array.from({ length: 2000 }, (_, i) =>
      hs[f].propose(1, put(`k${i}`, 'v')).then(
        () => 'ok',
        (e) => e.code,
      ),
    )
    await new Promise((r) => setTimeout(r, 5))
    await hs[f].stopReplica(1)
    // Results that came in time are answers; the rest may still have been committed, and
    // none is the state machine's failure.
    const unknown = ['ERR_OUTCOME_UNKNOWN', 'ERR_CLOSED', 'ERR_SHARD_NOT_FOUND']
    for (const c of new Set(await Promise.all(writes))) expect(['ok', ...unknown]).toContain(c)
  })
})

describe('bad input', () => {
  it('is rejected with typed errors and changes nothing', async () => {
    const h = open(tmp(), { maxProposalBytes: 1024 })
    await h.startReplica(
      1,
      1,
      { mode: 'bootstrap', voters: [{ replicaId: 1, address: h.raftAddress }] },
      () => new Kv(),
    )
    await retry(() => h.propose(1, put('a', '1')))
    expect(await codeOf(h.propose(1, 'a=1' as unknown as Uint8Array))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(h.propose(1, Buffer.alloc(1025)))).toBe('ERR_PAYLOAD_TOO_LARGE')
    expect(await codeOf(h.propose(99, put('a', '2')))).toBe('ERR_SHARD_NOT_FOUND')
    expect(await codeOf(h.read(99, Buffer.from('a')))).toBe('ERR_SHARD_NOT_FOUND')
    expect(await codeOf(h.propose(-1, put('a', '2')))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(h.propose(1.5, put('a', '2')))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(h.propose(1, put('a', '2'), { timeoutMs: -5 }))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    expect(await codeOf(h.startReplica(2, -3, { mode: 'join' }, () => new Kv()))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    expect(await codeOf(h.startReplica(1, 1, { mode: 'restart' }, () => new Kv()))).toBe(
      'ERR_SHARD_EXISTS',
    )
    expect(await codeOf(h.startReplica(3, 3, { mode: 'restart' }, () => new Kv()))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    expect(await codeOf(h.addReplica(1, 0, '127.0.0.1:1'))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => h.removeData(1))).toBe('ERR_INVALID_ARGUMENT')
    expect(await codeOf(() => Host.open({ clusterId: -1, dataDir: tmp() }))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    // Nothing changed.
    expect(text(await h.read(1, Buffer.from('a')))).toBe('1')
    expect(h.storedReplicas()).toEqual([{ shardId: 1, replicaId: 1 }])
    await h.close()
    await h.close()
    expect(await codeOf(h.propose(1, put('a', '3')))).toBe('ERR_CLOSED')
    expect(await codeOf(h.read(1, Buffer.from('a')))).toBe('ERR_CLOSED')
  })

  it('a query may answer absent apart from empty; every answer is a Buffer', async () => {
    const h = open(tmp())
    await bootstrap([h], 1, () => new MaybeKv())
    const applied = await retry(() => h.propose(1, put('empty', '')))
    expect(Buffer.isBuffer(applied.data)).toBe(true)
    await h.propose(1, put('a', '1'))
    for (const stale of [false, true]) {
      const a = await h.read(1, Buffer.from('a'), { stale })
      expect(Buffer.isBuffer(a)).toBe(true)
      expect(text(a)).toBe('1')
      const empty = await h.read(1, Buffer.from('empty'), { stale })
      expect(Buffer.isBuffer(empty) && empty.length === 0).toBe(true)
      expect(await h.read(1, Buffer.from('missing'), { stale })).toBeUndefined()
      expect(await h.read(1, Buffer.from('null'), { stale })).toBeUndefined()
    }
    const bad = await h.read(1, Buffer.from('number')).catch((e) => e)
    expect([bad.code, bad.call]).toEqual(['ERR_STATE_MACHINE', 'read'])
  })
})

describe('Host observability', () => {
  it('counts writes, fsyncs and traffic per peer in one metrics snapshot', async () => {
    const hs = [open(tmp()), open(tmp()), open(tmp())]
    await bootstrap(hs, 1)
    const l = await leaderOf(hs, 1)
    await retry(() => hs[l].propose(1, put('warm', '1')))
    const before = await hs[l].metrics()
    for (let i = 0; i < 5; i++) await hs[l].propose(1, put(`k${i}`, String(i)))
    const after = await hs[l].metrics()
    expect(after.proposals - before.proposals).toBe(5)
    expect(after.entriesCommitted - before.entriesCommitted).toBeGreaterThanOrEqual(5)
    expect(after.entriesApplied - before.entriesApplied).toBeGreaterThanOrEqual(5)
    expect(after.fsyncSeconds.count).toBeGreaterThan(before.fsyncSeconds.count)
    expect(after.entriesPerFsync.sum).toBeGreaterThan(before.entriesPerFsync.sum)
    expect(after.leaderChanges).toBeGreaterThanOrEqual(1)
    for (const h of [after.fsyncSeconds, after.entriesPerFsync, after.applyLag]) {
      expect(h.counts.length).toBe(h.bounds.length + 1)
      expect(h.counts.reduce((a, b) => a + b, 0)).toBe(h.count)
    }
    // A histogram over the replicas, never a value per shard.
    expect([after.replicas, after.applyLag.count]).toEqual([1, 1])
    const peers = after.peers.map((p) => p.address).sort()
    expect(peers).toEqual(
      hs
        .filter((_, i) => i !== l)
        .map((h) => h.raftAddress)
        .sort(),
    )
    for (const p of after.peers) {
      expect(p.framesSent).toBeGreaterThan(0)
      expect(p.bytesReceived).toBeGreaterThan(0)
    }
    expect(after.queues.inFlight).toBe(0)
    await hs[l].close()
    expect(await codeOf(hs[l].metrics())).toBe('ERR_CLOSED')
  })

  it('an idle shard quiesces on every host, and a write through a follower wakes it', async () => {
    const hs = [open(tmp()), open(tmp()), open(tmp())]
    await bootstrap(hs, 1)
    const l = await leaderOf(hs, 1)
    await retry(() => hs[l].propose(1, put('a', '1')))
    const quiet = async () =>
      (await Promise.all(hs.map((h) => h.status(1)))).every((s) => s.quiesced)
    await waitUntil(quiet, { what: 'every replica of shard 1 quiesced' })
    for (const h of hs) expect((await h.metrics()).quiescedReplicas).toBe(1)
    const r = await hs[(l + 1) % 3].propose(1, put('a', '2'))
    expect(text(r.data)).toBe('1')
    for (const h of hs) expect(text(await h.read(1, Buffer.from('a')))).toBe('2')
    await waitUntil(quiet, { what: 'shard 1 quiet again' })
  })

  it('hands raft-rs and engine records to a pino-shaped logger, with their replica', async () => {
    const seen: Array<{ level: string; obj: Record<string, unknown>; msg: string }> = []
    const at = (level: string) => (obj: object, msg: string) =>
      seen.push({ level, obj: obj as Record<string, unknown>, msg })
    const logger = {
      level: 'info',
      error: at('error'),
      warn: at('warn'),
      info: at('info'),
      debug: at('debug'),
    }
    const hs = [open(tmp(), { logger }), open(tmp()), open(tmp())]
    await bootstrap(hs, 1)
    await leaderOf(hs, 1)
    const about = (msg: RegExp) =>
      seen.find((r) => msg.test(r.msg) && r.obj.shard === 1 && r.obj.replica === rid(1, 0))
    // An election seen by raft-rs on host 0's replica, and the engine's leader change.
    const raft = await waitUntil(() => about(/election|became|vote/), { what: 'a raft record' })
    expect(raft.obj).toMatchObject({ host: hs[0].raftAddress, source: 'raft' })
    const change = await waitUntil(() => about(/^leader changed$/), { what: 'a leader change' })
    expect(change.level).toBe('info')
    expect(change.obj).toMatchObject({ source: 'engine', term: expect.any(Number) })
    expect(seen.every((r) => r.level !== 'debug')).toBe(true)
    await hs[0].close()
    expect(seen.some((r) => r.msg === 'replica started' && r.obj.shard === 1)).toBe(true)
  })
})
