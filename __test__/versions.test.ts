import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'

import * as grpc from '@grpc/grpc-js'
import { afterAll, describe, expect, it } from 'vitest'

import { Host, ZongziError } from '../ts/index'
import { REGISTRY_VERSION } from '../ts/binding/versions'
import { BusClient } from '../ts/bus/client'
import { fromServiceError } from '../ts/bus/codes'
import { BusServer, type BusHandlers } from '../ts/bus/server'
import { makeClient } from '../ts/bus/service'
import { Registry } from '../ts/coordinator/registry/registry'
import { envelope, readableVersion } from '../ts/coordinator/registry/versions'
import { apply, outcome, seed } from './fixtures/registry'
import { Recorder } from './fixtures/recorder.mjs'
import { retry, TempDirs, waitUntil } from './helpers'

// Format versions (docs/upgrades.md): what a host does with a registry command, a registry
// snapshot or a bus request in a version it does not read (refuses it by name, never reads
// it), and how the cluster moves to writing the next registry format. The engine's formats
// (transport frames, snapshot session tables) are tested in crates/engine, and a session table
// here through a restart.

const FUTURE = REGISTRY_VERSION + 1

/** refusal is the error `f` throws or rejects with. */
async function refusal(f: () => unknown): Promise<ZongziError> {
  try {
    await f()
  } catch (e) {
    expect(e).toBeInstanceOf(ZongziError)
    return e as ZongziError
  }
  throw new Error('it was not refused')
}

/** saved is the registry's snapshot, as text. */
async function saved(r: Registry): Promise<string> {
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c: Buffer) => chunks.push(c))
  await r.saveSnapshot(out)
  return Buffer.concat(chunks).toString()
}

/** upgraded is a seeded registry whose three hosts all read this build's format, still at 1. */
function upgraded(): Registry {
  const r = new Registry()
  seed(r)
  for (const i of [1, 2, 3]) apply(r, { op: 'host.put', host: hostRecord(i, REGISTRY_VERSION) })
  return r
}

/** hostRecord is the record host `h<i>` writes at start, reading registry format `version`. */
function hostRecord(i: number, version?: number) {
  const host = { id: `h${i}`, apiAddress: `a${i}`, raftAddress: `r${i}`, tags: {} }
  return { ...host, shardTypes: ['kv'], ...(version === undefined ? {} : { version }) }
}

/** raised is a seeded registry whose hosts all read this build's format, moved to it. */
function raised(): Registry {
  const r = upgraded()
  apply(r, { op: 'cluster.version', version: readableVersion(r.state) })
  return r
}

describe('registry commands', () => {
  it('refuse a command of a format this build does not read: the replica stops', async () => {
    const r = new Registry()
    seed(r)
    const before = r.state
    for (const v of [FUTURE, 0, '2', null]) {
      const cmd = { v, op: 'shard.create', name: 'x', type: 'kv' }
      const e = await refusal(() => apply(r, cmd))
      expect(e.code).toBe('ERR_UNSUPPORTED_VERSION')
      expect(e.message).toMatch(/registry command version .* is not supported/)
      if (v === FUTURE) expect(e.message).toMatch(/a newer build wrote it: upgrade this host/)
      if (v === 0) expect(e.message).toMatch(/a build too old for this one wrote it/)
      expect(r.state).toBe(before)
      expect(r.refusal).toBe(e) // what the agent fails with once the replica stops
    }
  })

  it('read a command with no version as format 1, and one with v as its format', () => {
    const r = new Registry()
    seed(r)
    expect(r.refusal).toBeUndefined()
    const one = JSON.parse(
      envelope({ op: 'shard.create', name: 'a', type: 'kv' }, 'h1', 1).toString(),
    )
    expect(one).not.toHaveProperty('v')
    const two = JSON.parse(
      envelope({ op: 'shard.create', name: 'b', type: 'kv' }, 'h1', 2).toString(),
    )
    expect(two.v).toBe(2)
    expect(apply(r, one, two).map((x) => outcome(x).ok)).toEqual([true, true])
    const names = [...r.state.shards.values()].map((s) => s.name)
    expect(names).toEqual(expect.arrayContaining(['a', 'b']))
  })
})

