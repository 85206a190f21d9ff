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
  | 'ERR_ABORTED'
  | 'ERR_INTERNAL'

/** ZongziError is the error class of every rejection; `code` says what kind it is. */
export class ZongziError extends Error {
  /** code is the stable kind of the error. */
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ZongziError'
    this.code = code
  }
}

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'ERR_NOT_READY',
  'ERR_NO_LEADER',
  'ERR_TIMEOUT',
  'ERR_OUTCOME_UNKNOWN',
  'ERR_DROPPED',
  'ERR_BUSY',
  'ERR_LEADER_CHANGED',
  'ERR_SHARD_NOT_FOUND',
  'ERR_SHARD_EXISTS',
  'ERR_PAYLOAD_TOO_LARGE',
  'ERR_CLOSED',
  'ERR_INVALID_ARGUMENT',
  'ERR_STORAGE',
  'ERR_HOST_FAILED',
  'ERR_STATE_MACHINE',
  'ERR_RAFT',
  'ERR_IO',
  'ERR_UNAVAILABLE',
  'ERR_CLUSTER_MISMATCH',
  'ERR_ABORTED',
  'ERR_INTERNAL',
])

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
