// A small seeded generator (mulberry32): what makes a check repeatable from its seed.

/**
 * Random yields the same numbers for the same seed. The test kit hands one to a user's
 * command generator, so that a failing check is repeated by running it with the same seed.
 */
export class Random {
  #state: number

  /** Makes a generator from a 32-bit seed. */
  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  /** next returns a number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** int returns an integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  /** chance returns true with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p
  }

  /** pick returns one of `items`, which must not be empty. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]
  }

  /** fork returns a generator of its own, seeded from this one. */
  fork(): Random {
    return new Random(this.int(2 ** 32))
  }
}
