/**
 * ErrorCode names every kind of failure the library reports. Codes are stable; messages are
 * for people.
 */
export type ErrorCode =
  | 'ERR_NOT_READY'
  | 'ERR_NO_LEADER'
  | 'ERR_TIMEOUT'
  | 'ERR_OUTCOME_UNKNOWN'
  | 'ERR_DROPPED'
  | 'ERR_BUSY'
  | 'ERR_LEADER_CHANGED'
  | 'ERR_SHARD_NOT_FOUND'
  | 'ERR_SHARD_EXISTS'
  | 'ERR_PAYLOAD_TOO_LARGE'
  | 'ERR_CLOSED'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_STORAGE'
  | 'ERR_HOST_FAILED'
  | 'ERR_STATE_MACHINE'
  | 'ERR_RAFT'
  | 'ERR_IO'
  | 'ERR_UNAVAILABLE'
  | 'ERR_CLUSTER_MISMATCH'
  | 'ERR_UNAUTHENTICATED'
  | 'ERR_SESSION_EXPIRED'
  | 'ERR_ABORTED'
  | 'ERR_NATIVE_UNAVAILABLE'
  | 'ERR_UNSUPPORTED_VERSION'
  | 'ERR_INTERNAL'

/**
 * ErrorOutcome says what a failed call did: `'not-applied'` — it certainly had no effect
 * (nothing was proposed, or the call only read); `'unknown'` — it may have taken effect, or
 * may still.
 */
export type ErrorOutcome = 'not-applied' | 'unknown'

/** CallKind is what a failed call was: a write (anything that proposes) or a read. */
export type CallKind = 'write' | 'read'

/**
 * Class is one row of the classification: the outcome of a write, whether a write may be sent
 * again as it is, whether a write that is safe to apply twice may, and whether a read may.
 */
interface Class {
  outcome: ErrorOutcome
  write: boolean
  idempotentWrite: boolean
  read: boolean
}

const row = (
  outcome: ErrorOutcome,
  write: boolean,
  idempotentWrite: boolean,
  read: boolean,
): Class => ({ outcome, write, idempotentWrite, read })
const U = 'unknown'
const N = 'not-applied'

/**
 * CLASSES is the one rule of what each code proves about a call, and so what a caller may do
 * after it. "May retry" means: sending the same call again can neither apply a write twice
 * nor fail the same way for certain. A code that proves nothing was proposed allows a retry
 * when the failure is passing (no leader, busy, a host not reachable); a code caused by the
 * call itself (a bad argument, a payload too large) does not. A code that leaves the outcome
 * unknown allows a retry only of a write that is safe to apply twice. A read changes nothing,
 * so its outcome is always `'not-applied'`, and it may move on after any failure of the
 * serving host.
 */
const CLASSES: Readonly<Record<ErrorCode, Class>> = {
  // outcome of a write, write may retry, idempotent write may retry, read may retry
  ERR_NOT_READY: row(N, true, true, true),
  ERR_NO_LEADER: row(N, true, true, true),
  ERR_TIMEOUT: row(U, false, true, true),
  ERR_OUTCOME_UNKNOWN: row(U, false, true, true),
  ERR_DROPPED: row(N, true, true, true),
  ERR_BUSY: row(N, true, true, true),
  // Only reads fail with it; a write that did would prove nothing.
  ERR_LEADER_CHANGED: row(U, false, false, true),
  ERR_SHARD_NOT_FOUND: row(N, true, true, true),
  ERR_SHARD_EXISTS: row(N, false, false, false),
  ERR_PAYLOAD_TOO_LARGE: row(N, false, false, false),
  // A host that closed may have proposed the write before it closed.
  ERR_CLOSED: row(U, false, false, true),
  ERR_INVALID_ARGUMENT: row(N, false, false, false),
  ERR_STORAGE: row(U, false, false, true),
  ERR_HOST_FAILED: row(U, false, false, true),
  ERR_STATE_MACHINE: row(U, false, false, false),
  ERR_RAFT: row(N, false, false, false),
  ERR_IO: row(U, false, false, false),
  ERR_UNAVAILABLE: row(N, true, true, true),
  ERR_CLUSTER_MISMATCH: row(N, false, false, false),
  // The callee decided with an up-to-date registry: sending the call again cannot help.
  ERR_UNAUTHENTICATED: row(N, false, false, false),
  // The session is gone from the shard's table: the write did not apply, nor will it.
  ERR_SESSION_EXPIRED: row(N, false, false, false),
  ERR_ABORTED: row(U, false, false, false),
  // The addon for this platform is not installed: nothing ran, and nothing will until it is.
  ERR_NATIVE_UNAVAILABLE: row(N, false, false, false),
  // Data or a request in a format version this host does not read: refused before anything
  // ran, and refused again until one side is upgraded (see docs/upgrades.md).
  ERR_UNSUPPORTED_VERSION: row(N, false, false, false),
  ERR_INTERNAL: row(U, false, false, false),
}

