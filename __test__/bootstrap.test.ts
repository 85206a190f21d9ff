import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

import { Agent, ZongziError } from '../ts/index'
import { ChildClient, freePort, sleep, waitUntil } from './helpers'
import { children, fast, tmp } from './fixtures/six-agents'

describe('bootstrap', () => {
  it('refuses to initialise again from a peer whose data is gone', async () => {
    const peers: string[] = []
    for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
    const agents = peers.map(
      (p) => new Agent('boot-lost', peers, { dataDir: tmp(), apiAddress: p, ...fast }),
    )
    try {
      await Promise.all(agents.map((a) => a.start()))
      await agents[2].stop()
      // The same address, an empty data directory: a new host, not the peer that left.
      const blank = new Agent('boot-lost', peers, { dataDir: tmp(), apiAddress: peers[2], ...fast })
      const err = await blank.start().catch((e) => e)
      expect(err).toBeInstanceOf(ZongziError)
      expect(err.code).toBe('ERR_INVALID_ARGUMENT')
      expect(err.message).toMatch(/join token/)
      const zero = await agents[0].state((s) => s.replicasOf(0).length)
      expect(zero).toBe(3)
    } finally {
      await Promise.all(agents.map((a) => a.stop()))
    }
  })

  it('refuses to start a peer that kept its host id but lost its Raft log', async () => {
    const peers: string[] = []
    for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
    const data = peers.map(() => tmp())
    const mk = (i: number, o: { joinToken?: string } = {}) =>
      new Agent('boot-log', peers, { dataDir: data[i], apiAddress: peers[i], ...fast, ...o })
    const agents = peers.map((_, i) => mk(i))
    const later: Agent[] = []
    try {
      await Promise.all(agents.map((a) => a.start()))
      const lost = agents[2].hostId
      await agents[2].stop()
      rmSync(join(data[2], 'raft'), { recursive: true, force: true })
      // Bootstrapping shard 0 again under its replica id, with an empty log, could vote away
      // committed entries: without a token it is refused, with one it joins as a new host.
      const again = mk(2)
      later.push(again)
      const err = await again.start().catch((e) => e)
      expect(err).toBeInstanceOf(ZongziError)
      expect(err.code).toBe('ERR_INVALID_ARGUMENT')
      expect(err.message).toMatch(/lost its Raft log/)
      const joinToken = await agents[0].createJoinToken()
      const rejoined = mk(2, { joinToken })
      later.push(rejoined)
      await rejoined.start()
      expect(rejoined.hostId).not.toBe(lost)
      // Its earlier identity goes once the registry leader has it missing (it no longer
      // answers as itself at that address); until then it may still be active on record.
      await waitUntil(
        async () => (await agents[0].state((s) => s.hosts.get(lost)?.status)) === 'gone',
        { what: 'the earlier identity gone', timeoutMs: 60_000 },
      )
    } finally {
      await Promise.all([...agents, ...later].map((a) => a.stop()))
    }
  })

  for (const order of ['together', 'one by one', 'reversed, staggered'] as const) {
    it(`initialises one cluster when the peers start ${order}`, async () => {
      const peers: string[] = []
      for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
      const agents = peers.map(
        (p) => new Agent(`boot-${order}`, peers, { dataDir: tmp(), apiAddress: p, ...fast }),
      )
      try {
        if (order === 'together') await Promise.all(agents.map((a) => a.start()))
        else if (order === 'one by one') {
          const started = []
          for (const a of agents) {
            started.push(a.start())
            await sleep(300)
          }
          await Promise.all(started)
        } else {
          const started = []
          for (const a of [...agents].reverse()) {
            started.push(a.start())
            await sleep(150)
          }
          await Promise.all(started)
        }
        for (const a of agents) {
          const view = await a.state((s) => ({
            hosts: s.hosts.size,
            zero: s
              .replicasOf(0)
              .map((r) => r.id)
              .sort(),
            shards: s.shards.size,
          }))
          expect(view).toEqual({ hosts: 3, zero: [1, 2, 3], shards: 1 })
          const st = await a.replicaStatus(0)
          expect([...st.membership.voters].sort()).toEqual([1, 2, 3])
        }
      } finally {
        await Promise.all(agents.map((a) => a.stop()))
      }
    })
  }
})

describe('an agent whose engine host fails', () => {
  it("has status 'failed' with the cause once its log store cannot write", async () => {
    const peers: string[] = []
    for (let i = 0; i < 3; i++) peers.push(`127.0.0.1:${await freePort()}`)
    // The agents' process may write files of 4 MiB at most: a log file outgrows it.
    const child = await ChildClient.start(join(__dirname, 'fixtures', 'failing-agents.mjs'), {
      fileSizeKb: 4096,
    })
    children.push(child)
    const shardId = await child.call<number>('start', { peers, dirs: [tmp(), tmp(), tmp()] })
    const r = await child.call<{
      status: string
      code?: string
      message?: string
      statuses?: string[]
      call?: string
    }>('fill', { shardId })
    expect(r.status).toBe('failed')
    expect(r.code).toBe('ERR_HOST_FAILED')
    expect(r.message).toMatch(/storage/)
    expect(r.statuses).toContain('failed')
    expect(r.call).toBe('ERR_HOST_FAILED')
    await child.call('stop')
  })
})
