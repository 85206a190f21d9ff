// ShardType: a typed state machine type — its name, its factory and its codec — which carries
// the state machine's types from registration to createShard and to the client. The engine
// runs every state machine in bytes; `inBytes` puts a typed one behind that contract.
import type { Readable, Writable } from 'node:stream'

import { invalid, ZongziError } from '../binding/errors'
import {
  type Entry,
  isPersistent,
  type PersistentStateMachine,
  type StateMachine,
  type StateMachineFactory,
} from '../binding/state-machine'
import type { ShardRecord } from './registry/records'
import { type Codec, encodeResult, failedDecode, jsonCodec, reason } from './codec'

/**
 * ShardType is a state machine type with its types: register it on the hosts that may run it
 * (`agent.register(kv)`), create shards of it (`agent.createShard(kv)`, which resolves with a
 * TypedShard) and talk to them with a TypedClient (`agent.client(shard)`), in the state
 * machine's own commands, results, queries and answers. Make one with `shardType`.
 */
export interface ShardType<Command, Result, Query, Answer> {
  /** The type's name, as in `createShard(name)` and the registry's shard records. */
  readonly name: string
  /** How commands, results, queries and answers travel as bytes. */
  readonly codec: Codec
  /** factory makes the (typed) state machine of one replica. */
  readonly factory: (
    shardId: number,
    replicaId: number,
  ) => StateMachine<Command, Result, Query, Answer>
}

/** ShardTypeOptions configure a ShardType. */
export interface ShardTypeOptions {
  /** How values travel as bytes: `jsonCodec` (the default), `bytesCodec`, or a Codec of your own. */
  codec?: Codec
}

/**
 * TypedShard is the record of a shard of a ShardType, as `agent.createShard(type)` resolves
 * with it: a ShardRecord whose type parameters tell `agent.client(shard)` what the shard's
 * state machine takes and gives.
 */
export type TypedShard<Command, Result, Query, Answer> = ShardRecord & {
  /** Carries the types only; absent at run time. */
  readonly __types?: (c: Command, q: Query) => [Result, Answer]
}

/**
 * shardType defines a state machine type named `name` whose replicas run the state machines
 * `factory` makes, typed `StateMachine<Command, Result, Query, Answer>`: its values travel
 * as JSON unless `codec` says otherwise. Define it once, beside the state machine, and use
 * the same definition on every host.
 */
export function shardType<Command, Result, Query, Answer>(
  name: string,
  factory: (
    shardId: number,
    replicaId: number,
  ) =>
    | StateMachine<Command, Result, Query, Answer>
    | PersistentStateMachine<Command, Result, Query, Answer>,
  o: ShardTypeOptions = {},
): ShardType<Command, Result, Query, Answer> {
  if (typeof name !== 'string' || name === '') throw invalid('a shard type needs a name')
  if (typeof factory !== 'function') throw invalid('factory must be a function')
  const codec = o.codec ?? jsonCodec
  if (typeof codec?.encode !== 'function' || typeof codec.decode !== 'function')
    throw invalid('codec must have encode and decode')
  return Object.freeze({ name, codec, factory })
}

/** AnyShardType is a ShardType of any types. */
export type AnyShardType = ShardType<unknown, unknown, unknown, unknown>

/** isShardType tells a ShardType apart from a type's name. */
export function isShardType(v: unknown): v is AnyShardType {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as { factory?: unknown }).factory === 'function'
  )
}

/** bytesFactory is the byte state machine factory that runs a ShardType's state machines. */
export function bytesFactory<C, R, Q, A>(type: ShardType<C, R, Q, A>): StateMachineFactory {
  return (shardId, replicaId) => inBytes(type.factory(shardId, replicaId), type.codec)
}

/**
 * inBytes runs a typed state machine behind the byte contract: entries are decoded before
 * `update` sees them (one that does not decode applies nothing and answers so), results and
 * answers are encoded, queries decoded; snapshots, `stream`, `open`, `sync` and `close` pass
 * through.
 */
export function inBytes<C, R, Q, A>(
  sm: StateMachine<C, R, Q, A>,
  codec: Codec,
): StateMachine | PersistentStateMachine {
  const query = (q: Buffer): C | Q => {
    try {
      return codec.decode(q) as Q
    } catch (e) {
      throw new ZongziError('ERR_INVALID_ARGUMENT', `the query did not decode: ${reason(e)}`, {
        call: 'read',
      })
    }
  }
  const encodeAnswer = (a: unknown): Uint8Array | undefined => {
    if (a === undefined) return undefined
    try {
      return codec.encode(a)
    } catch (e) {
      throw new ZongziError('ERR_STATE_MACHINE', `the answer did not encode: ${reason(e)}`, {
        call: 'read',
      })
    }
  }
  const bytesSm: StateMachine = {
    update: (entries) => update(sm, codec, entries),
    query: (q) => {
      const a = sm.query(query(q) as Q)
      return a instanceof Promise ? a.then(encodeAnswer) : encodeAnswer(a)
    },
    saveSnapshot: (out: Writable) => sm.saveSnapshot(out),
    recoverFromSnapshot: (input: Readable, index: number) => sm.recoverFromSnapshot(input, index),
  }
  const watch = sm.watch?.bind(sm)
  if (watch) {
    bytesSm.watch = async function* (q, signal) {
      for await (const a of watch(
        query(Buffer.from(q.buffer, q.byteOffset, q.byteLength)) as Q,
        signal,
      ))
        yield codec.encode(a)
    }
  }
  if (sm.stream) bytesSm.stream = sm.stream.bind(sm)
  if (sm.close) bytesSm.close = sm.close.bind(sm)
  if (!isPersistent(sm)) return bytesSm
  return { ...bytesSm, open: () => sm.open(), sync: () => sm.sync() }
}

/**
 * update decodes a batch, applies the entries that decode (in order, as one batch) and
 * answers every entry: with its encoded result, or with why it did not decode.
 */
function update<C, R, Q, A>(
  sm: StateMachine<C, R, Q, A>,
  codec: Codec,
  entries: Entry[],
): ReturnType<StateMachine['update']> {
  const out = new Array(entries.length)
  const decoded: Entry<C>[] = []
  const at: number[] = []
  for (let i = 0; i < entries.length; i++) {
    try {
      decoded.push({ index: entries[i].index, data: codec.decode(entries[i].data) as C })
      at.push(i)
    } catch (e) {
      out[i] = failedDecode(e)
    }
  }
  const answer = (results: R[]) => {
    if (!Array.isArray(results) || results.length !== decoded.length)
      throw new Error(`update returned ${results?.length} results for ${decoded.length} entries`)
    for (let j = 0; j < at.length; j++) out[at[j]] = encodeResult(codec, results[j])
    return out
  }
  if (decoded.length === 0) return out
  const r = sm.update(decoded)
  return r instanceof Promise ? r.then(answer) : answer(r)
}
