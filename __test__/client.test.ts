import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { Agent, type AgentOptions, type CircuitState, ZongziError } from '../ts/index'
import { Registry } from '../ts/coordinator/registry/registry'
import type { SessionRef } from '../ts/binding/proposals'
import type { ClientContext, RemoteShards } from '../ts/coordinator/client/client-context'
import { ShardClient } from '../ts/coordinator/client/shard-client'
import { run, seed } from './fixtures/registry'
import { KvStateMachine, set } from '../examples/kv.mjs'
import { MaybeKv, put } from './fixtures/kv.mjs'
import { ChildClient, codeOf, freePort, retry, TempDirs, text, waitUntil } from './helpers'

const FIXTURE = join(__dirname, '..', 'harness', 'agent-process.mjs')
const CLUSTER = 'hedging'
const dirs = new TempDirs('zongzi-client-')
const fast = { host: { tickMs: 20 }, reconcileMs: 200 }

describe('a client of a shard whose hosts include a paused one (SIGSTOP)', () => {
  const local: Agent[] = []
  let child: ChildClient
  let childAddress: string
  let client: Agent

  beforeAll(async () => {
    const peers: string[] = []
    for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
    const opts = (i: number): AgentOptions => ({
      dataDir: dirs.make(),
      apiAddress: peers[i],
      ...fast,
    })
    // Host 0 runs no replica of the shard, so its client forwards every call; host 1 runs in
    // a child process; hosts 2 and 3 (a joiner) hold the other replicas.
    client = new Agent(CLUSTER, peers, opts(0))
    const a2 = new Agent(CLUSTER, peers, opts(2)).register('kv', () => new KvStateMachine())
    a2.register('maybe', () => new MaybeKv())
    local.push(client, a2)
    child = await ChildClient.start(FIXTURE)
    const started = child.call<{ apiAddress: string }>('start', {
      cluster: CLUSTER,
      peers,
      options: opts(1),
      types: ['kv'],
    })
    await Promise.all([client.start(), a2.start(), started])
    const joinToken = await client.createJoinToken()
    const a3 = new Agent(CLUSTER, peers, { ...opts(3), apiAddress: undefined, joinToken })
    a3.register('kv', () => new KvStateMachine()).register('maybe', () => new MaybeKv())
    local.push(a3)
    await a3.start()
    childAddress = (await started).apiAddress
  }, 120_000)

  afterAll(async () => {
    child?.kill()
    await Promise.allSettled(local.map((a) => a.stop()))
    dirs.removeAll()
  })

  it('receives Buffers, and an absent answer apart from an empty one, over the bus', async () => {
    const sh = await client.createShard('maybe', { placement: { members: { count: 2 } } })
    await client.waitForShard(sh.id)
    expect(client.runs(sh.id)).toBe(false) // every call below is forwarded
    const c = client.client(sh.id)
    const applied = await retry(() => c.propose(put('empty', '')))
    expect(Buffer.isBuffer(applied.data)).toBe(true)
    await c.propose(put('a', '1'))
    for (const stale of [false, true]) {
      const a = await c.read(Buffer.from('a'), { stale })
      expect(Buffer.isBuffer(a) && a.toString() === '1').toBe(true)
      const empty = await c.read(Buffer.from('empty'), { stale })
      expect(Buffer.isBuffer(empty) && empty.length === 0).toBe(true)
      expect(await c.read(Buffer.from('missing'), { stale })).toBeUndefined()
      expect(await c.read(Buffer.from('null'), { stale })).toBeUndefined()
    }
    const bad = await c.read(Buffer.from('number')).catch((e) => e)
    expect([bad.code, bad.call, bad.retrySafe]).toEqual(['ERR_STATE_MACHINE', 'read', false])
  })

  it('says a forwarded write with a result too large for the bus may have applied', async () => {
    const sh = await client.createShard('maybe', { placement: { members: { count: 2 } } })
    await client.waitForShard(sh.id)
    expect(client.runs(sh.id)).toBe(false)
    const c = client.client(sh.id)
    const size = 17 * 2 ** 20 // over the 16 MiB a bus message carries
    const err = await c.propose(put('#big', String(size))).catch((e) => e)
    expect(err.code).not.toBe('ERR_PAYLOAD_TOO_LARGE')
    expect(err.outcome).toBe('unknown')
    expect(err.message).toMatch(/applied/)
    // It did apply.
    expect(text(await c.read(Buffer.from('#big')))).toBe(String(size))
  })

  it('hands each caller a client of one shared session; a close ends only its own', async () => {
    const name = 'cached'
    const sh = await client.createShard('maybe', { name, placement: { members: { count: 2 } } })
    await client.waitForShard(sh.id)
    const c = await client.clientByName(name)
    const others = [await client.clientByName(name), client.client(sh.id)]
    const toLeader = client.client(sh.id, { writeToLeader: true })
    await retry(() => c.propose(put('a', '1')))
    await c.close()
    expect(await codeOf(c.propose(put('a', '2')))).toBe('ERR_INVALID_ARGUMENT')
    // The other holders of this shard's client go on as they were.
    for (const [i, o] of [...others, toLeader].entries()) {
      await o.propose(put('a', `${3 + i}`))
      expect(text(await o.read(Buffer.from('a')))).toBe(`${3 + i}`)
    }
    const next = client.client(sh.id)
    expect(next).not.toBe(c)
    await next.propose(put('a', '9'))
    expect(text(await next.read(Buffer.from('a')))).toBe('9')
  })

  it('has reads answered by another host, and stops calling the paused one', async () => {
    const sh = await client.createShard('kv', { placement: { members: { count: 3 } } })
    await waitUntil(
      () =>
        client.stateLocal((s) => {
          const rs = s.replicasOf(sh.id)
          return rs.length === 3 && rs.every((r) => r.status === 'active')
        }),
      { what: 'three active replicas' },
    )
    const c = client.client(sh.id)
    await retry(() => c.propose(set('k', 'v')))
    expect(text(await c.read(Buffer.from('k')))).toBe('v')

    let opened = false
    client.on('circuit', (e: { address: string; state: CircuitState }) => {
      if (e.address === childAddress && e.state === 'open') opened = true
    })
    child.child.kill('SIGSTOP')
    // Each read goes first to a random host of the three. A read that reaches the paused host
    // first still succeeds within a deadline that waiting on it would use up; once it has
    // stayed silent three times its circuit opens.
    for (let n = 0; n < 300 && !opened; n++)
      expect(text(await c.read(Buffer.from('k'), { timeoutMs: 2000 }))).toBe('v')
    expect(opened).toBe(true)
    for (let n = 0; n < 5; n++)
      expect(text(await c.read(Buffer.from('k'), { timeoutMs: 2000 }))).toBe('v')
  })
})

