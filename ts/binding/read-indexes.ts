// ReadIndexes: a host's read-index calls of a shard, made in the same turn of the event loop,
// share one call into the engine.
import { ZongziError } from './errors'

/** The real setImmediate: the engine's batching is not a timer a test's fake clock drives. */
const later = setImmediate

interface Waiting {
  /** When this call's timeout ends (ms since the epoch). */
  deadline: number
  timeoutMs: number
  resolve: (index: number) => void
  reject: (e: unknown) => void
}

/**
 * ReadIndexes batches read-index calls. A call into the engine costs far more than the
 * JavaScript around it (each makes a promise of its own on the native side), and linearizable
 * reads of a busy shard come in bursts: the calls of one shard made during one turn of the
 * event loop share one engine call, made once the turn's callbacks have run. The shared call
 * starts after each of the calls it answers did, so its index is one each of them may use:
 * everything committed before any of them began is at or below it. It runs until the latest
 * of their deadlines; a call whose own deadline comes sooner fails with ERR_TIMEOUT then.
 */
export class ReadIndexes {
  readonly #call: (shardId: number, timeoutMs: number) => Promise<number>
  /** Calls not yet made into the engine, by shard. */
  readonly #queued = new Map<number, Waiting[]>()
  #scheduled = false

  constructor(call: (shardId: number, timeoutMs: number) => Promise<number>) {
    this.#call = call
  }

  /** readIndex resolves with a read index of the shard taken after this call. */
  readIndex(shardId: number, timeoutMs: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const w = { deadline: Date.now() + timeoutMs, timeoutMs, resolve, reject }
      const q = this.#queued.get(shardId)
      if (q) q.push(w)
      else this.#queued.set(shardId, [w])
      if (!this.#scheduled) {
        this.#scheduled = true
        later(() => this.#flush())
      }
    })
  }

  /** #flush makes the queued calls; calls made from here on queue for the next turn. */
  #flush(): void {
    this.#scheduled = false
    const queued = [...this.#queued]
    this.#queued.clear()
    const now = Date.now()
    for (const [shardId, ws] of queued) {
      let last = ws[0].deadline
      for (const w of ws) last = Math.max(last, w.deadline)
      let p: Promise<number>
      try {
        p = this.#call(shardId, Math.max(1, last - now))
      } catch (e) {
        for (const w of ws) w.reject(e)
        continue
      }
      for (const w of ws) {
        if (w.deadline >= last) {
          p.then(w.resolve, w.reject)
          continue
        }
        const timer = setTimeout(() => {
          const msg = `no read index of shard ${shardId} within ${w.timeoutMs} ms`
          w.reject(new ZongziError('ERR_TIMEOUT', msg))
        }, w.deadline - now)
        p.then(
          (i) => {
            clearTimeout(timer)
            w.resolve(i)
          },
          (e) => {
            clearTimeout(timer)
            w.reject(e)
          },
        )
      }
    }
  }
}
