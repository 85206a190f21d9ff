import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { agreedLeader, ChildClient, replicaId as rid, retry, TempDirs, waitUntil } from './helpers'

const FIXTURE = join(__dirname, 'fixtures', 'host-process.mjs')
const CLUSTER = 21
const dirs = new TempDirs('zongzi-proc-')
const children: ChildClient[] = []

afterEach(() => {
  for (const c of children.splice(0)) c.kill()
  dirs.removeAll()
})

/** Proc is a host running in a child process, and the raft address it listens on. */
class Proc {
  private constructor(
    readonly client: ChildClient,
    readonly address: string,
  ) {}

  static async start(dataDir: string, raftAddress = '127.0.0.1:0'): Promise<Proc> {
    const client = await ChildClient.start(FIXTURE)
    children.push(client)
    const address = await client.call<string>('open', {
      options: { clusterId: CLUSTER, dataDir, raftAddress, tickMs: 10 },
    })
    return new Proc(client, address)
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    return this.client.call<T>(op, args)
  }
}

function leaderOf(ps: Proc[], shard: number): Promise<number> {
  return waitUntil(
    async () => {
      const st = await Promise.all(
        ps.map((p) =>
          p
            .call<{ replicaId: number; leaderId: number }>('status', { shardId: shard })
            .catch(() => undefined),
        ),
      )
      return agreedLeader(st)
    },
    { what: `an agreed leader of shard ${shard}` },
  )
}

async function cluster(): Promise<{ ps: Proc[]; dirs: string[] }> {
  const ds = [dirs.make(), dirs.make(), dirs.make()]
  const ps = await Promise.all(ds.map((d) => Proc.start(d)))
  const voters = ps.map((p, i) => ({ replicaId: rid(1, i), address: p.address }))
  await Promise.all(
    ps.map((p, i) =>
      p.call('start', { shardId: 1, replicaId: rid(1, i), start: { mode: 'bootstrap', voters } }),
    ),
  )
  return { ps, dirs: ds }
}

describe('hosts in separate processes', () => {
  it('replicate writes and serve linearizable reads from every host', async () => {
    const { ps } = await cluster()
    for (let i = 0; i < 30; i++) {
      await retry(() =>
        ps[i % 3].call('put', { shardId: 1, k: `k${i}`, v: String(i), timeoutMs: 2000 }),
      )
    }
    for (const p of ps) {
      for (const i of [0, 15, 29])
        expect(await retry(() => p.call('get', { shardId: 1, k: `k${i}` }))).toBe(String(i))
    }
    await Promise.all(ps.map((p) => p.call('close')))
  })

  it('survive SIGKILL of the leader process, which restarts from disk and catches up', async () => {
    const { ps, dirs: ds } = await cluster()
    const l = await leaderOf(ps, 1)
    const acked: string[] = []
    for (let i = 0; i < 50; i++) {
      await retry(() =>
        ps[i % 3].call('put', { shardId: 1, k: `k${i}`, v: String(i), timeoutMs: 2000 }),
      )
      acked.push(`k${i}`)
    }
    const killedAddress = ps[l].address
    ps[l].client.kill()
    await ps[l].client.exited()
    // A call to a dead child fails at once rather than by a timeout.
    await expect(ps[l].call('status', { shardId: 1 })).rejects.toThrow(/exited/)
    const survivors = [0, 1, 2].filter((i) => i !== l)
    for (let i = 50; i < 100; i++) {
      await retry(() =>
        ps[survivors[i % 2]].call('put', { shardId: 1, k: `k${i}`, v: String(i), timeoutMs: 2000 }),
      )
      acked.push(`k${i}`)
    }
    for (const [i, k] of acked.entries()) {
      expect(await retry(() => ps[survivors[0]].call('get', { shardId: 1, k }))).toBe(String(i))
    }
    const back = await Proc.start(ds[l], killedAddress)
    await back.call('restartAll')
    ps[l] = back
    for (const [i, k] of acked.entries()) {
      expect(await retry(() => back.call('get', { shardId: 1, k }))).toBe(String(i))
    }
    await Promise.all(ps.map((p) => p.call('close')))
  })

  it('exit by themselves once the host is closed', async () => {
    const p = await Proc.start(dirs.make())
    await p.call('start', {
      shardId: 1,
      replicaId: 1,
      start: { mode: 'bootstrap', voters: [{ replicaId: 1, address: p.address }] },
    })
    await retry(() => p.call('put', { shardId: 1, k: 'a', v: '1', timeoutMs: 2000 }))
    await p.call('close')
    p.client.child.disconnect()
    expect(await p.client.exited()).toBe(0)
  })
})
