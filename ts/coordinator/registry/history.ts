// ChangeHistory: the registry changes a host keeps, the last `limit` of them, and the readers
// that follow them (`agent.changes()`).
import { EventEmitter } from 'node:events'

import { ZongziError } from '../../binding/errors'
import type { RegistryChange } from './changes'

/** DEFAULT_HISTORY is how many changes a host keeps for readers that resume. */
export const DEFAULT_HISTORY = 10_000

/**
 * ChangeHistory keeps the last `limit` registry changes in memory. `from` is the index after
 * which it has every change: a reader may resume from any index at or above it. It starts at
 * the index the registry starts from (0, or the snapshot it recovered), so that a restart
 * keeps the changes its replay of the log applies again.
 */
export class ChangeHistory {
  readonly #changes: RegistryChange[] = []
  /** #changes[#head] is the oldest change kept; those before it are dropped. */
  #head = 0
  #from = 0
  readonly #pushed = new EventEmitter().setMaxListeners(0)

  constructor(readonly limit = DEFAULT_HISTORY) {}

  /** from is the index after which every change is kept. */
  get from(): number {
    return this.#from
  }

  /** push keeps a change (at an index above the last) and wakes the readers. */
  push(c: RegistryChange): void {
    this.#changes.push(c)
    if (this.#changes.length - this.#head > this.limit) {
      this.#from = this.#changes[this.#head].index
      this.#head++
      // Shift the array now and then, not once per change.
      if (this.#head >= this.limit) {
        this.#changes.splice(0, this.#head)
        this.#head = 0
      }
    }
    this.#pushed.emit('push', c)
  }

  /** subscribe calls `f` with each change kept from now on; it returns what unsubscribes. */
  subscribe(f: (c: RegistryChange) => void): () => void {
    const g = (c: RegistryChange | undefined) => c && f(c)
    this.#pushed.on('push', g)
    return () => this.#pushed.off('push', g)
  }

  /** latest returns the last `n` kept changes that `keep` keeps, oldest first. */
  latest(n: number, keep: (c: RegistryChange) => boolean): RegistryChange[] {
    const out: RegistryChange[] = []
    for (let i = this.#changes.length - 1; i >= this.#head && out.length < n; i--)
      if (keep(this.#changes[i])) out.push(this.#changes[i])
    return out.reverse()
  }

  /** reset forgets every change: the registry recovered a snapshot at `index`. */
  reset(index: number): void {
    this.#changes.length = 0
    this.#head = 0
    this.#from = index
    this.#pushed.emit('push')
  }

  /**
   * after returns the kept changes above `index`, oldest first; it fails with
   * ERR_INVALID_ARGUMENT when changes above `index` are no longer kept.
   */
  after(index: number): RegistryChange[] {
    if (index < this.#from) {
      throw new ZongziError(
        'ERR_INVALID_ARGUMENT',
        `registry changes after index ${index} are no longer kept on this host (it keeps ` +
          `those after ${this.#from}): read the registry's state, then follow from its index`,
      )
    }
    let lo = this.#head
    let hi = this.#changes.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.#changes[mid].index <= index) lo = mid + 1
      else hi = mid
    }
    return this.#changes.slice(lo)
  }

  /**
   * follow yields the changes above `since`, then each new one as it is applied, until
   * `signal` aborts (it then returns) or the reader falls so far behind that changes it has
   * not read are dropped (it then fails as `after` does).
   */
  async *follow(since: number, signal: AbortSignal): AsyncIterable<RegistryChange> {
    let at = since
    for (;;) {
      if (signal.aborted) return
      const next = this.after(at)
      if (next.length === 0) {
        await new Promise<void>((resolve) => {
          const done = () => {
            this.#pushed.off('push', done)
            signal.removeEventListener('abort', done)
            resolve()
          }
          this.#pushed.on('push', done)
          signal.addEventListener('abort', done, { once: true })
        })
        continue
      }
      for (const c of next) {
        if (signal.aborted) return
        at = c.index
        yield c
      }
    }
  }
}
