import { describe, expect, it } from 'vitest'

import { type LockCommand, LockClient, LockStateMachine, tick } from '../ts/recipes/index'
import { checkStateMachine, type Random } from '../ts/testing/index'
import { LocalShard } from './local-shard'

const json = (v: unknown) => Buffer.from(JSON.stringify(v))

/** command draws lock commands by three owners over two locks, and ticks. */
function command(r: Random, index: number): Buffer {
  const name = `lock${r.int(2)}`
  const owner = `o${r.int(3)}`
  const token = r.int(index)
  const commands: LockCommand[] = [
    { op: 'acquire', name, owner, leaseMs: 100 + r.int(200) },
    { op: 'renew', name, owner, token, leaseMs: 200 },
    { op: 'release', name, owner, token },
    { op: 'tick', now: index * 10 },
  ]
  return json(r.pick(commands))
}

const setup = (leaseMs = 300) => {
  const shard = new LocalShard(new LockStateMachine())
  return {
    shard,
    a: new LockClient(shard, { owner: 'a', leaseMs }),
    b: new LockClient(shard, { owner: 'b', leaseMs }),
  }
}

describe('the lock recipe', () => {
  it('is deterministic through restarts, snapshots and installs (the test kit)', async () => {
    await checkStateMachine({
      factory: () => new LockStateMachine(),
      commands: command,
      queries: () => [json({ name: 'lock0' }), json({ name: 'lock1' })],
    })
  })

  it('grants a lock to one owner at a time, with a fencing token that grows', async () => {
    const { shard, a, b } = setup()
    await shard.propose(tick(1000))
    const first = await a.tryAcquire('job')
    expect(first).toBeDefined()
    expect(await b.tryAcquire('job')).toBeUndefined()
    expect(await b.holder('job')).toMatchObject({ owner: 'a', token: first?.token })
    expect(await first?.release()).toBe(true)
    const second = await b.tryAcquire('job')
    expect(second?.token).toBeGreaterThan(first?.token ?? Number.POSITIVE_INFINITY)
    second?.keepAlive.stop()
  })

  it('takes a lock whose lease ended on the log time; the old holder cannot renew', async () => {
    const { shard, a, b } = setup(10_000)
    await shard.propose(tick(1000))
    const old = await a.tryAcquire('job')
    old?.keepAlive.stop() // the holder stalls: no renewal
    await shard.propose(tick(10_999))
    expect(await b.tryAcquire('job')).toBeUndefined()
    await shard.propose(tick(11_000))
    const next = await b.tryAcquire('job')
    expect(next?.token).toBeGreaterThan(old?.token ?? Number.POSITIVE_INFINITY)
    next?.keepAlive.stop()
    // The stale holder's renewal and release are refused: its token is not the holder's.
    const renew = { op: 'renew', name: 'job', owner: 'a', token: old?.token, leaseMs: 1000 }
    expect((await shard.propose(json(renew))).value).toBe(0)
    expect(await old?.release()).toBe(false)
    expect(await b.holder('job')).toMatchObject({ owner: 'b' })
  })

  it('keeps a held lease alive, and aborts its signal once a renewal is refused', async () => {
    const { shard, a, b } = setup(600)
    await shard.propose(tick(1000))
    const lease = await a.acquire('job')
    // Renewals go on in the background (every 200 ms): the log time passes a whole lease,
    // slower than real time, and the lock stays.
    for (let t = 1000; t <= 1800; t += 10) {
      await shard.propose(tick(t))
      await new Promise((r) => setTimeout(r, 25))
    }
    expect(await b.holder('job')).toMatchObject({ owner: 'a', token: lease.token })
    expect(lease.signal.aborted).toBe(false)
    // Another process takes the lock by force (a release in a's name, as a lapse would).
    await shard.propose(json({ op: 'release', name: 'job', owner: 'a', token: lease.token }))
    await new Promise<void>((r) => lease.signal.addEventListener('abort', () => r()))
    expect(lease.signal.reason.message).toMatch(/lost/)
  })

  it('waits in acquire until the holder releases', async () => {
    const { shard, a, b } = setup()
    await shard.propose(tick(1000))
    const held = await a.acquire('job')
    const waiting = b.acquire('job', { retryMs: 5 })
    await new Promise((r) => setTimeout(r, 30))
    await held.release()
    const got = await waiting
    expect(got.token).toBeGreaterThan(held.token)
    got.keepAlive.stop()
    await expect(a.acquire('job', { timeoutMs: 50, retryMs: 5 })).rejects.toThrow(
      /not acquired within 50 ms/,
    )
  })
})
