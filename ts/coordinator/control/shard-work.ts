// ShardWork: a pool of slots for work on replicas, at most one piece of work per shard at a
// time; a piece that waits (for an election, for a member that is down) holds a slot, not a
// thread, and no other shard's work.

/** ShardWork runs work on shards in at most `slots` at once, one piece per shard. */
export class ShardWork {
  /** Shards with work under way, and that work (awaited by settled). */
  readonly #working = new Map<number, Promise<void>>()
  readonly #waiting: Array<() => void> = []
  #slots: number
  /** Work handed out so far. */
  spawned = 0

  /**
   * `slots` bounds the work at once; `failed` hears a piece of work that failed, `ended` every
   * piece that ended (failed or not), once the shard has no work under way.
   */
  constructor(
    slots: number,
    readonly failed: (shardId: number, e: unknown) => void,
    readonly ended: (shardId: number) => void = () => {},
  ) {
    this.#slots = slots
  }

  /** has tells whether the shard has work under way. */
  has(shardId: number): boolean {
    return this.#working.has(shardId)
  }

  /** size is how many shards have work under way. */
  get size(): number {
    return this.#working.size
  }

  /**
   * spawn runs `work` on the shard in a slot once one is free, without waiting for it; a
   * failure goes to `failed` (a later run tries again).
   */
  spawn(shardId: number, work: () => Promise<void>): void {
    this.spawned++
    const done = (async () => {
      try {
        if (this.#slots > 0) this.#slots--
        else await new Promise<void>((resolve) => this.#waiting.push(resolve))
        try {
          await work()
        } finally {
          const next = this.#waiting.shift()
          if (next) next()
          else this.#slots++
        }
      } catch (e) {
        this.failed(shardId, e)
      } finally {
        this.#working.delete(shardId)
        this.ended(shardId)
      }
    })()
    // Set before the work can end: #working.delete above runs after this line.
    this.#working.set(shardId, done)
  }

  /** settled resolves once every piece of work handed out so far has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#working.values()])
  }
}
