// ShardType: a typed state machine type — its name, its factory and its codec — which carries
// the state machine's types from registration to createShard and to the client. The engine
// runs every state machine in bytes; `inBytes` (binding/typed-machine.ts) puts a typed one
// behind that contract.
import { type Codec, jsonCodec } from '../binding/codec'
import { invalid } from '../binding/errors'
import type {
  PersistentStateMachine,
  StateMachine,
  StateMachineFactory,
} from '../binding/state-machine'
import { inBytes } from '../binding/typed-machine'
import { REGISTRY_TYPE } from './agent-options'
import type { ShardClientOptions } from './client/client-context'
import type { ShardRecord } from './registry/records'
import type { RegistryState } from './registry/state'

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
  /** How values travel as bytes: `jsonCodec` (the default), `bytesCodec`, or your own Codec. */
  codec?: Codec
}

/**
 * TypedShard is the record of a shard of a ShardType, as `agent.createShard(type)` resolves
 * with it: a ShardRecord whose type parameters tell `agent.client(shard)` what the shard's
 * state machine takes and gives. It holds its ShardType, so that any agent in the process
 * makes a client of it.
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

/** TYPE keys the ShardType that a TypedShard made by createShard holds (not enumerable). */
const TYPE = Symbol('zongzi.shardType')

/** typed returns a copy of a shard's record that holds its ShardType, for `agent.client`. */
export function typed<C, R, Q, A>(
  sh: ShardRecord,
  type: ShardType<C, R, Q, A>,
): TypedShard<C, R, Q, A> {
  return Object.defineProperty({ ...sh }, TYPE, { value: type, enumerable: false })
}

/** typeOf returns the ShardType a TypedShard holds, if it holds one. */
export function typeOf(sh: ShardRecord): AnyShardType | undefined {
  return (sh as { [TYPE]?: AnyShardType })[TYPE]
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
/**
 * registerType adds a state machine type to `to`'s maps: a ShardType by its name (with its
 * codec and types), or a name and a factory of a state machine in bytes.
 */
export function registerType(
  to: { types: Map<string, StateMachineFactory>; shardTypes: Map<string, AnyShardType> },
  type: string | AnyShardType,
  bytes?: StateMachineFactory,
): void {
  const uri = isShardType(type) ? type.name : type
  if (typeof uri !== 'string' || uri === '' || uri === REGISTRY_TYPE)
    throw invalid('a state machine type needs a URI')
  const factory = isShardType(type) ? bytesFactory(type) : bytes
  if (typeof factory !== 'function') throw invalid('factory must be a function')
  if (isShardType(type)) to.shardTypes.set(uri, type)
  to.types.set(uri, factory)
}

export function bytesFactory<C, R, Q, A>(type: ShardType<C, R, Q, A>): StateMachineFactory {
  return (shardId, replicaId) => inBytes(type.factory(shardId, replicaId), type.codec)
}

/** TypedClientOptions configure a TypedClient of a shard given by id: its ShardType. */
export interface TypedClientOptions<Command, Result, Query, Answer> extends ShardClientOptions {
  /** The shard's type: its codec and its state machine's types. */
  type: ShardType<Command, Result, Query, Answer>
}

/**
 * shardTypeOf finds the ShardType of a typed client: `type` when given, else the one a
 * TypedShard holds, else the one known by the name of the shard's type (registered, or given
 * to createShard). It refuses a type other than the shard's, when this host's registry knows
 * the shard.
 */
export function shardTypeOf(
  known: ReadonlyMap<string, AnyShardType>,
  registry: RegistryState,
  shard: number | ShardRecord,
  type: AnyShardType | undefined,
): AnyShardType {
  const id = typeof shard === 'number' ? shard : shard.id
  const name = registry.shards.get(id)?.type ?? (typeof shard === 'number' ? undefined : shard.type)
  if (type && name !== undefined && type.name !== name)
    throw invalid(`shard ${id} is of type ${name}, not ${type.name}`)
  const held = typeof shard === 'number' ? undefined : typeOf(shard)
  const found = type ?? held ?? (name === undefined ? undefined : known.get(name))
  if (!found)
    throw invalid(`shard ${id}'s type ${name} is not known here: register it, or pass { type }`)
  return found
}
