// What the recipes' clients need of a shard: a ShardClient (or anything that proposes and
// reads bytes the same way, a test double included).

/** CallOptions bound one call of a recipe's client. */
export interface CallOptions {
  /** Milliseconds for the call, retries included (default: the client's). */
  timeoutMs?: number
  /** Cancels the call. */
  signal?: AbortSignal
}

/** ShardCalls is the part of a ShardClient the recipes use. */
export interface ShardCalls {
  /** propose proposes a command and resolves with its result once applied. */
  propose(command: Uint8Array, o?: CallOptions): Promise<{ value: number; data: Buffer }>
  /** read queries the shard, linearizably; undefined answers "absent". */
  read(query: Uint8Array, o?: CallOptions): Promise<Buffer | undefined>
  /** watch yields the state machine's answers to `query` as they change. */
  watch(query: Uint8Array, o?: { signal?: AbortSignal }): AsyncIterable<Buffer>
}

/** json encodes a command or query of a recipe. */
export const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v))

/** parse decodes JSON bytes; undefined (an absent answer) stays undefined. */
export const parse = <T>(b: Uint8Array | undefined): T | undefined =>
  b === undefined || b.length === 0 ? undefined : (JSON.parse(Buffer.from(b).toString()) as T)
