// Time and randomness while a state machine applies entries: each replica of a check sees a
// clock and a random stream of its own, so that a state machine that reads them drifts apart
// from its peers, and every such call is recorded with the entries being applied.
import * as nodeCrypto from 'node:crypto'

import { Random } from './random'

/** Use is one call of a clock or random source made while entries were applied. */
export interface Use {
  /** What was called: `Date.now()`, `Math.random()`, … */
  api: string
  /** The replica that called it, from 1. */
  replicaId: number
  /** The first and last index of the entries being applied. */
  from: number
  to: number
}

/** Patched is a property replaced while a replica applies entries. */
interface Patched {
  owner: Record<string, unknown>
  key: string
  original: unknown
}

/** A replica's skew from the real clock: large enough to change any time-based answer. */
const SKEW_MS = 7_919

/**
 * Traps replaces the clocks and random sources that JavaScript code reaches through globals
 * (`Date`, `Math.random`, `performance.now`, `process.hrtime`, `crypto`) while a replica's
 * `update` runs, and records each call. It cannot see a source captured before it was set
 * (a destructured `randomBytes` import, a native addon).
 */
export class Traps {
  readonly uses: Use[] = []
  #patched: Patched[] = []

  /**
   * during runs `f` (a replica's `update`) with the sources replaced for replica `replicaId`,
   * applying entries `from`…`to`, and puts them back once its promise settles.
   */
  async during<T>(replicaId: number, from: number, to: number, f: () => T): Promise<Awaited<T>> {
    this.#install(replicaId, from, to)
    try {
      return await f()
    } finally {
      this.#restore()
    }
  }

  #install(replicaId: number, from: number, to: number): void {
    const random = new Random(replicaId * 7_777 + from)
    const skew = replicaId * SKEW_MS
    const seen = (api: string) => this.uses.push({ api, replicaId, from, to })
    const RealDate = Date
    const now = () => RealDate.now() + skew
    const FakeDate = class extends RealDate {
      constructor(...args: unknown[]) {
        if (args.length === 0) {
          seen('new Date()')
          super(now())
        } else super(...(args as [string]))
      }
      static override now() {
        seen('Date.now()')
        return now()
      }
      // Dates made before the check are still Dates.
      static override [Symbol.hasInstance](x: unknown) {
        return x instanceof RealDate
      }
    }
    this.#patch(globalThis as never, 'Date', FakeDate)
    this.#patch(Math as never, 'random', () => {
      seen('Math.random()')
      return random.next()
    })
    const realPerf = performance.now.bind(performance)
    this.#patch(performance as never, 'now', () => {
      seen('performance.now()')
      return realPerf() + skew
    })
    const realHr = process.hrtime
    const hrtime = Object.assign(
      (prev?: [number, number]) => {
        seen('process.hrtime()')
        return realHr(prev)
      },
      {
        bigint: () => {
          seen('process.hrtime.bigint()')
          return realHr.bigint() + BigInt(skew) * 1_000_000n
        },
      },
    )
    this.#patch(process as never, 'hrtime', hrtime)
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => random.int(256)))
    const fill = <A extends ArrayBufferView | null>(a: A): A => {
      if (a) new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(bytes(a.byteLength))
      return a
    }
    const uuid = () => {
      const b = bytes(16).toString('hex')
      const parts = [b.slice(0, 8), b.slice(8, 12), `4${b.slice(13, 16)}`, `a${b.slice(17, 20)}`]
      return [...parts, b.slice(20)].join('-')
    }
    for (const owner of [globalThis.crypto, nodeCrypto] as Record<string, unknown>[]) {
      if (!owner) continue
      this.#patch(owner, 'randomUUID', () => {
        seen('crypto.randomUUID()')
        return uuid()
      })
      this.#patch(owner, 'getRandomValues', <A extends ArrayBufferView | null>(a: A) => {
        seen('crypto.getRandomValues()')
        return fill(a)
      })
    }
    this.#patch(nodeCrypto as never, 'randomBytes', (n: number) => {
      seen('crypto.randomBytes()')
      return bytes(n)
    })
    this.#patch(nodeCrypto as never, 'randomInt', (a: number, b?: number) => {
      seen('crypto.randomInt()')
      return b === undefined ? random.int(a) : a + random.int(b - a)
    })
  }

  #patch(owner: Record<string, unknown>, key: string, value: unknown): void {
    const d = Object.getOwnPropertyDescriptor(owner, key)
    // A frozen or accessor property (some crypto exports) cannot be replaced: left as it is.
    if (d && !d.writable && !d.set && !d.configurable) return
    try {
      const original = owner[key]
      Object.defineProperty(owner, key, { value, writable: true, configurable: true })
      this.#patched.push({ owner, key, original })
    } catch {
      // Not replaceable here; such a call goes unseen.
    }
  }

  #restore(): void {
    for (const p of this.#patched.splice(0).reverse()) {
      Object.defineProperty(p.owner, p.key, {
        value: p.original,
        writable: true,
        configurable: true,
      })
    }
  }
}
