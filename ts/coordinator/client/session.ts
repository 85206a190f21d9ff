// ClientSession: the client session writes go in, so that a write sent again after a timeout,
// an unknown outcome or a lost connection applies once (the engine keeps each session's
// results in the shard's replicated state).
import { randomInt } from 'node:crypto'

import { type ErrorCode, classify, ZongziError } from '../../binding/errors'
import type { SessionRef } from '../../binding/proposals'

/** Write is one write's place in a session. */
export interface Write {
  clientId: number
  series: number
}

/**
 * ClientSession numbers the writes of one client to one shard. It registers the session
 * before the first write (through `register`, which must be safe to repeat), and registers a
 * new one after a write whose outcome stayed unknown, so that the series it tells the shard
 * are answered never have a gap.
 */
export class ClientSession {
  readonly #register: (clientId: number, timeoutMs: number) => Promise<void>
  #clientId = 0
  #registered: Promise<void> | undefined
  /** Whether #registered has resolved: then a write takes its series without waiting. */
  #ready = false
  #next = 1
  /**
   * Series sent and not yet answered, in the order taken, which is ascending (a Set keeps
   * insertion order): the first is the lowest.
   */
  readonly #open = new Set<number>()

  constructor(register: (clientId: number, timeoutMs: number) => Promise<void>) {
    this.#register = register
  }

  /** clientId is the session's id while it has one (0 before the first write). */
  get clientId(): number {
    return this.#clientId
  }

  /**
   * begin takes the next series, registering the session first if it has none. Once the
   * session is registered it answers at once, without a promise.
   */
  begin(timeoutMs: number): Write | Promise<Write> {
    if (this.#ready) return this.#take(this.#clientId)
    if (!this.#registered) {
      const clientId = randomInt(1, 2 ** 48)
      this.#clientId = clientId
      this.#next = 1
      this.#open.clear()
      const p = this.#register(clientId, timeoutMs)
      this.#registered = p
      p.then(
        () => {
          if (this.#registered === p) this.#ready = true
        },
        () => {
          if (this.#registered === p) this.#registered = undefined
        },
      )
    }
    const clientId = this.#clientId
    // A session given up while it was being registered has no series to give: the write
    // begins again, in whichever session comes next.
    return this.#registered.then(() =>
      this.#clientId === clientId ? this.#take(clientId) : this.begin(timeoutMs),
    )
  }

  #take(clientId: number): Write {
    const series = this.#next++
    this.#open.add(series)
    return { clientId, series }
  }

  /** ref is what a write carries: its series and every series answered before it. */
  ref(w: Write): SessionRef {
    // A write of a session given up meanwhile claims nothing: its results all stay kept.
    if (w.clientId !== this.#clientId)
      return { clientId: w.clientId, series: w.series, respondedTo: 0 }
    // Every series below the lowest still open has been answered.
    let respondedTo = this.#next - 1
    for (const s of this.#open) {
      respondedTo = Math.min(respondedTo, s - 1)
      break
    }
    return { clientId: w.clientId, series: w.series, respondedTo }
  }

  /**
   * end records how a write ended: answered (applied, or certainly not), or with an outcome
   * left unknown, after which the session is given up and the next write starts a new one.
   */
  end(w: Write, unknown: boolean): void {
    if (w.clientId !== this.#clientId) return
    this.#open.delete(w.series)
    if (unknown) this.expire(w.clientId)
  }

  /**
   * expire gives the session up; the next write registers a new one. With `clientId`, only
   * that session is given up: writes of an older session that learn late that it expired do
   * not give up the one that replaced it.
   */
  expire(clientId?: number): void {
    if (clientId !== undefined && clientId !== this.#clientId) return
    this.#registered = undefined
    this.#ready = false
    this.#clientId = 0
  }
}

/**
 * inSession makes one write in `session` within `timeoutMs`. `send` makes its attempts,
 * retrying as it may, with the write's place in the session; it passes each attempt's
 * failure to `attempted` (which rethrows it). A write whose session the shard evicted did
 * not apply: it is sent once more in a new session. A failure after an attempt that may have
 * applied is reported as unknown (ERR_TIMEOUT), and the session is given up. A session that
 * could not be registered sends nothing: that failure says the write did not apply.
 */
export async function inSession<T>(
  session: ClientSession,
  timeoutMs: number,
  send: (ref: SessionRef, timeoutMs: number, attempted: (e: unknown) => never) => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (let again = true; ; again = false) {
    let w: Write
    try {
      const b = session.begin(timeoutMs)
      w = b instanceof Promise ? await b : b
    } catch (e) {
      throw notSent(e)
    }
    let ambiguous = false
    const attempted = (e: unknown): never => {
      if (failureOf(e, false).unknown) ambiguous = true
      throw e
    }
    try {
      const r = await send(session.ref(w), Math.max(1, deadline - Date.now()), attempted)
      session.end(w, false)
      return r
    } catch (e) {
      const expired = e instanceof ZongziError && e.code === 'ERR_SESSION_EXPIRED'
      if (expired && again && !ambiguous) {
        session.end(w, false)
        session.expire(w.clientId)
        continue
      }
      const f = failureOf(e, ambiguous)
      session.end(w, f.unknown)
      throw f.error
    }
  }
}

/**
 * failureOf tells whether a write that failed with `e` after attempts of which some may
 * have applied (`ambiguous`) has an unknown outcome; such a failure is reported as ERR_TIMEOUT
 * (`unknown`) even when the last attempt proved that it did not apply.
 */
export function failureOf(e: unknown, ambiguous: boolean): { error: unknown; unknown: boolean } {
  const code: ErrorCode = e instanceof ZongziError ? e.code : 'ERR_INTERNAL'
  const unknown = classify(code, 'write').outcome === 'unknown'
  if (unknown || !ambiguous) return { error: e, unknown }
  const msg = 'the write may have applied: an earlier attempt went unanswered'
  return { error: new ZongziError('ERR_TIMEOUT', msg, { cause: e }), unknown: true }
}

/**
 * notSent is the failure of a write that was never sent because its session could not be
 * registered: registering changes no state a write sees, so whatever the registration's
 * failure left unknown, the write did not apply (ERR_UNAVAILABLE, unless the failure says so
 * itself).
 */
function notSent(e: unknown): unknown {
  if (e instanceof ZongziError && e.outcome === 'not-applied') return e
  const why = e instanceof Error ? e.message : String(e)
  const msg = `the write was not sent: its client session could not be registered (${why})`
  return new ZongziError('ERR_UNAVAILABLE', msg, { cause: e })
}
