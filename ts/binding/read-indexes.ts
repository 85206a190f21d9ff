// ReadIndexes: a host's read-index calls of a shard, made in the same turn of the event loop,
// share one call into the engine.

/** The real setImmediate: the engine's batching is not a timer a test's fake clock drives. */
const later = setImmediate

interface Queued {
  timeoutMs: number
  promise: Promise<number>
  resolve: (index: number) => void
  reject: (e: unknown) => void
}

/**
 * ReadIndexes batches read-index calls. A call into the engine costs far more than the
 * JavaScript around it (each makes a promise of its own on the native side), and linearizable
 * reads of a busy shard come in bursts: the calls of one shard with the same timeout made
 * during one turn of the event loop share one engine call, made once the turn's callbacks
 * have run. The shared call starts after each of the calls it answers did, so its index is
 * one each of them may use: everything committed before any of them began is at or below it.
 */
export class ReadIndexes {
  readonly #call: (shardId: number, timeoutMs: number) => Promise<number>
  /** Calls not yet made into the engine, by shard. */
  readonly #queued = new Map<number, Queued>()
  #scheduled = false

  constructor(call: (shardId: number, timeoutMs: number) => Promise<number>) {
    this.#call = call
  }

  /** readIndex resolves with a read index of the shard taken after this call. */
  readIndex(shardId: number, timeoutMs: number): Promise<number> {
    const q = this.#queued.get(shardId)
    if (q !== undefined && q.timeoutMs === timeoutMs) return q.promise
    // Another timeout than the queued call's goes on its own (rare: calls share a default).
    if (q !== undefined) return this.#call(shardId, timeoutMs)
    let resolve!: (index: number) => void
    let reject!: (e: unknown) => void
    const promise = new Promise<number>((res, rej) => {
      resolve = res
      reject = rej
    })
    this.#queued.set(shardId, { timeoutMs, promise, resolve, reject })
    if (!this.#scheduled) {
      this.#scheduled = true
      later(() => this.#flush())
    }
    return promise
  }

  /** #flush makes the queued calls; calls made from here on queue for the next turn. */
  #flush(): void {
    this.#scheduled = false
    const queued = [...this.#queued]
    this.#queued.clear()
    for (const [shardId, q] of queued) {
      let p: Promise<number>
      try {
        p = this.#call(shardId, q.timeoutMs)
      } catch (e) {
        q.reject(e)
        continue
      }
      p.then(q.resolve, q.reject)
    }
  }
}