describe('the cluster version', () => {
  it('stays at 1 until every host on record reads the next format', () => {
    const r = new Registry()
    seed(r)
    expect(r.state.version).toBe(1)
    expect(readableVersion(r.state)).toBe(1)
    const host = (i: number) => ({ id: `h${i}`, apiAddress: `a${i}`, raftAddress: `r${i}` })
    for (const i of [1, 2]) {
      const h = { ...host(i), tags: {}, shardTypes: ['kv'], version: REGISTRY_VERSION }
      apply(r, { op: 'host.put', host: h })
    }
    expect(readableVersion(r.state)).toBe(1)
    const h3 = { ...host(3), tags: {}, shardTypes: ['kv'], version: REGISTRY_VERSION }
    apply(r, { op: 'host.put', host: h3 })
    expect(readableVersion(r.state)).toBe(REGISTRY_VERSION)
  })

  it('is raised by the registry leader only, and never lowered', () => {
    const r = upgraded()
    const byOther = outcome(apply(r, { op: 'cluster.version', version: 2, by: 'h2' })[0])
    expect(byOther).toMatchObject({ ok: false, code: 'ERR_UNAUTHENTICATED' })
    expect(r.state.version).toBe(1)
    expect(outcome(apply(r, { op: 'cluster.version', version: 2 })[0]).ok).toBe(true)
    expect(r.state.version).toBe(2)
    expect(outcome(apply(r, { op: 'cluster.version', version: 1 })[0]).ok).toBe(true)
    expect(r.state.version).toBe(2)
  })

  it('is not raised while a host on record reads less, whatever the leader believed', () => {
    // The leader decides from its own applied state; a host that went back to the older
    // build may have written its record after that, and the move is ordered after it.
    const r = upgraded()
    apply(r, { op: 'host.put', host: hostRecord(3, 1) })
    const out = outcome(apply(r, { op: 'cluster.version', version: 2 })[0])
    expect(out).toMatchObject({ ok: false })
    expect(out.error).toMatch(/host h3 reads registry format 1/)
    expect(r.state.version).toBe(1)
    // A replica of shard 0 on a host with no record yet counts as format 1.
    const fresh = new Registry()
    seed(fresh)
    expect(outcome(apply(fresh, { op: 'cluster.version', version: 2 })[0]).ok).toBe(false)
    expect(fresh.state.version).toBe(1)
  })

  it('stops a replica whose build does not read the format the cluster moves to', async () => {
    const r = new Registry()
    seed(r)
    const e = await refusal(() => apply(r, { op: 'cluster.version', version: FUTURE }))
    expect(e.code).toBe('ERR_UNSUPPORTED_VERSION')
    expect(r.state.version).toBe(1)
  })

  it('refuses the record of a host that reads less than the cluster writes', () => {
    const r = raised()
    const old = { id: 'h2', apiAddress: 'a2', raftAddress: 'r2', tags: {}, shardTypes: ['kv'] }
    for (const host of [old, { ...old, version: 1 }]) {
      const out = outcome(apply(r, { op: 'host.put', host })[0])
      expect(out).toMatchObject({ ok: false, code: 'ERR_UNSUPPORTED_VERSION' })
      expect(out.error).toMatch(/reads registry format 1, but the cluster writes 2/)
    }
    expect(r.state.hosts.get('h2')?.version).toBe(REGISTRY_VERSION)
  })
})

