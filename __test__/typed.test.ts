import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest'

import {
  Agent,
  bytesCodec,
  type Entry,
  type ShardRecord,
  type ShardType,
  shardType,
  type StateMachine,
  TypedClient,
  type TypedShard,
} from '../ts/index'
import { KvStateMachine } from '../examples/kv.mjs'
import { type KvCommand, type KvQuery, type KvResult, TypedKv } from './fixtures/typed-kv'
import { codeOf } from './helpers'

const kv = shardType('typed-kv', () => new TypedKv())

/** Last keeps the last bytes proposed and answers each command with the ones before. */
class Last implements StateMachine<Buffer, Uint8Array, Buffer, Uint8Array | undefined> {
  last: Buffer | undefined
  update(entries: Entry<Buffer>[]): Uint8Array[] {
    return entries.map((e) => {
      const before = this.last ?? Buffer.alloc(0)
      this.last = e.data
      return before
    })
  }
  query(): Uint8Array | undefined {
    return this.last
  }
  async saveSnapshot(out: NodeJS.WritableStream): Promise<void> {
    out.end(this.last ?? Buffer.alloc(0))
  }
  async recoverFromSnapshot(input: AsyncIterable<Buffer>): Promise<void> {
    const parts: Buffer[] = []
    for await (const c of input) parts.push(c)
    this.last = Buffer.concat(parts)
  }
}
const last = shardType('last', () => new Last(), { codec: bytesCodec })

describe('typed state machines, on three agents of which the first runs none', () => {
  const agents: Agent[] = []
  let shard: TypedShard<KvCommand, KvResult | bigint, KvQuery, string | undefined>

  beforeAll(async () => {
    agents.push(...(await Agent.devCluster(3, { clusterName: 'typed' })))
    for (const a of agents.slice(1))
      a.register(kv)
        .register(last)
        .register('kv', () => new KvStateMachine())
    await Promise.all(agents.map((a) => a.start()))
    shard = await agents[0].createShard(kv, { name: 'typed' })
    await agents[0].waitForShard(shard.id)
  }, 60_000)

  afterAll(async () => {
    await Promise.allSettled(agents.map((a) => a.stop()))
  })

  it("proposes commands and reads answers in its state machine's types, anywhere", async () => {
    const forwarded = agents[0].client(shard)
    expectTypeOf(kv).toEqualTypeOf<
      ShardType<KvCommand, KvResult | bigint, KvQuery, string | undefined>
    >()
    expectTypeOf(forwarded.propose).parameter(0).toEqualTypeOf<KvCommand>()
    const r = await forwarded.propose({ op: 'set', key: 'alice', value: 'admin' })
    expectTypeOf(r).toEqualTypeOf<KvResult | bigint>()
    expect(r).toEqual({ size: 1 })
    expect(await forwarded.propose({ op: 'set', key: 'alice', value: 'owner' })).toEqual({
      previous: 'admin',
      size: 1,
    })
    const local = agents[1].client(shard.id, { type: kv })
    expect(agents[1].runs(shard.id)).toBe(true)
    const alice = await local.read({ key: 'alice' })
    expectTypeOf(alice).toEqualTypeOf<string | undefined>()
    expect(alice).toBe('owner')
    expect(await forwarded.read({ key: 'bob' }, { stale: true })).toBeUndefined()
    const named = await agents[2].clientByName('typed', { type: kv })
    expect(named).toBeInstanceOf(TypedClient)
    expect(await named.read({ key: 'alice' })).toBe('owner')
    expect(
      Buffer.from((await forwarded.bytes.read(Buffer.from('{"key":"alice"}'))) ?? '').toString(),
    ).toBe('"owner"')
  })

  it('watches in the answers type, absent values included, locally and over the bus', async () => {
    for (const c of [agents[0].client(shard), agents[1].client(shard)]) {
      const key = `w${Math.random()}`
      const seen: Array<string | undefined> = []
      const ac = new AbortController()
      for await (const v of c.watch({ key }, { signal: ac.signal })) {
        seen.push(v)
        if (seen.length === 1) await c.propose({ op: 'set', key, value: 'x' })
        if (seen.length === 2) await c.propose({ op: 'delete', key })
        if (seen.length === 3) ac.abort()
      }
      expect(seen).toEqual([undefined, 'x', undefined])
    }
  }, 20_000)

  it('refuses a command in bytes its codec cannot read, and applies nothing', async () => {
    const c = agents[0].client(shard)
    const before = await c.propose({ op: 'set', key: 'n', value: '1' })
    const e = await c.bytes.propose(Buffer.from('not json')).then(
      (r) => r,
      (err) => err,
    )
    // A byte client receives the failure as the state machine's result ...
    expect(e.value).toBe(1)
    expect(String(e.data)).toMatch(/^command: /)
    // ... and the state did not change
    expect(await c.propose({ op: 'set', key: 'n', value: '2' })).toEqual({
      previous: '1',
      size: (before as KvResult).size,
    })
  })

  it('fails a result its codec cannot write with ERR_STATE_MACHINE, outcome unknown', async () => {
    const e = await agents[0]
      .client(shard)
      .propose({ op: 'bigint' })
      .catch((x) => x)
    expect([e.code, e.outcome]).toEqual(['ERR_STATE_MACHINE', 'unknown'])
    const bad = await agents[0]
      .client(shard)
      .propose({ op: 'set', key: 'x', value: 1n as never })
      .catch((x) => x)
    expect([bad.code, bad.outcome]).toEqual(['ERR_INVALID_ARGUMENT', 'not-applied'])
  })

  it('refuses a typed client of a shard of another type, or of an unknown type', async () => {
    const bytesShard = await agents[0].createShard('kv', { name: 'bytes' })
    // The check reads agent 1's registry: it has the shard once a linearizable read there has.
    await agents[1].findShard('bytes')
    expect(await codeOf(() => agents[1].client(bytesShard.id, { type: kv }))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    expect(await codeOf(() => agents[1].client(bytesShard as ShardRecord))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
    const other = shardType('typed-kv-2', () => new TypedKv())
    expect(await codeOf(() => agents[0].client(shard.id, { type: other }))).toBe(
      'ERR_INVALID_ARGUMENT',
    )
  })

  it('types a state machine in bytes with the bytes codec', async () => {
    const sh = await agents[0].createShard(last)
    const c = agents[0].client(sh)
    expect(Buffer.from(await c.propose(Buffer.from('a'))).length).toBe(0)
    const before = await c.propose(Buffer.from('b'))
    expectTypeOf(before).toEqualTypeOf<Uint8Array>()
    expect(Buffer.from(before).toString()).toBe('a')
    expect(Buffer.from((await c.read(Buffer.alloc(0))) ?? '').toString()).toBe('b')
  })
})
