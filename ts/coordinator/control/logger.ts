// Logger: where the coordinator's structured log records go.

/** Logger receives structured log records. */
export interface Logger {
  /** debug records detail for following the coordinator's work. */
  debug(msg: string, fields?: Record<string, unknown>): void
  /** info records a change worth knowing of (a host down, a circuit open). */
  info(msg: string, fields?: Record<string, unknown>): void
  /** warn records something that may need an operator (an insecure start, a lost log). */
  warn(msg: string, fields?: Record<string, unknown>): void
  /** error records a failure (a replica or host failed, a start failed). */
  error(msg: string, fields?: Record<string, unknown>): void
}

/** silent is the logger that drops every record. */
export const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} }
