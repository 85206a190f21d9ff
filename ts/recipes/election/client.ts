// The election recipe's client: campaign for an election and hold it while alive, observe
// who leads, resign.
import { randomUUID } from 'node:crypto'

import { KeepAlive } from '../keepalive'
import type { CallOptions, ShardCalls } from '../shard'
import {
  decodeLeader,
  decodeStanding,
  type ElectionCommand,
  encodeCommand,
  encodeQuery,
  type Leader,
  type Standing,
} from './codec'

/** ElectionOptions configure an ElectionClient. */
export interface ElectionOptions {
  /** Who campaigns (default a random UUID). */
  candidate?: string
  /** Length of a candidate's lease in ms (default 10,000). */
  leaseMs?: number
}

/**
 * Leadership is an election won. `signal` aborts when it is lost (its lease ended, or another
 * took over); `term` grows with each leader, so it fences like a lock's token.
 */
export class Leadership {
  /** @internal */
  constructor(
    readonly term: number,
    readonly keepAlive: KeepAlive,
    /** Resigns: the next candidate in line leads. */
    readonly resign: () => Promise<void>,
    /** Changes what the leader announces; resolves false if it no longer leads. */
    readonly proclaim: (value: string) => Promise<boolean>,
  ) {}

  /** signal aborts once leadership is lost. */
  get signal(): AbortSignal {
    return this.keepAlive.signal
  }
}

/**
 * ElectionClient campaigns in one election on a shard that runs an ElectionStateMachine,
 * through a ShardClient (`new ElectionClient(agent.client(shardId), 'scheduler')`). Leases
 * end on the leader's clock, which a LeaderClock must put in the log.
 */
export class ElectionClient {
  readonly candidate: string
  readonly leaseMs: number

  /** Makes a client for `election` over `shard`. */
  constructor(
    readonly shard: ShardCalls,
    readonly election: string,
    o: ElectionOptions = {},
  ) {
    this.candidate = o.candidate ?? randomUUID()
    this.leaseMs = o.leaseMs ?? 10_000
  }

  /**
   * campaign joins the election announcing `value`, and resolves once this candidate leads:
   * at once if nobody did, or when those before it resign or lose their lease. Meanwhile it
   * keeps its place alive. `signal` (or losing its place) ends the campaign with a rejection.
   */
  async campaign(value: string, o: CallOptions = {}): Promise<Leadership> {
    const { election, candidate, leaseMs } = this
    let sent = performance.now()
    let standing = await this.#send({ op: 'campaign', election, candidate, value, leaseMs }, o)
    let lastOk = sent
    // While waiting, a change of leader (seen through a watch) wakes the candidate at once;
    // without one it asks again every sixth of a lease, which also keeps its place alive.
    const changes = standing.leads ? undefined : this.#changes()
    try {
      while (!standing.leads) {
        if (o.signal?.aborted) {
          await this.#resign().catch(() => {})
          o.signal.throwIfAborted()
        }
        if (!standing.campaigning) throw new Error(`election ${election}: lost its place`)
        await changes?.next(Math.max(5, leaseMs / 6), o.signal)
        sent = performance.now()
        try {
          standing = await this.#send({ op: 'keepalive', election, candidate, leaseMs }, o)
          lastOk = sent
        } catch (e) {
          if (o.signal?.aborted || performance.now() - lastOk > (leaseMs * 2) / 3) throw e
        }
      }
    } finally {
      changes?.stop()
    }
    const term = standing.leader?.term ?? 0
    const keepAlive = new KeepAlive(
      leaseMs,
      async (timeoutMs) => {
        const s = await this.#send({ op: 'keepalive', election, candidate, leaseMs }, { timeoutMs })
        return s.leads && s.leader?.term === term
      },
      lastOk,
    )
    return new Leadership(
      term,
      keepAlive,
      async () => {
        keepAlive.stop()
        await this.#resign()
      },
      async (v) => {
        const s = await this.#send({ op: 'proclaim', election, candidate, term, value: v })
        return s.leads && s.leader?.value === v
      },
    )
  }

  /** leader reads who leads now, or undefined. */
  async leader(o: CallOptions = {}): Promise<Leader | undefined> {
    return decodeLeader(await this.shard.read(encodeQuery({ election: this.election }), o))
  }

  /**
   * observe yields the leader (undefined: none) now and at each change, as the replica that
   * serves the watch applies it, until `signal` aborts.
   */
  async *observe(o: { signal?: AbortSignal } = {}): AsyncIterable<Leader | undefined> {
    for await (const b of this.shard.watch(encodeQuery({ election: this.election }), o)) {
      yield decodeLeader(b)
    }
  }

  /** #changes watches the election for changes of leader, to wake a waiting candidate. */
  #changes(): Wakeup {
    const stop = new AbortController()
    const wakeup = new Wakeup(stop)
    void (async () => {
      try {
        for await (const _ of this.shard.watch(encodeQuery({ election: this.election }), {
          signal: stop.signal,
        })) {
          wakeup.wake()
        }
      } catch {
        // No watch (or it broke): the candidate asks at intervals instead.
      }
    })()
    return wakeup
  }

  async #resign(): Promise<void> {
    await this.#send({ op: 'resign', election: this.election, candidate: this.candidate })
  }

  async #send(c: ElectionCommand, o: CallOptions = {}): Promise<Standing> {
    return decodeStanding(await this.shard.propose(encodeCommand(c), o))
  }
}

/** Wakeup is a wait that ends early when woken. */
class Wakeup {
  #wake: (() => void) | undefined
  #woken = false

  constructor(readonly controller: AbortController) {}

  /** wake ends the current wait, or the next one at once. */
  wake(): void {
    this.#woken = true
    this.#wake?.()
  }

  /** next waits up to `ms`, until woken, or until `signal` aborts. */
  next(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#woken) {
      this.#woken = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        this.#wake = undefined
        this.#woken = false
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#wake = done
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  /** stop ends the watch. */
  stop(): void {
    this.controller.abort()
  }
}
