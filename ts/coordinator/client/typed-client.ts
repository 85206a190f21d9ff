// TypedClient: a ShardClient that speaks a typed state machine's values, through its codec.
import { type Codec, decodeResult, reason } from '../../binding/codec'
import { ZongziError } from '../../binding/errors'
import type { ClientCallOptions } from './client-context'
import type { ShardClient } from './shard-client'

/**
 * TypedClient sends a ShardType's commands and queries to one of its shards and resolves with
 * the state machine's results and answers, encoded and decoded by the type's codec. It routes,
 * retries and keeps a client session as the ShardClient under it does (`bytes`, for calls in
 * bytes and `stream`). Make one with `agent.client(shard)`, where `shard` is what
 * `agent.createShard(type)` resolved with, or `agent.client(id, { type })`.
 */
export class TypedClient<Command, Result, Query, Answer> {
  readonly #codec: Codec

  /** Agents make typed clients; `bytes` is the client they speak through. */
  constructor(
    readonly bytes: ShardClient,
    codec: Codec,
  ) {
    this.#codec = codec
  }

  /** shardId is the shard this client calls. */
  get shardId(): number {
    return this.bytes.shardId
  }

  /** closed tells whether `close()` was called. */
  get closed(): boolean {
    return this.bytes.closed
  }

  /**
   * propose applies `command` and resolves with the state machine's result, once applied; in
   * a client session it applies once however often it is sent (see ShardClient.propose). A
   * command the state machine's codec cannot decode fails with ERR_INVALID_ARGUMENT and
   * applies nothing.
   */
  async propose(command: Command, o?: ClientCallOptions): Promise<Result> {
    const r = await this.bytes.propose(this.#encode(command, 'command'), o)
    return decodeResult(this.#codec, r) as Result
  }

  /** commit proposes `command` and resolves with its log index once committed. */
  commit(command: Command, o?: ClientCallOptions): Promise<number> {
    return this.bytes.commit(this.#encode(command, 'command'), o)
  }

  /**
   * read queries the shard, linearizable unless `stale` is set, and resolves with the state
   * machine's answer (`undefined` when it answered `undefined`).
   */
  async read(query: Query, o?: ClientCallOptions & { stale?: boolean }): Promise<Answer> {
    const b = await this.bytes.read(this.#encode(query, 'query'), o)
    return (b === undefined ? undefined : this.#decode(b)) as Answer
  }

  /** index resolves with a read index once the serving replica has applied up to it. */
  index(o?: ClientCallOptions): Promise<number> {
    return this.bytes.index(o)
  }

  /** leader returns the shard's leader replica id and term as the registry last recorded. */
  leader(): { replicaId: number; term: number } {
    return this.bytes.leader()
  }

  /** watch yields what the state machine's `watch` yields for `query`, until aborted. */
  async *watch(query: Query, o?: { signal?: AbortSignal }): AsyncIterable<Answer> {
    for await (const b of this.bytes.watch(this.#encode(query, 'query'), o))
      yield this.#decode(b) as Answer
  }

  /** close ends this client (see ShardClient.close). */
  close(): Promise<void> {
    return this.bytes.close()
  }

  #encode(v: unknown, what: string): Uint8Array {
    try {
      return this.#codec.encode(v)
    } catch (e) {
      throw new ZongziError('ERR_INVALID_ARGUMENT', `the ${what} did not encode: ${reason(e)}`)
    }
  }

  #decode(b: Buffer): unknown {
    try {
      return this.#codec.decode(b)
    } catch (e) {
      throw new ZongziError('ERR_STATE_MACHINE', `the answer did not decode: ${reason(e)}`, {
        call: 'read',
      })
    }
  }
}
