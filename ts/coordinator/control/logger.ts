// Logger: where the coordinator's structured log records go.

/** Logger receives structured log records. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
}

/** silent is the logger that drops every record. */
export const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} }
