// Logger: where the coordinator's structured log records go, in pino's shape: the fields
// first, then the message, and `child()` for a logger whose records all carry some fields.
// A pino logger is one as it is; so is anything else of that shape.

/** LogFields are a record's fields (a `child`'s bindings too). */
export type LogFields = Record<string, unknown>

/**
 * Logger receives structured log records as pino takes them: `info({ shardId }, 'replica
 * started')`. The agent calls it from the Node thread only and never on a per-entry path;
 * a method that throws is the caller's bug, not the agent's (it is not caught).
 */
export interface Logger {
  /** debug records detail for following the coordinator's work. */
  debug(fields: LogFields, msg?: string): void
  /** info records a change worth knowing of (a host down, a circuit open). */
  info(fields: LogFields, msg?: string): void
  /** warn records something that may need an operator (an insecure start, a lost log). */
  warn(fields: LogFields, msg?: string): void
  /** error records a failure (a replica or host failed, a start failed). */
  error(fields: LogFields, msg?: string): void
  /** child returns a logger whose records carry `bindings` besides their own fields. */
  child(bindings: LogFields): Logger
}

/** silent is the logger that drops every record. */
export const silent: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silent,
}

/**
 * bindLater returns a logger that logs through `base` until `bindings()` returns fields, and
 * from then on through `base.child(bindings)` (made once): an agent's records carry its host
 * id once it has read it from its data directory.
 */
export function bindLater(base: Logger, bindings: () => LogFields | '' | undefined): Logger {
  let bound: Logger | undefined
  const current = (): Logger => {
    if (bound) return bound
    const b = bindings()
    if (b) bound = base.child(b)
    return bound ?? base
  }
  return {
    debug: (f, m) => current().debug(f, m),
    info: (f, m) => current().info(f, m),
    warn: (f, m) => current().warn(f, m),
    error: (f, m) => current().error(f, m),
    child: (b) => current().child(b),
  }
}
