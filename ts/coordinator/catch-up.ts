// CatchUp: the registry reads that the bus handlers make for callers they refuse on this
// host's snapshot (a host that has just joined is known to its own replica first). Whoever
// calls, at most one read starts per interval, and callers that arrive while one is due share
// it, so refused callers cost a bounded number of reads however many they send.

/** CatchUp runs `read` for callers that need a fresh registry, at most once per `everyMs`. */
export class CatchUp {
  readonly #read: () => Promise<void>
  readonly #everyMs: number
  /** How many reads have started. */
  #started = 0
  /** The last read started: its number, when, and its end. */
  #last: { n: number; at: number; done: Promise<void> } | undefined
  /** The next read, while it waits for its turn. */
  #next: Promise<void> | undefined

  constructor(read: () => Promise<void>, everyMs: number) {
    this.#read = read
    this.#everyMs = everyMs
  }

  /** mark is what a caller notes before it looks at the registry (see `after`). */
  mark(): number {
    return this.#started
  }

  /**
   * after resolves once a read that started after `mark` ended (it rejects with its error):
   * the registry then holds everything committed before the caller looked.
   */
  after(mark: number): Promise<void> {
    const last = this.#last
    if (last && last.n > mark) return last.done
    if (this.#next) return this.#next
    const wait = last ? Math.max(0, last.at + this.#everyMs - Date.now()) : 0
    const next = new Promise<void>((resolve) => setTimeout(resolve, wait).unref()).then(() => {
      const done = this.#read()
      this.#last = { n: ++this.#started, at: Date.now(), done }
      this.#next = undefined
      return done
    })
    this.#next = next
    return next
  }
}
