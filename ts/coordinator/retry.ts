// The one retry rule of the coordinator: which failures prove that a write was not proposed,
// which failures a read may retry, and how long to wait between attempts.
import { type ErrorCode, ZongziError } from '../binding/errors'

/**
 * NOT_PROPOSED lists the codes that prove a command was not proposed: no replica there, no
 * leader, refused by Raft before it entered the log, or a connection that never formed. A
 * write that failed with one of them may be sent again, to the same host or another.
 */
const NOT_PROPOSED: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_UNAVAILABLE',
  'ERR_SHARD_NOT_FOUND',
  'ERR_NO_LEADER',
  'ERR_DROPPED',
  'ERR_BUSY',
  'ERR_NOT_READY',
])

/** READ_AGAIN lists the further codes after which a read may be tried again. */
const READ_AGAIN: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_CLOSED',
  'ERR_OUTCOME_UNKNOWN',
  'ERR_LEADER_CHANGED',
])

/** AMBIGUOUS lists the codes after which a write may or may not have been applied. */
const AMBIGUOUS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ERR_TIMEOUT', 'ERR_OUTCOME_UNKNOWN'])

const codeOf = (e: unknown): ErrorCode | undefined =>
  e instanceof ZongziError ? e.code : undefined

/**
 * writeMayRetry tells whether a failed write may be sent again: when it was certainly not
 * proposed, or, for a command that is safe to apply twice (`idempotent`), also when its
 * outcome is unknown.
 */
export function writeMayRetry(e: unknown, idempotent = false): boolean {
  const c = codeOf(e)
  return c !== undefined && (NOT_PROPOSED.has(c) || (idempotent && AMBIGUOUS.has(c)))
}

/**
 * readMayRetry tells whether a failed read may be tried again. A read changes nothing, so
 * it may move on after any failure of the serving host, an unknown outcome or a closed
 * host included; a bad argument, a timeout of the whole call or an abort end it.
 */
export function readMayRetry(e: unknown): boolean {
  const c = codeOf(e)
  return c !== undefined && (NOT_PROPOSED.has(c) || READ_AGAIN.has(c))
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