/**
 * classify says what a failure with `code` proves about a call of `kind`: its outcome, and
 * whether the same call may be sent again at once. For a write this is the rule without a
 * session: a write safe to apply twice may also retry after ERR_TIMEOUT and
 * ERR_OUTCOME_UNKNOWN (see `idempotent`).
 */
export function classify(
  code: ErrorCode,
  kind: CallKind = 'write',
  idempotent = false,
): { outcome: ErrorOutcome; retrySafe: boolean } {
  const c = CLASSES[code] ?? CLASSES.ERR_INTERNAL
  if (kind === 'read') return { outcome: 'not-applied', retrySafe: c.read }
  return { outcome: c.outcome, retrySafe: idempotent ? c.idempotentWrite : c.write }
}

/**
 * ZongziError is the error class of every rejection; `code` says what kind it is, and
 * `outcome` and `retrySafe` say what the caller may do (both follow from the code and the
 * kind of call, by the one table of this module).
 */
export class ZongziError extends Error {
  /** code is the stable kind of the error. */
  readonly code: ErrorCode
  /** call is the kind of call that failed: `'write'` (the default) or `'read'`. */
  readonly call: CallKind
  /**
   * outcome is what the failed call did: `'not-applied'` (certainly no effect) or `'unknown'`
   * (it may have taken effect). A read's is always `'not-applied'`.
   */
  readonly outcome: ErrorOutcome
  /**
   * retrySafe tells whether the same call may be sent again at once: it cannot be applied
   * twice and is not certain to fail the same way. For a write it assumes no session and a
   * command not safe to apply twice.
   */
  readonly retrySafe: boolean

  /** A ZongziError with `code`; `call` says whether a write or a read failed (default write). */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; call?: CallKind }) {
    super(message, options)
    this.name = 'ZongziError'
    this.code = code
    this.call = options?.call ?? 'write'
    const c = classify(code, this.call)
    this.outcome = c.outcome
    this.retrySafe = c.retrySafe
  }
}

/** asReadOf returns what `f` returns, or throws its failure as a read's (see asRead). */
export function asReadOf<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw asRead(e)
  }
}

/**
 * asRead returns `e` as the failure of a read: a ZongziError of a write becomes the same error
 * marked as a read's (its outcome and retrySafe follow); anything else is returned as it is.
 */
export function asRead(e: unknown): unknown {
  if (!(e instanceof ZongziError) || e.call === 'read') return e
  const r = new ZongziError(e.code, e.message, { cause: e.cause, call: 'read' })
  r.stack = e.stack
  return r
}

/** CODES is every code there is: the rows of CLASSES, the one list. */
const CODES: ReadonlySet<string> = new Set(Object.keys(CLASSES))

/** isErrorCode tells whether a string is one of the codes of {@link ErrorCode}. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && CODES.has(code)
}

/**
 * fromNative turns an error thrown by the native binding into a ZongziError. The binding
 * sets the stable code as the error's `code`; anything else (a panic caught at the
 * boundary, a failure of N-API) is ERR_INTERNAL.
 */
export function fromNative(e: unknown): ZongziError {
  if (e instanceof ZongziError) return e
  const message = e instanceof Error ? e.message : String(e)
  const code = (e as { code?: unknown } | null)?.code
  return new ZongziError(isErrorCode(code) ? code : 'ERR_INTERNAL', message, { cause: e })
}

/** invalid builds an ERR_INVALID_ARGUMENT error. */
export function invalid(message: string): ZongziError {
  return new ZongziError('ERR_INVALID_ARGUMENT', `invalid argument: ${message}`)
}
