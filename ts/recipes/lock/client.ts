// The lock recipe's client: acquire a named lock under a lease kept alive in the background,
// with the fencing token a guarded resource checks.
import { randomUUID } from 'node:crypto'

import { KeepAlive } from '../keepalive'
import type { CallOptions, ShardCalls } from '../shard'
import { parse } from '../shard'
import { decodeAnswer, encodeCommand, encodeQuery, type Holder } from './codec'

/** LockClientOptions configure a LockClient. */
export interface LockClientOptions {
  /** Who this client is (default a random UUID): a lock held by one owner is not another's. */
  owner?: string
  /** Length of a lease in ms (default 10,000). */
  leaseMs?: number
}

/** AcquireOptions bound waiting for a lock. */
export interface AcquireOptions extends CallOptions {
  /** How often to try again while another holds the lock, in ms (default a tenth of a lease). */
  retryMs?: number
}

/**
 * Lease is a held lock. Its `token` fences: pass it with every write to what the lock
 * guards, and have that refuse a token smaller than the largest it has seen, so that a holder
 * whose lease ended (paused, partitioned) cannot overwrite its successor. `signal` aborts
 * when the lease is lost; stop acting on the lock then.
 */
export class Lease {
  /** @internal */
  constructor(
    readonly name: string,
    readonly token: number,
    readonly keepAlive: KeepAlive,
    /** Releases the lock; resolves false if the lease had already ended. */
    readonly release: () => Promise<boolean>,
  ) {}

  /** signal aborts once the lease is lost (a renewal refused, or none in time). */
  get signal(): AbortSignal {
    return this.keepAlive.signal
  }
}

/**
 * LockClient takes locks on a shard that runs a LockStateMachine, through a ShardClient
 * (`new LockClient(agent.client(shardId))`). Leases end on the leader's clock, which a
 * LeaderClock must put in the log.
 */
export class LockClient {
  readonly owner: string
  readonly leaseMs: number

  /** Makes a client over `shard`. */
  constructor(
    readonly shard: ShardCalls,
    o: LockClientOptions = {},
  ) {
    this.owner = o.owner ?? randomUUID()
    this.leaseMs = o.leaseMs ?? 10_000
  }

  /** tryAcquire takes the lock if it is free, and resolves with the lease or undefined. */
  async tryAcquire(name: string, o: CallOptions = {}): Promise<Lease | undefined> {
    const started = performance.now()
    const cmd = encodeCommand({ op: 'acquire', name, owner: this.owner, leaseMs: this.leaseMs })
    const { granted, holder } = decodeAnswer(await this.shard.propose(cmd, o))
    if (!granted || !holder) return undefined
    return this.#lease(holder, started)
  }

  /** acquire waits until it takes the lock (or `signal` aborts, or the timeout passes). */
  async acquire(name: string, o: AcquireOptions = {}): Promise<Lease> {
    const retryMs = o.retryMs ?? Math.max(10, this.leaseMs / 10)
    const deadline =
      o.timeoutMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + o.timeoutMs
    for (;;) {
      o.signal?.throwIfAborted()
      const left = deadline - performance.now()
      if (left <= 0) throw new Error(`lock ${name}: not acquired within ${o.timeoutMs} ms`)
      const timeoutMs = Number.isFinite(left) ? left : undefined
      try {
        const lease = await this.tryAcquire(name, { signal: o.signal, timeoutMs })
        if (lease) return lease
      } catch (e) {
        // A consensus failure (no leader yet, a timeout): try again until the deadline.
        if (o.signal?.aborted || performance.now() >= deadline) throw e
      }
      await new Promise((r) => setTimeout(r, Math.min(retryMs, Math.max(0, left))))
    }
  }

  /** holder reads who holds a lock now, or undefined. */
  async holder(name: string, o: CallOptions = {}): Promise<Holder | undefined> {
    return parse<Holder>(await this.shard.read(encodeQuery({ name }), o))
  }

  #lease(h: Holder, started: number): Lease {
    const { name, token } = h
    const renew = async (timeoutMs: number) => {
      const cmd = encodeCommand({
        op: 'renew',
        name,
        owner: this.owner,
        token,
        leaseMs: this.leaseMs,
      })
      return decodeAnswer(await this.shard.propose(cmd, { timeoutMs })).granted
    }
    const keepAlive = new KeepAlive(this.leaseMs, renew, started)
    const release = async () => {
      keepAlive.stop()
      const cmd = encodeCommand({ op: 'release', name, owner: this.owner, token })
      return decodeAnswer(await this.shard.propose(cmd)).granted
    }
    return new Lease(name, token, keepAlive, release)
  }
}
