// Helpers shared by the TypeScript tests: temp dirs, waiting and retrying, free ports, and a
// client for fixtures that run in child processes.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'

import { afterAll } from 'vitest'

import { type Agent, ZongziError } from '../ts/index'
import type { ChildClient } from '../harness/child-client.mjs'

/**
 * codeOf resolves with the code of the ZongziError that `p` (a promise, or a function that
 * returns or throws) fails with; it rejects if `p` succeeds or fails with anything else.
 */
export async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    if (e instanceof ZongziError) return e.code
    throw new Error(`expected a ZongziError, got ${String(e)}`)
  }
  throw new Error('expected a rejection')
}

/** sleep resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** text decodes bytes as UTF-8; an absent answer (undefined) stays undefined. */
export const text = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : Buffer.from(b).toString()

/** replicaId numbers the replica of `shard` on the `host`-th host of a test, from 1. */
export const replicaId = (shard: number, host: number): number => shard * 100 + host + 1

/**
 * TempDirs creates directories under the OS temp dir and removes them all in `removeAll`,
 * which a test file calls in its teardown, after closing what uses them.
 */
export class TempDirs {
  readonly #dirs: string[] = []

  constructor(readonly prefix: string) {}

  /** make creates a new empty directory. */
  make(): string {
    const d = mkdtempSync(join(tmpdir(), this.prefix))
    this.#dirs.push(d)
    return d
  }

  /** removeAll removes every directory made so far. */
  removeAll(): void {
    for (const d of this.#dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  }
}

/** RetryOptions bound a retry: how long in all, and how long between attempts. */
export interface RetryOptions {
  /** Give up after this long; the last failure is thrown. Default 15 s. */
  timeoutMs?: number
  /** Wait between attempts. Default 25 ms. */
  intervalMs?: number
}

/** retry calls `f` until it resolves, and throws its last error once the time is up. */
export async function retry<T>(f: () => Promise<T>, o: RetryOptions = {}): Promise<T> {
  const deadline = Date.now() + (o.timeoutMs ?? 15_000)
  for (;;) {
    try {
      return await f()
    } catch (e) {
      if (Date.now() >= deadline) throw e
    }
    await sleep(o.intervalMs ?? 25)
  }
}

/** WaitOptions name what a wait is for, to say so when it times out. */
export interface WaitOptions extends RetryOptions {
  /** What is awaited, for the timeout message. */
  what?: string
}

/** Done is what a wait returns: the value, without the results that mean "not yet". */
export type Done<T> = Exclude<T, undefined | null | false>

/**
 * waitUntil calls `f` until it returns a value other than undefined, null or false, and
 * returns that value. Errors `f` throws count as "not yet"; once the time is up (default
 * 30 s) the last one is thrown, or a timeout error naming `what`.
 */
export function waitUntil<T>(f: () => T | Promise<T>, o: WaitOptions = {}): Promise<Done<T>> {
  return retry(
    async () => {
      const v = await f()
      if (v === undefined || v === null || v === false)
        throw new Error(`timed out waiting for ${o.what ?? 'a condition'}`)
      return v as Done<T>
    },
    { timeoutMs: o.timeoutMs ?? 30_000, intervalMs: o.intervalMs ?? 50 },
  )
}

/** ReplicaView is the part of a replica's status that tells who leads. */
export interface ReplicaView {
  replicaId: number
  leaderId: number
}

/**
 * agreedLeader returns the position of the leader that every answering replica names, or
 * undefined while they do not agree or the leader does not answer.
 */
export function agreedLeader(statuses: Array<ReplicaView | undefined>): number | undefined {
  const leader = statuses.find((s) => s)?.leaderId
  if (!leader || statuses.some((s) => s && s.leaderId !== leader)) return undefined
  const i = statuses.findIndex((s) => s?.replicaId === leader)
  return i < 0 ? undefined : i
}

export { ChildClient, ChildError } from '../harness/child-client.mjs'
export { freePort } from '../harness/ports.mjs'

/**
 * closedBy resolves once the far end closes a socket we wrote `bytes` to (true), or not
 * within 5 s (false). What the far end sends back (a TLS alert) is read and dropped.
 */
export function closedBy(socket: Duplex, bytes: Buffer) {
  return new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 5000)
    const done = () => {
      clearTimeout(t)
      resolve(true)
    }
    socket.on('error', done)
    socket.on('close', done)
    socket.resume()
    socket.write(bytes)
  })
}

/**
 * CutProxy forwards TCP connections from a port on 127.0.0.1 to `target` (`host:port`). Once
 * `cut()`, it drops what either end sends and keeps both connections open: a partition as
 * the ends see it (no FIN, no RST, no answer), until `mend()`.
 */
export class CutProxy {
  #cut = false
  #address = ''
  readonly #sockets = new Set<Socket>()

  private constructor(readonly server: Server) {}

  /** address is where to dial instead of the target. */
  get address(): string {
    return this.#address
  }

  /** start listens on a free port of 127.0.0.1 and forwards to `target`. */
  static start(target: string): Promise<CutProxy> {
    const i = target.lastIndexOf(':')
    const [host, port] = [target.slice(0, i), Number(target.slice(i + 1))]
    return new Promise((resolve) => {
      const server = createServer((inbound) => {
        const outbound = connect(port, host)
        for (const [from, to] of [
          [inbound, outbound],
          [outbound, inbound],
        ]) {
          proxy.#sockets.add(from)
          from.on('data', (d) => {
            if (!proxy.#cut) to.write(d)
          })
          from.on('error', () => to.destroy())
          from.on('close', () => {
            proxy.#sockets.delete(from)
            to.destroy()
          })
        }
      })
      const proxy: CutProxy = new CutProxy(server)
      server.listen(0, '127.0.0.1', () => {
        proxy.#address = `127.0.0.1:${(server.address() as { port: number }).port}`
        resolve(proxy)
      })
    })
  }

  /** cut drops everything either end sends from now on. */
  cut(): void {
    this.#cut = true
  }

  /** mend forwards again (what was dropped stays lost). */
  mend(): void {
    this.#cut = false
  }

  /** close ends every connection and stops listening. */
  close(): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

/**
 * stopsAfterAll returns the lists a test file puts what it starts in (agents, child processes,
 * temp dirs with `prefix`), and stops and removes all of them once the file's tests are done.
 */
export function stopsAfterAll(prefix: string): {
  dirs: TempDirs
  agents: Agent[]
  children: ChildClient[]
} {
  const out = { dirs: new TempDirs(prefix), agents: [] as Agent[], children: [] as ChildClient[] }
  afterAll(async () => {
    for (const c of out.children) c.kill()
    await Promise.allSettled(out.agents.map((a) => a.stop()))
    out.dirs.removeAll()
  })
  return out
}
