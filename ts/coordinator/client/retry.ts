// How the coordinator retries: which failures a write or a read may retry (the rule itself is
// the classification of codes in binding/errors.ts), and how long to wait between attempts.
import { classify, type ErrorCode, ZongziError } from '../../binding/errors'

const codeOf = (e: unknown): ErrorCode | undefined =>
  e instanceof ZongziError ? e.code : undefined

/**
 * writeMayRetry tells whether a failed write may be sent again: when it was certainly not
 * proposed and the failure may pass, or, for a command that is safe to apply twice
 * (`idempotent`), also when its outcome is unknown (ERR_TIMEOUT, ERR_OUTCOME_UNKNOWN).
 */
export function writeMayRetry(e: unknown, idempotent = false): boolean {
  const c = codeOf(e)
  return c !== undefined && classify(c, 'write', idempotent).retrySafe
}

/**
 * sessionMayRetry tells whether a write in a client session may be sent again: after any
 * failure of the host that served it, as a read may, since the shard applies a series once.
 */
export function sessionMayRetry(e: unknown): boolean {
  return readMayRetry(e)
}

/**
 * readMayRetry tells whether a failed read may be tried again. A read changes nothing, so
 * it may move on after any failure of the serving host, an unknown outcome or a closed
 * host included; a bad argument or an abort end it.
 */
export function readMayRetry(e: unknown): boolean {
  const c = codeOf(e)
  return c !== undefined && classify(c, 'read').retrySafe
}

/** RetryOptions bound a retried operation. */
export interface RetryOptions {
  /** retryable tells whether an attempt's failure may be retried. */
  retryable(e: unknown): boolean
  /** Milliseconds since the epoch after which no attempt starts; default: none. */
  deadline?: number
  /** Ends the retries; the error is `aborted()`'s. */
  signal?: AbortSignal
  /** The error to throw once `signal` is aborted; default ERR_ABORTED. */
  aborted?: () => Error
  /** Longest wait between attempts in ms (default 250); waits double from 25 ms up to it. */
  maxDelayMs?: number
}

const FIRST_DELAY_MS = 25

/** backoff is the wait before retry `n` (0 for the first retry): doubling, capped. */
export function backoff(n: number, maxDelayMs = 250): number {
  return Math.min(FIRST_DELAY_MS * 2 ** Math.min(n, 16), maxDelayMs)
}

/**
 * retry runs `attempt` until it succeeds, fails with an error that is not retryable, the
 * deadline passes (the last error is thrown) or the signal aborts. `attempt` receives the
 * milliseconds left before the deadline (Infinity without one) and the attempt number.
 */
export async function retry<T>(
  attempt: (leftMs: number, n: number) => Promise<T>,
  o: RetryOptions,
): Promise<T> {
  const deadline = o.deadline ?? Number.POSITIVE_INFINITY
  const aborted = o.aborted ?? (() => new ZongziError('ERR_ABORTED', 'aborted'))
  for (let n = 0; ; n++) {
    if (o.signal?.aborted) throw aborted()
    try {
      return await attempt(Math.max(1, deadline - Date.now()), n)
    } catch (e) {
      if (!o.retryable(e) || Date.now() >= deadline) throw e
    }
    await sleep(Math.min(backoff(n, o.maxDelayMs), Math.max(0, deadline - Date.now())), o.signal)
  }
}

/**
 * firstOf tries `f` on each candidate in turn and returns the first success. A failure that
 * is not `retryable` ends it at once; otherwise the last failure (or `none()` when there
 * were no candidates) is thrown.
 */
export async function firstOf<C, T>(
  candidates: Iterable<C>,
  f: (c: C) => Promise<T>,
  retryable: (e: unknown) => boolean,
  none: () => Error,
): Promise<T> {
  let last: unknown
  let tried = false
  for (const c of candidates) {
    tried = true
    try {
      return await f(c)
    } catch (e) {
      if (!retryable(e)) throw e
      last = e
    }
  }
  throw tried ? last : none()
}

