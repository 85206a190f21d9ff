// The host's logger: the engine's and raft-rs's log records, handed to a pino-shaped logger.

/**
 * HostLogger is what a host logs to: anything with pino's shape, `logger[level](obj, msg)`.
 * A pino logger works as it is. `trace` is optional (trace records go to `debug` without it).
 * `level`, when it is a pino level name (`fatal`, `error`, `warn`, `info`, `debug`, `trace`,
 * `silent`), is the least severe level the engine builds records for; otherwise `info`.
 */
export interface HostLogger {
  /** Failures: a replica or the host failed. raft-rs's `critical` and `error` records. */
  error(obj: object, msg: string): void
  /** Trouble the host rides out: a peer unreachable, a transport or snapshot error. */
  warn(obj: object, msg: string): void
  /** Changes: leaders, elections, memberships, replicas started and stopped, snapshots. */
  info(obj: object, msg: string): void
  /** raft-rs's debug records. */
  debug(obj: object, msg: string): void
  /** raft-rs's trace records. */
  trace?(obj: object, msg: string): void
  /** The logger's level, as pino names it. */
  level?: string
}

/** NativeLogRecord is a record as the binding hands it over. */
export interface NativeLogRecord {
  level: 'error' | 'warn' | 'info' | 'debug' | 'trace'
  msg: string
  source: string
  shard: number
  replica: number
  fields: Record<string, unknown>
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** logLevelOf is the least severe level the engine should build records for. */
export function logLevelOf(logger: HostLogger): string {
  const l = logger.level
  return typeof l === 'string' && LEVELS.includes(l) ? l : 'info'
}

/**
 * logTo returns the callback that hands batches of records to `logger`: each record becomes
 * `logger[level]({ host, source, shard, replica, ...fields }, msg)`, `shard` and `replica`
 * left out when the record is about no shard. A logger that throws loses that record only.
 */
export function logTo(
  logger: HostLogger,
  host: () => string | undefined,
): (records: NativeLogRecord[]) => void {
  return (records) => {
    const address = host()
    for (const r of records) {
      const obj: Record<string, unknown> = { host: address, source: r.source }
      if (r.shard !== 0) obj.shard = r.shard
      if (r.replica !== 0) obj.replica = r.replica
      Object.assign(obj, r.fields)
      const f = r.level === 'trace' ? (logger.trace ?? logger.debug) : logger[r.level]
      try {
        f?.call(logger, obj, r.msg)
      } catch {
        // The logger's own failure is its business; the host carries on.
      }
    }
  }
}
