import type { Readable, Writable } from 'node:stream'

// Bytes: what a state machine receives (entry data, queries) and every byte result a caller
// receives (apply, read, watch, stream) is a Node.js Buffer. A state machine may return any
// Uint8Array; it reaches the caller as a Buffer over the same memory where it can.

/**
 * Entry is one committed entry handed to a state machine: its `data` is the proposed bytes,
 * or the command they decode to for a state machine registered with a codec (see ShardType).
 */
export interface Entry<Command = Buffer> {
  /** Raft log index; strictly increasing across calls. */
  index: number
  /** The proposed bytes (or command). */
  data: Command
}

/**
 * ApplyResult is a state machine's answer to one entry; the proposer receives it (its `data`
 * as a Buffer, empty when absent).
 */
export interface ApplyResult {
  /** A number of the state machine's choosing (a status, a count, a version). */
  value: number
  /** Bytes of the state machine's choosing. */
  data?: Uint8Array
}

/**
 * Watched is what a state machine's `watch` yields for answers of type `Answer`: bytes for a
 * state machine in bytes (which has no "absent" in a feed), else `Answer` itself.
 */
export type Watched<Answer> = [Answer] extends [Uint8Array | null | undefined] ? Uint8Array : Answer

/**
 * StateMachine is a replicated, deterministic state machine kept in memory.
 *
 * Contract:
 * - `update` receives committed entries in log order, in batches, and returns exactly one
 *   result per entry. It must be deterministic: the same entries give the same state and
 *   results on every replica. Domain errors belong in the result; a throw (or a rejected
 *   promise) stops this replica — the process and other replicas carry on.
 * - `query` reads the current state. Queries run between updates on the JavaScript thread;
 *   if `update` is asynchronous, `query` must still see a consistent state. It may answer
 *   "absent" with `undefined` or `null`, which the caller receives as `undefined` (apart from
 *   an empty answer, which it receives as an empty Buffer); anything else but bytes fails
 *   the read with ERR_STATE_MACHINE.
 * - `saveSnapshot` writes the whole state to the stream and resolves once written;
 *   `recoverFromSnapshot` replaces the whole state with a snapshot's contents, which hold the
 *   state after entry `index`: the next entries `update` receives follow it.
 * - `watch` and `stream` are optional and used by clients for change feeds.
 *
 * Its type parameters are what it takes and gives: without them, bytes (the proposed bytes
 * in, an ApplyResult out, a query's bytes in, bytes out). A state machine registered through
 * a ShardType with a codec (JSON unless told otherwise) takes decoded commands and queries
 * and gives results and answers that the codec encodes: `StateMachine<Command, Result,
 * Query, Answer>`. Then `undefined` alone answers "absent"; `stream` stays in bytes.
 */
export interface StateMachine<
  Command = Buffer,
  Result = ApplyResult,
  Query = Buffer,
  Answer = Uint8Array | undefined | null,
> {
  /** update applies committed entries in log order and returns one result per entry. */
  update(entries: Entry<Command>[]): Result[] | Promise<Result[]>
  /** query reads the current state; `undefined` (or, in bytes, `null`) answers "absent". */
  query(query: Query): Answer | Promise<Answer>
  /** saveSnapshot writes the whole state to `out` and resolves once written. */
  saveSnapshot(out: Writable): Promise<void>
  /** recoverFromSnapshot replaces the whole state with a snapshot's, the state after `index`. */
  recoverFromSnapshot(input: Readable, index: number): Promise<void>
  /** watch yields answers to `query` as the state changes, until `signal` aborts (optional). */
  watch?(query: Query, signal?: AbortSignal): AsyncIterable<Watched<Answer>>
  /** stream answers a stream of inputs with a stream of outputs (optional). */
  stream?(input: AsyncIterable<Uint8Array>, signal?: AbortSignal): AsyncIterable<Uint8Array>
  /** close releases what the state machine holds, once its replica stops (optional). */
  close?(): void | Promise<void>
}

/**
 * PersistentStateMachine keeps its state in its own durable store. `open` returns the index
 * it last applied, and only later entries are replayed to it; `sync` makes applied state
 * durable. Snapshots stream its data so that new replicas can be seeded.
 */
export interface PersistentStateMachine<
  Command = Buffer,
  Result = ApplyResult,
  Query = Buffer,
  Answer = Uint8Array | undefined | null,
> extends StateMachine<Command, Result, Query, Answer> {
  /** open opens the store and resolves with the index of the last entry it applied. */
  open(): Promise<number>
  /** sync makes every applied entry durable in the store. */
  sync(): Promise<void>
}

/** StateMachineFactory creates the state machine of one replica. */
export type StateMachineFactory = (
  shardId: number,
  replicaId: number,
) => StateMachine | PersistentStateMachine

/** isPersistent tells the persistent kind apart. */
export function isPersistent<C, R, Q, A>(
  sm: StateMachine<C, R, Q, A>,
): sm is PersistentStateMachine<C, R, Q, A> {
  return typeof (sm as PersistentStateMachine<C, R, Q, A>).open === 'function'
}