/**
 * Attempt is one of hedge's attempts, which hedge aborts once another has won. Its signal is
 * made only when asked for: an AbortSignal costs more than the rest of a fast attempt, and an
 * attempt that cannot be cancelled (a call to this host's replica) need not ask.
 */
export class Attempt {
  #controller: AbortController | undefined
  #aborted = false

  /** aborted tells whether hedge gave this attempt up. */
  get aborted(): boolean {
    return this.#aborted
  }

  /** signal aborts when hedge gives this attempt up (at once if it already has). */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController()
      if (this.#aborted) this.#controller.abort()
    }
    return this.#controller.signal
  }

  /** abort gives the attempt up. */
  abort(): void {
    this.#aborted = true
    this.#controller?.abort()
  }
}

/** HedgeOptions say when `hedge` moves on and what it reports. */
export interface HedgeOptions<C> {
  /** retryable tells whether a failure lets the next candidate be tried. */
  retryable(e: unknown): boolean
  /** Milliseconds without an answer after which the next candidate is tried as well. */
  delayMs: number
  /** The error when there are no candidates. */
  none(): Error
  /** late hears of each candidate that was still silent when a later one answered. */
  late?(c: C): void
}

/**
 * hedge tries `f` on the first candidate, and on the next one as well whenever `delayMs` pass
 * without an answer or an attempt fails with a retryable error. The first success wins and
 * the other attempts are aborted (see Attempt). A failure that is not retryable ends
 * it at once. Once every candidate has been tried and one has failed, the last failure is
 * thrown when the others have failed too or stayed silent for another `delayMs` (they are
 * aborted and reported `late`).
 */
export function hedge<C, T>(
  candidates: readonly C[],
  f: (c: C, attempt: Attempt) => Promise<T>,
  o: HedgeOptions<C>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (candidates.length === 0) return reject(o.none())
    const running = new Map<number, Attempt>()
    let next = 0
    let settled = false
    let last: unknown
    let failed = false
    let timer: NodeJS.Timeout | undefined
    const finish = () => {
      settled = true
      clearTimeout(timer)
      for (const ac of running.values()) ac.abort()
      running.clear()
    }
    const giveUp = () => {
      for (const j of running.keys()) o.late?.(candidates[j])
      finish()
      reject(last)
    }
    const launch = (): void => {
      clearTimeout(timer)
      if (settled) return
      if (next >= candidates.length) {
        // Every candidate has been tried. Once one has failed, those still silent get one
        // more delay, and then the caller may go round again rather than wait on them.
        if (running.size === 0) giveUp()
        else if (failed) timer = setTimeout(giveUp, o.delayMs)
        return
      }
      const i = next++
      const attempt = new Attempt()
      running.set(i, attempt)
      f(candidates[i], attempt).then(
        (v) => {
          if (settled) return
          running.delete(i)
          for (const j of running.keys()) if (j < i) o.late?.(candidates[j])
          finish()
          resolve(v)
        },
        (e) => {
          if (settled) return
          running.delete(i)
          if (!o.retryable(e)) {
            finish()
            reject(e)
            return
          }
          last = e
          failed = true
          launch()
        },
      )
      timer = setTimeout(launch, o.delayMs)
    }
    launch()
  })
}

/** sleep waits `ms`, or less when `signal` aborts meanwhile. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = () => {
      clearTimeout(t)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const t = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * settleBy settles as `p` does, or rejects sooner: with ERR_ABORTED once `signal` aborts, or
 * with ERR_TIMEOUT once `ms` have passed (a silent host does not hold a call past its
 * deadline).
 */
export function settleBy<T>(p: Promise<T>, ms: number, signal?: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = (f: () => void) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      f()
    }
    const onAbort = () => done(() => reject(new ZongziError('ERR_ABORTED', 'aborted')))
    const timer = setTimeout(
      () => done(() => reject(new ZongziError('ERR_TIMEOUT', 'no answer before the deadline'))),
      ms,
    )
    if (signal?.aborted) return onAbort()
    signal?.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => done(() => resolve(v)),
      (e) => done(() => reject(e)),
    )
  })
}