describe('a client of a shard whose only reachable replica is on a draining host', () => {
  it('reads and writes through the draining host', async () => {
    const r = new Registry()
    seed(r) // shard 1 on h1, h2, h3
    for (const id of [4, 5, 6]) run(r, { op: 'replica.update', id, status: 'active' })
    run(r, { op: 'host.status', id: 'h1', status: 'missing', now: 1 })
    run(r, { op: 'host.status', id: 'h3', status: 'missing', now: 1 })
    run(r, { op: 'host.status', id: 'h2', status: 'draining', now: 1, by: 'h2' })
    const unreachable = (address: string) =>
      new ZongziError('ERR_UNAVAILABLE', `${address} is not reachable`)
    const served = (address: string) => {
      if (address !== 'a2') throw unreachable(address)
    }
    const bus = {
      read: async (address: string) => {
        served(address)
        return Buffer.from('v')
      },
      propose: async (address: string) => {
        served(address)
        return { value: 1, data: Buffer.from('') }
      },
      session: async (address: string) => served(address),
    } as unknown as RemoteShards
    const ctx: ClientContext = {
      hostId: 'h9', // runs no replica
      timeoutMs: 300,
      host: {} as ClientContext['host'],
      bus,
      registry: () => r.state,
      runs: () => false,
    }
    const c = new ShardClient(ctx, 1)
    expect(text(await c.read(Buffer.from('k')))).toBe('v')
    expect((await c.propose(put('k', 'v'))).value).toBe(1)
  })
})

describe('the clients an agent hands out of one shard and options', () => {
  it('write in one session, registered once, unregistered when the last one closes', async () => {
    const r = new Registry()
    seed(r) // shard 1 on h1, h2, h3
    for (const id of [4, 5, 6]) run(r, { op: 'replica.update', id, status: 'active' })
    const sessions: string[] = []
    const writers = new Set<number>()
    const bus = {
      propose: async (
        _: string,
        _shard: number,
        _data: Uint8Array,
        o: { session?: SessionRef },
      ) => {
        writers.add(o.session?.clientId ?? 0)
        return { value: 1, data: Buffer.from('') }
      },
      session: async (_: string, _shard: number, clientId: number, register: boolean) => {
        sessions.push(`${register ? 'register' : 'unregister'} ${clientId}`)
      },
    } as unknown as RemoteShards
    const ctx: ClientContext = {
      hostId: 'h9', // runs no replica
      timeoutMs: 300,
      host: {} as ClientContext['host'],
      bus,
      registry: () => r.state,
      runs: () => false,
    }
    const shared = new ShardClient(ctx, 1)
    const [a, b] = [shared.share(), shared.share()]
    await a.propose(put('k', '1'))
    await b.propose(put('k', '2'))
    expect(writers.size).toBe(1)
    const [id] = writers
    expect(sessions).toEqual([`register ${id}`])
    await a.close()
    expect(await codeOf(a.propose(put('k', '3')))).toBe('ERR_INVALID_ARGUMENT')
    await b.propose(put('k', '4'))
    expect(sessions).toEqual([`register ${id}`])
    await b.close()
    expect(sessions).toEqual([`register ${id}`, `unregister ${id}`])
    expect(shared.closed).toBe(true)
  })
})
