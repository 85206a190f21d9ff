import { describe, expect, it } from 'vitest'

import {
  ConflictError,
  KvClient,
  type KvCommand,
  KvStateMachine,
  optimisticUpdate,
  tick,
} from '../ts/recipes/index'
import { checkStateMachine, type Random } from '../ts/testing/index'
import { LocalShard } from './local-shard'

const kv = () => {
  const shard = new LocalShard(new KvStateMachine())
  return { shard, client: new KvClient(shard) }
}
const json = (v: unknown) => Buffer.from(JSON.stringify(v))

/** command draws a KV command over a few keys, ticks of a clock that moves on included. */
function command(r: Random, index: number): Buffer {
  const key = `k/${r.int(8)}`
  const value = `v${index}`
  const version = r.chance(0.5) ? 0 : r.int(index)
  const ttlMs = r.chance(0.3) ? 1 + r.int(500) : undefined
  const commands: KvCommand[] = [
    { op: 'set', key, value, ttlMs },
    { op: 'set', key, value, ifVersion: version },
    { op: 'delete', key },
    { op: 'cas', key, expect: r.chance(0.3) ? null : `v${r.int(index)}`, value },
    {
      op: 'txn',
      compare: [{ key, version }],
      set: [{ key: `k/${r.int(8)}`, value, ttlMs }],
      delete: [`k/${r.int(8)}`],
    },
    { op: 'tick', now: 1_000_000 + index * 20 },
  ]
  return json(r.pick(commands))
}

describe('the KV recipe', () => {
  it('is deterministic through restarts, snapshots and installs (the test kit)', async () => {
    for (const seed of [1, 2, 3]) {
      await checkStateMachine({
        factory: () => new KvStateMachine(),
        commands: command,
        queries: () => [
          json({ q: 'get', key: 'k/1' }),
          json({ q: 'range', prefix: 'k/', limit: 3 }),
          json({ q: 'range', prefix: 'k/', after: 'k/3', limit: 100 }),
        ],
        seed,
      })
    }
  })

  it('gets, sets and deletes keys, each write with a version that grows', async () => {
    const { client } = kv()
    expect(await client.get('a')).toBeUndefined()
    const first = await client.set('a', '1')
    const second = await client.set('a', '2')
    expect(first.ok && second.ok && second.version > first.version).toBe(true)
    expect(await client.get('a')).toMatchObject({ key: 'a', value: '2' })
    expect((await client.delete('a')).ok).toBe(true)
    expect(await client.get('a')).toBeUndefined()
  })

  it('refuses a write whose version or value condition fails, with what it found', async () => {
    const { client } = kv()
    const made = await client.set('a', '1', { ifVersion: 0 })
    expect(made.ok).toBe(true)
    const again = await client.set('a', 'x', { ifVersion: 0 })
    expect(again).toMatchObject({ ok: false, current: { value: '1' } })
    const version = made.ok ? made.version : -1
    expect((await client.set('a', '2', { ifVersion: version })).ok).toBe(true)
    expect((await client.set('a', '3', { ifVersion: version })).ok).toBe(false)
    expect((await client.delete('a', { ifVersion: version })).ok).toBe(false)
    expect(await client.compareAndSet('a', '1', 'x')).toMatchObject({ current: { value: '2' } })
    expect((await client.compareAndSet('a', '2', '3')).ok).toBe(true)
    expect((await client.compareAndSet('b', null, 'new')).ok).toBe(true)
    expect((await client.compareAndSet('b', null, 'newer')).ok).toBe(false)
  })

  it('pages through a prefix in key order', async () => {
    const { client } = kv()
    for (let i = 0; i < 25; i++) await client.set(`user/${String(i).padStart(2, '0')}`, `${i}`)
    await client.set('other', 'x')
    await client.set('user', 'the prefix itself')
    const page = await client.range('user/', { limit: 10 })
    expect(page.records.map((r) => r.key)).toEqual(
      Array.from({ length: 10 }, (_, i) => `user/${String(i).padStart(2, '0')}`),
    )
    expect(page.next).toBe('user/09')
    const rest = await client.range('user/', { after: page.next, limit: 100 })
    expect(rest.records).toHaveLength(15)
    expect(rest.next).toBeUndefined()
    const all = []
    for await (const r of client.scan('user/', { limit: 7 })) all.push(r.value)
    expect(all).toEqual(Array.from({ length: 25 }, (_, i) => `${i}`))
  })

  it('expires a key at the first tick of the log time past its TTL, never before', async () => {
    const { client } = kv()
    await client.tick(10_000)
    await client.set('session', 'alive', { ttlMs: 500 })
    await client.set('kept', 'forever')
    expect(await client.get('session')).toMatchObject({ expiresAt: 10_500 })
    await client.tick(10_499)
    expect(await client.get('session')).toBeDefined()
    // A tick from a clock behind (leadership moved) does not move the log time back.
    await client.tick(9_000)
    await client.tick(10_500)
    expect(await client.get('session')).toBeUndefined()
    expect(await client.get('kept')).toBeDefined()
    // Written again without a TTL, a key no longer expires.
    await client.set('s2', 'x', { ttlMs: 100 })
    await client.set('s2', 'y')
    await client.tick(20_000)
    expect(await client.get('s2')).toMatchObject({ value: 'y' })
  })

  it('writes several keys at once only if none changed: the optimistic write lock', async () => {
    const { client } = kv()
    await client.set('from', '100')
    await client.set('to', '0')
    // Two transfers read the same versions; the second to write conflicts and retries.
    let interleaved = false
    const transfer = (n: number) =>
      optimisticUpdate(client, ['from', 'to'], (cur) => {
        const changes = {
          set: {
            from: String(Number(cur.from?.value) - n),
            to: String(Number(cur.to?.value) + n),
          },
        }
        return changes
      })
    const moved = await optimisticUpdate(client, ['from', 'to'], (cur) => {
      if (!interleaved) {
        interleaved = true
        // Another writer gets in between this read and this write.
        void client.set('from', String(Number(cur.from?.value) - 10))
      }
      return {
        set: { from: String(Number(cur.from?.value) - 1), to: String(Number(cur.to?.value) + 1) },
      }
    })
    expect(moved.attempts).toBe(2)
    await transfer(5)
    expect((await client.get('from'))?.value).toBe('84')
    expect((await client.get('to'))?.value).toBe('6')
    // Always beaten: it gives up after its attempts.
    const beaten = optimisticUpdate(
      client,
      ['to'],
      () => {
        void client.set('to', 'changed')
        return { set: { to: 'mine' } }
      },
      { attempts: 3 },
    )
    await expect(beaten).rejects.toBeInstanceOf(ConflictError)
  })

  it('answers a command it cannot read with -1, and applies the ones after it', async () => {
    const { shard, client } = kv()
    expect((await shard.propose(Buffer.from('not json'))).value).toBe(-1)
    expect((await shard.propose(tick(5))).value).toBe(1)
    expect((await client.set('a', '1')).ok).toBe(true)
  })
})
