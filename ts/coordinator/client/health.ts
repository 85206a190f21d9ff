// HostHealth: what the clients of one agent have seen of the hosts they call. Recent latencies
// say how long to wait before a read is also tried elsewhere (hedging); a circuit breaker per
// host skips, for a while, a host that keeps failing calls.
import { type ErrorCode, ZongziError } from '../../binding/errors'

/** CircuitState is where a host's breaker is: calls go to it, skip it, or try it once. */
export type CircuitState = 'closed' | 'open' | 'half-open'

/** HostHealthOptions tune the breaker and the hedging delay; every field has a default. */
export interface HostHealthOptions {
  /** Failures in a row that open a host's circuit (default 3). */
  failures?: number
  /** How long a circuit first stays open, in ms (default 1,000); doubles while trials fail. */
  openMs?: number
  /** Longest a circuit stays open, in ms (default 10,000). */
  maxOpenMs?: number
  /** Shortest hedging delay in ms (default 50). */
  minHedgeMs?: number
  /** Longest hedging delay in ms (default 1,000). */
  maxHedgeMs?: number
}

/**
 * HOST_FAILURES are the codes that say the host itself did not serve the call (not reachable,
 * closed, failed, silent until the deadline), as opposed to an answer about the shard or the
 * call. Only these, and calls that lost a hedging race, count against a host's circuit.
 */
const HOST_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_UNAVAILABLE',
  'ERR_CLOSED',
  'ERR_HOST_FAILED',
  'ERR_STORAGE',
  'ERR_TIMEOUT',
])

/** isHostFailure tells whether a call's failure counts against the host that served it. */
export function isHostFailure(e: unknown): boolean {
  return e instanceof ZongziError && HOST_FAILURES.has(e.code)
}

interface Circuit {
  state: CircuitState
  /** Failures in a row while closed. */
  failures: number
  /** Times opened in a row without a success. */
  opens: number
  /** While open: when a trial may go. While half-open: when the trial started. */
  at: number
}

const SAMPLES = 64
/** New latencies after which the hedging delay is worked out again. */
const REFRESH = 8

/**
 * HostHealth keeps a circuit per host address and the latencies of recent successful calls.
 * A circuit opens after `failures` failures in a row; while open the host is skipped when
 * another can serve. Once `openMs` has passed (doubling, up to `maxOpenMs`) it is half-open:
 * one call may try the host; a success closes the circuit, a failure opens it again.
 * `onChange` hears every change of a circuit's state.
 */
export class HostHealth {
  readonly #circuits = new Map<string, Circuit>()
  readonly #latencies = new Float64Array(SAMPLES)
  /** How many of #latencies hold a sample. */
  #count = 0
  #next = 0
  /** Latencies recorded since the hedging delay was last worked out. */
  #fresh = 0
  /** hedgeDelay's answer until REFRESH more latencies are recorded. */
  #hedgeDelay: number | undefined
  readonly #o: Required<HostHealthOptions>
  readonly #onChange?: (address: string, state: CircuitState) => void

  /** A host health with these options; `onChange` hears every change of a circuit. */
  constructor(
    o: HostHealthOptions = {},
    onChange?: (address: string, state: CircuitState) => void,
  ) {
    this.#o = {
      failures: o.failures ?? 3,
      openMs: o.openMs ?? 1000,
      maxOpenMs: o.maxOpenMs ?? 10_000,
      minHedgeMs: o.minHedgeMs ?? 50,
      maxHedgeMs: o.maxHedgeMs ?? 1000,
    }
    this.#onChange = onChange
  }

  /** state is the circuit state of a host. */
  state(address: string): CircuitState {
    return this.#circuits.get(address)?.state ?? 'closed'
  }

  /**
   * available tells whether a call may go to the host now. An open circuit whose wait is over
   * turns half-open and lets this one call through; until that trial ends (or its own wait
   * passes) no other call is let through.
   */
  available(address: string, now = Date.now()): boolean {
    const c = this.#circuits.get(address)
    if (!c || c.state === 'closed') return true
    if (now < c.at) return false
    if (c.state === 'open') this.#set(address, c, 'half-open')
    c.at = now + this.#openFor(c)
    return true
  }

  /** success records a call the host answered after `ms` milliseconds. */
  success(address: string, ms: number): void {
    this.latency(ms)
    const c = this.#circuits.get(address)
    if (!c) return
    c.failures = 0
    c.opens = 0
    if (c.state !== 'closed') this.#set(address, c, 'closed')
  }

  /**
   * latency records how long an answered call took, for the hedging delay alone: a call to
   * this host's own replica, which has no circuit, is recorded this way.
   */
  latency(ms: number): void {
    this.#latencies[this.#next] = ms
    this.#next = (this.#next + 1) % SAMPLES
    if (this.#count < SAMPLES) this.#count++
    if (++this.#fresh >= REFRESH) this.#hedgeDelay = undefined
  }

  /** failure records a call the host did not serve. */
  failure(address: string, now = Date.now()): void {
    let c = this.#circuits.get(address)
    if (!c) {
      c = { state: 'closed', failures: 0, opens: 0, at: 0 }
      this.#circuits.set(address, c)
    }
    if (c.state === 'open') return // a call from before it opened
    if (c.state === 'closed' && ++c.failures < this.#o.failures) return
    c.failures = 0
    c.opens++
    c.at = now + this.#openFor(c)
    this.#set(address, c, 'open')
  }

  /**
   * hedgeDelay is how long a read waits for an answer before it is also sent to another host:
   * twice the 90th percentile of the last 64 latencies, within the configured bounds, worked
   * out again after every 8 new ones.
   */
  hedgeDelay(): number {
    const n = this.#count
    if (n === 0) return this.#o.minHedgeMs
    if (this.#hedgeDelay !== undefined) return this.#hedgeDelay
    // A typed array sorts numerically, natively, without a comparator.
    const sorted = this.#latencies.slice(0, n).sort()
    const p90 = sorted[Math.min(n - 1, Math.floor(n * 0.9))]
    this.#hedgeDelay = Math.min(this.#o.maxHedgeMs, Math.max(this.#o.minHedgeMs, 2 * p90))
    this.#fresh = 0
    return this.#hedgeDelay
  }

  #openFor(c: Circuit): number {
    return Math.min(this.#o.maxOpenMs, this.#o.openMs * 2 ** Math.max(0, c.opens - 1))
  }

  #set(address: string, c: Circuit, s: CircuitState): void {
    c.state = s
    this.#onChange?.(address, s)
  }
}
