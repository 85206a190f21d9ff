// How the coordinator retries: which failures a write or a read may retry (the rule itself is
// the classification of codes in binding/errors.ts), and how long to wait between attempts.
import { classify, type ErrorCode, ZongziError } from '../binding/errors'

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