describe('registry snapshots', () => {
  it('carry the cluster version from format 2 on, and none in format 1', async () => {
    const one = new Registry()
    seed(one)
    const text1 = await saved(one)
    expect(JSON.parse(text1.split('\n')[0])).not.toHaveProperty('version')
    const r = raised()
    const text = await saved(r)
    expect(JSON.parse(text.split('\n')[0]).version).toBe(2)
    const back = new Registry()
    await back.recoverFromSnapshot(Readable.from([text]))
    expect(back.state.version).toBe(2)
    const back1 = new Registry()
    await back1.recoverFromSnapshot(Readable.from([text1]))
    expect(back1.state.version).toBe(1)
    expect(back1.state.hosts.size).toBe(3)
  })

  it('refuse a snapshot of a format this build does not read', async () => {
    const lines = (await saved(raised())).split('\n')
    for (const version of [FUTURE, 0, 'x']) {
      const header = { ...JSON.parse(lines[0]), version }
      const text = [JSON.stringify(header), ...lines.slice(1)].join('\n')
      const r = new Registry()
      const e = await refusal(() => r.recoverFromSnapshot(Readable.from([text])))
      expect(e.code).toBe('ERR_UNSUPPORTED_VERSION')
      expect(e.message).toMatch(/registry snapshot version .* is not supported/)
      expect(r.state.hosts.size).toBe(0)
      expect(r.refusal).toBe(e)
    }
  })
})

describe('bus requests', () => {
  const handlers = {
    admit: async () => {},
    probe: async () => ({ hostId: 'h1', initialized: true, peers: [] }),
  } as unknown as BusHandlers
  const server = new BusServer('c', handlers)
  afterAll(() => server.close())

  /** probe calls Probe with `meta` and resolves with the code it failed with, or 'ok'. */
  function probe(address: string, meta: grpc.Metadata): Promise<string> {
    const raw = makeClient(address, grpc.credentials.createInsecure(), {})
    return new Promise<string>((resolve) => {
      raw.Probe({ cluster: 'c' }, meta, { deadline: Date.now() + 5000 }, (e) => {
        raw.close()
        resolve(e ? fromServiceError(e).code : 'ok')
      })
    })
  }

  it('are refused by name in a format the server does not serve', async () => {
    const address = await server.listen('127.0.0.1:0')
    for (const v of [String(FUTURE), '0', 'two', '99999999999']) {
      const meta = new grpc.Metadata()
      meta.set('zongzi-version', v)
      expect(await probe(address, meta), v).toBe('ERR_UNSUPPORTED_VERSION')
    }
    // Without the header (a build before versions), a request is of format 1.
    expect(await probe(address, new grpc.Metadata())).toBe('ok')
  })

  it('carry the version this build sends, which its server serves', async () => {
    const address = await server.listen('127.0.0.1:0')
    const client = new BusClient('c')
    try {
      expect((await client.probe(address)).hostId).toBe('h1')
    } finally {
      client.close()
    }
  })
})

describe('session tables', () => {
  const dirs = new TempDirs('zongzi-versions-')
  afterAll(() => dirs.removeAll())

  it('of a newer version stop a replica restarting from its snapshot, by name', async () => {
    const dataDir = dirs.make()
    const opts = { clusterId: 41, dataDir, tickMs: 10, snapshotEntries: 4, compactionOverhead: 1 }
    const h = Host.open(opts)
    const voters = [{ replicaId: 1, address: h.raftAddress }]
    await h.startReplica(1, 1, { mode: 'bootstrap', voters }, () => new Recorder())
    for (let i = 0; i < 10; i++) await retry(() => h.propose(1, Buffer.from(`x${i}`)))
    const dir = join(dataDir, 'snapshots', '1')
    await waitUntil(() => readdirSync(dir).some((n) => /^snap-\d+$/.test(n)))
    await h.close()
    for (const name of readdirSync(dir).filter((n) => /^snap-\d+$/.test(n))) {
      const file = readFileSync(join(dir, name))
      expect(file.subarray(0, 8).toString()).toBe('ZZSESS01')
      file.write('02', 6) // the table's version, as a later build would write it
      writeFileSync(join(dir, name), file)
    }
    const again = Host.open(opts)
    try {
      const start = again.startReplica(1, 1, { mode: 'restart' }, () => new Recorder())
      const e = await refusal(() => start)
      expect(e.code).toBe('ERR_UNSUPPORTED_VERSION')
      expect(e.message).toMatch(/session table version 2 is not supported/)
    } finally {
      await again.close()
    }
  })
})
