// Time for state machines. Entries carry no timestamp, and a state machine must not read the
// clock (its replicas would disagree), so the time a recipe needs for TTLs and leases is put
// in the log: the host whose replica leads proposes its clock now and then, and the state
// machine's time is the largest it has applied. Every replica then sees the same time at the
// same entry.
import type { Agent } from '../coordinator/agent'
import { json } from './shard'

/** Tick is the command that carries the leader's clock into the log. */
export interface Tick {
  op: 'tick'
  /** Milliseconds since the epoch on the proposing host. */
  now: number
}

/** tick encodes a Tick: every recipe's state machine applies it. */
export const tick = (now: number): Buffer => json({ op: 'tick', now } satisfies Tick)

/**
 * LogTime is a state machine's time: the largest tick applied, so that it never goes back
 * when leadership moves to a host whose clock is behind (it stands still until that clock
 * catches up instead).
 */
export class LogTime {
  /** The time, in ms since the epoch; 0 before the first tick. */
  now = 0

  /** advance applies a tick and returns the time. */
  advance(t: number): number {
    if (Number.isFinite(t) && t > this.now) this.now = t
    return this.now
  }
}

/** LeaderClockOptions configure a LeaderClock. */
export interface LeaderClockOptions {
  /** How often to propose the time while leading, in ms (default 1,000). */
  intervalMs?: number
  /** The clock read (default Date.now); a test may pass its own. */
  now?: () => number
}

/** ClockContext is what a LeaderClock needs: whether this host leads, and a way to propose. */
export interface ClockContext {
  /** leads tells whether this host's replica of the shard leads it now. */
  leads(): Promise<boolean>
  /** propose proposes a command to the shard. */
  propose(command: Uint8Array): Promise<unknown>
}

/**
 * LeaderClock proposes this host's time into a shard's log every `intervalMs` while its
 * replica leads. Run one on every host that has a replica of the shard: only the leader's
 * proposes, and when leadership moves the new leader's clock takes over. A TTL or lease then
 * ends at the first tick at or after its deadline, which counts from a log time up to
 * `intervalMs` behind the leader's clock: it lasts its length give or take `intervalMs`
 * (longer while the shard has no leader, and off by as much as two leaders' clocks differ).
 */
export class LeaderClock {
  readonly #ctx: ClockContext
  readonly #intervalMs: number
  readonly #now: () => number
  #timer: NodeJS.Timeout | undefined
  #busy = false

  /** Makes a clock over `ctx`; `start` starts it. */
  constructor(ctx: ClockContext, o: LeaderClockOptions = {}) {
    this.#ctx = ctx
    this.#intervalMs = o.intervalMs ?? 1000
    this.#now = o.now ?? Date.now
  }

  /** forAgent makes a clock for the replica of `shardId` on `agent`'s host. */
  static forAgent(agent: Agent, shardId: number, o: LeaderClockOptions = {}): LeaderClock {
    const client = agent.client(shardId)
    return new LeaderClock(
      {
        async leads() {
          if (!agent.runs(shardId)) return false
          const s = await agent.replicaStatus(shardId)
          return s.leaderId !== 0 && s.leaderId === s.replicaId
        },
        propose: (command) => client.propose(command, { timeoutMs: o.intervalMs ?? 1000 }),
      },
      o,
    )
  }

  /** start proposes the time now (if leading) and every interval after; it returns `this`. */
  start(): this {
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.tickNow(), this.#intervalMs)
      this.#timer.unref()
      void this.tickNow()
    }
    return this
  }

  /** stop stops proposing. */
  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /**
   * tickNow proposes the time once if this host leads, and resolves with whether it did. A
   * failure (leadership lost meanwhile, a timeout) is dropped: the next tick carries on.
   */
  async tickNow(): Promise<boolean> {
    if (this.#busy) return false
    this.#busy = true
    try {
      if (!(await this.#ctx.leads())) return false
      await this.#ctx.propose(tick(this.#now()))
      return true
    } catch {
      return false
    } finally {
      this.#busy = false
    }
  }
}
