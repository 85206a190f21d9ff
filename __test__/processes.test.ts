import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

const FIXTURE = join(__dirname, 'fixtures', 'host-process.mjs')
const CLUSTER = 21

/** Reply is what a child process answers to a call: its id, and a value or an error. */
interface Reply {
  id?: number
  ok?: boolean
  value?: unknown
}

/** Proc is a host running in a child process. */
class Proc {
  readonly child: ChildProcess
  readonly #waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >()
  #next = 1
  address = ''

  private constructor(child: ChildProcess) {
    this.child = child
    child.on('message', (m: Reply) => {
      const w = m.id === undefined ? undefined : this.#waiting.get(m.id)
      if (!w || m.id === undefined) return
      this.#waiting.delete(m.id)
      if (m.ok) w.resolve(m.value)
      else {
        const e = m.value as { code?: string; message?: string } | undefined
        w.reject(Object.assign(new Error(e?.message), { code: e?.code }))
      }
    })
    child.on('exit', () => {
      for (const w of this.#waiting.values()) w.reject(new Error('process exited'))
      this.#waiting.clear()
    })
  }

  static async start(dataDir: string, raftAddress = '127.0.0.1:0'): Promise<Proc> {
    const child = fork(FIXTURE, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    procs.push(child)
    await new Promise<void>((resolve) => child.once('message', () => resolve()))
    const p = new Proc(child)
    p.address = await p.call<string>('open', {
      options: { clusterId: CLUSTER, dataDir, raftAddress, tickMs: 10 },
    })
    return p
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve: (v) => resolve(v as T), reject })
      this.child.send({ id, op, ...args })
    })
  }

  exited(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null)
      return Promise.resolve(this.child.exitCode)
    return new Promise((resolve) => this.child.once('exit', (code) => resolve(code)))
  }
}

const procs: ChildProcess[] = []
const dirs: string[] = []
afterEach(() => {
  for (const c of procs.splice(0))
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'zongzi-proc-'))
  dirs.push(d)
  return d
}

const rid = (shard: number, host: number) => shard * 100 + host + 1

async function retry<T>(f: () => Promise<T>, attempts = 400): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f()
    } catch (e) {
      if (i >= attempts) throw e
      await new Promise((r) => setTimeout(r, 25))
    }
  }
}

async function leaderOf(ps: Array<Proc | undefined>, shard: number): Promise<number> {
  return retry(async () => {
    const st = await Promise.all(
      ps.map((p) =>
        p
          ?.call<{ replicaId: number; leaderId: number }>('status', { shardId: shard })
          .catch(() => undefined),
      ),
    )
    const l = st.find((s) => s)?.leaderId
    const i = st.findIndex((s) => s && s.replicaId === l)
    if (!l || i < 0 || st.some((s) => s && s.leaderId !== l))
      throw new Error('no agreed leader yet')
    return i
  })
}

async function cluster(): Promise<{ ps: Proc[]; dirs: string[] }> {
  const ds = [tmp(), tmp(), tmp()]
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
    ps[l].child.kill('SIGKILL')
    await ps[l].exited()
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
    const p = await Proc.start(tmp())
    await p.call('start', {
      shardId: 1,
      replicaId: 1,
      start: { mode: 'bootstrap', voters: [{ replicaId: 1, address: p.address }] },
    })
    await retry(() => p.call('put', { shardId: 1, k: 'a', v: '1', timeoutMs: 2000 }))
    await p.call('close')
    p.child.disconnect()
    expect(await p.exited()).toBe(0)
  })
})
