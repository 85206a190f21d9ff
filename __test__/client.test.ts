import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { Agent, type AgentOptions, type CircuitState } from '../ts/index'
import { KvStateMachine, set } from '../examples/kv.mjs'
import { MaybeKv, put } from './fixtures/kv.mjs'
import { ChildClient, freePort, retry, TempDirs, text, waitUntil } from './helpers'

const FIXTURE = join(__dirname, 'fixtures', 'agent-process.mjs')
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
    const applied = await retry(() => c.apply(put('empty', '')))
    expect(Buffer.isBuffer(applied.data)).toBe(true)
    await c.apply(put('a', '1'))
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
    await retry(() => c.apply(set('k', 'v')))
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
