import { describe, expect, it } from 'vitest'

import {
  type ElectionCommand,
  ElectionClient,
  ElectionStateMachine,
  type Leader,
  tick,
} from '../ts/recipes/index'
import { checkStateMachine, type Random } from '../ts/testing/index'
import { LocalShard } from './local-shard'

const json = (v: unknown) => Buffer.from(JSON.stringify(v))

/** command draws election commands by four candidates in two elections, and ticks. */
function command(r: Random, index: number): Buffer {
  const election = `e${r.int(2)}`
  const candidate = `c${r.int(4)}`
  const commands: ElectionCommand[] = [
    { op: 'campaign', election, candidate, value: `v${index}`, leaseMs: 50 + r.int(200) },
    { op: 'keepalive', election, candidate, leaseMs: 100 },
    { op: 'resign', election, candidate },
    { op: 'proclaim', election, candidate, term: r.int(index), value: `p${index}` },
    { op: 'tick', now: index * 10 },
  ]
  return json(r.pick(commands))
}

describe('the election recipe', () => {
  it('is deterministic through restarts, snapshots and installs (the test kit)', async () => {
    await checkStateMachine({
      factory: () => new ElectionStateMachine(),
      commands: command,
      queries: () => [json({ election: 'e0' }), json({ election: 'e1' })],
    })
  })

  it('elects the first in line, then the next once it resigns; observers see both', async () => {
    const shard = new LocalShard(new ElectionStateMachine())
    const [a, b, watcher] = ['a', 'b', 'w'].map(
      (candidate) => new ElectionClient(shard, 'scheduler', { candidate, leaseMs: 60_000 }),
    )
    await shard.propose(tick(1000))
    const seen: Array<Leader | undefined> = []
    const stop = new AbortController()
    const observing = (async () => {
      for await (const l of watcher.observe({ signal: stop.signal })) seen.push(l)
    })()
    const first = await a.campaign('host-a:80')
    expect(await watcher.leader()).toMatchObject({ candidate: 'a', value: 'host-a:80' })
    const waiting = b.campaign('host-b:80')
    expect(await first.proclaim('host-a:81')).toBe(true)
    await first.resign()
    const second = await waiting
    expect(second.term).toBeGreaterThan(first.term)
    expect(await watcher.leader()).toMatchObject({ candidate: 'b', value: 'host-b:80' })
    // The old leader's proclamations are refused: its term is over.
    expect(await first.proclaim('stale')).toBe(false)
    second.keepAlive.stop()
    stop.abort()
    await observing
    expect(seen.map((l) => l && `${l.candidate}=${l.value}`)).toEqual([
      undefined,
      'a=host-a:80',
      'a=host-a:81',
      'b=host-b:80',
    ])
  })

  it('hands over when the leader’s lease ends on the log time', async () => {
    const shard = new LocalShard(new ElectionStateMachine())
    const a = new ElectionClient(shard, 'svc', { candidate: 'a', leaseMs: 600 })
    const b = new ElectionClient(shard, 'svc', { candidate: 'b', leaseMs: 600 })
    await shard.propose(tick(1000))
    const first = await a.campaign('a')
    first.keepAlive.stop() // the leader stalls
    const waiting = b.campaign('b')
    // Log time moves past a's lease; b keeps its own place alive meanwhile.
    for (let t = 1000; t <= 1700; t += 20) {
      await shard.propose(tick(t))
      await new Promise((r) => setTimeout(r, 10))
    }
    const second = await waiting
    expect(second.term).toBeGreaterThan(first.term)
    second.keepAlive.stop()
    expect(await b.leader()).toMatchObject({ candidate: 'b' })
  })

  it('gives up a campaign whose signal aborts, leaving the queue', async () => {
    const shard = new LocalShard(new ElectionStateMachine())
    const a = new ElectionClient(shard, 'svc', { candidate: 'a', leaseMs: 60_000 })
    const b = new ElectionClient(shard, 'svc', { candidate: 'b', leaseMs: 60_000 })
    const c = new ElectionClient(shard, 'svc', { candidate: 'c', leaseMs: 60_000 })
    await shard.propose(tick(1000))
    const first = await a.campaign('a')
    const stop = new AbortController()
    const gaveUp = b.campaign('b', { signal: stop.signal })
    stop.abort()
    await expect(gaveUp).rejects.toThrow()
    const waiting = c.campaign('c')
    await first.resign()
    // b left the queue: c is next.
    const next = await waiting
    expect(await c.leader()).toMatchObject({ candidate: 'c', term: next.term })
    next.keepAlive.stop()
  })
})
