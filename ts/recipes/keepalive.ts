// Keeping a lease alive from a client: renew it every third of its length, and give it up
// (abort a signal) when a renewal is refused or none succeeded for two thirds of a lease.

/** KeepAlive renews a lease until stopped, and aborts `signal` once the lease is lost. */
export class KeepAlive {
  readonly #controller = new AbortController()
  readonly #timer: NodeJS.Timeout
  #lastOk: number
  #busy = false
  /** How long after a renewal was sent the holder may rely on the lease. */
  readonly #validMs: number

  /**
   * Starts renewing with `renew` (which resolves false when the lease is gone) every
   * `leaseMs / 3`, for a lease granted by a request sent at `granted` (performance.now()).
   * A lease counts as lost when `renew` says so, or when no renewal succeeded for two thirds
   * of `leaseMs` since the last one was sent: the holder must then stop acting on it. The
   * third kept back covers a lease that the state machine ends early, on a log time up to a
   * LeaderClock interval behind (keep the interval well under a third of a lease).
   */
  constructor(
    readonly leaseMs: number,
    /** Renews the lease within `timeoutMs`; resolves false when the lease is gone. */
    readonly renew: (timeoutMs: number) => Promise<boolean>,
    granted = performance.now(),
  ) {
    // The lease runs from when the request that granted it was sent, at the latest.
    this.#lastOk = granted
    this.#validMs = (leaseMs * 2) / 3
    this.#timer = setInterval(() => void this.#beat(), Math.max(1, Math.floor(leaseMs / 3)))
    this.#timer.unref()
  }

  /** signal aborts when the lease is lost (not when it is stopped). */
  get signal(): AbortSignal {
    return this.#controller.signal
  }

  /** stop stops renewing. */
  stop(): void {
    clearInterval(this.#timer)
  }

  /** lose stops renewing and aborts the signal with `reason`. */
  lose(reason: string): void {
    this.stop()
    if (!this.#controller.signal.aborted) this.#controller.abort(new Error(reason))
  }

  async #beat(): Promise<void> {
    if (this.#busy || this.signal.aborted) return
    this.#busy = true
    const started = performance.now()
    const left = this.#validMs - (started - this.#lastOk)
    try {
      if (left <= 0) return this.lose('the lease expired: no renewal succeeded in time')
      if (await this.renew(left)) this.#lastOk = started
      else this.lose('the lease was lost')
    } catch {
      if (performance.now() - this.#lastOk >= this.#validMs) {
        this.lose('the lease expired: no renewal succeeded in time')
      }
    } finally {
      this.#busy = false
    }
  }
}
