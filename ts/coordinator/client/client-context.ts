// What a ShardClient is given: its options, each call's options, and the context of the agent
// that made it (its host, the bus to other hosts, the registry as this host sees it).
import type { Host } from '../../binding/host'
import type { SessionRef } from '../../binding/proposals'
import type { RegistryState } from '../registry/state'
import type { HostHealth } from './health'

/** ClientCallOptions bound one call. */
export interface ClientCallOptions {
  /** Milliseconds for the whole call, retries included (default: the agent's timeout). */
  timeoutMs?: number
  /** Cancels the call. */
  signal?: AbortSignal
}

/** ShardClientOptions configure a client. */
export interface ShardClientOptions {
  /** Send writes to the leader's host first (saves a forwarding hop inside Raft). */
  writeToLeader?: boolean
  /**
   * Put `propose` in a client session (default true): a proposal whose attempt timed out, lost
   * its connection or ended with an unknown outcome is sent again, to the same host or
   * another, until its deadline, and applies once. Without one (`false`, for commands that
   * are safe to apply twice), a proposal is sent again only when the failure proves it did not
   * apply.
   */
  session?: boolean
}

/** BusCallOptions bound a call forwarded to another host. */
export interface BusCallOptions {
  timeoutMs?: number
  signal?: AbortSignal
}

/** RemoteShards is how a client reaches the replica of another host (the bus client). */
export interface RemoteShards {
  /** propose proposes on a host's replica; with `session`, as that series of a session. */
  propose(
    address: string,
    shardId: number,
    data: Uint8Array,
    o?: BusCallOptions & { session?: SessionRef },
  ): Promise<{ value: number; data: Buffer }>
  /** session registers (or, `register` false, ends) a client session on a host's replica. */
  session(
    address: string,
    shardId: number,
    clientId: number,
    register: boolean,
    o?: BusCallOptions,
  ): Promise<void>
  /** commit proposes and resolves with the log index once committed. */
  commit(address: string, shardId: number, data: Uint8Array, o?: BusCallOptions): Promise<number>
  /** read queries a host's replica: linearizable, or `stale`. */
  read(
    address: string,
    shardId: number,
    query: Uint8Array,
    stale: boolean,
    o?: BusCallOptions,
  ): Promise<Buffer | undefined>
  /** index resolves with a read index once a host's replica has applied up to it. */
  index(address: string, shardId: number, o?: BusCallOptions): Promise<number>
  /** watch follows a query on a host's replica (its state machine's watch). */
  watch(
    address: string,
    shardId: number,
    query: Uint8Array,
    signal?: AbortSignal,
  ): AsyncIterable<Buffer>
  /** stream runs a host's replica's state machine stream. */
  stream(
    address: string,
    shardId: number,
    input: AsyncIterable<Uint8Array>,
    signal?: AbortSignal,
  ): AsyncIterable<Buffer>
}

/** ClientContext is what a ShardClient uses of the agent that made it. */
export interface ClientContext {
  readonly hostId: string
  /** Default timeout of a call in milliseconds. */
  readonly timeoutMs: number
  /** host serves calls to replicas on this host. */
  readonly host: Pick<
    Host,
    | 'propose'
    | 'registerSession'
    | 'unregisterSession'
    | 'commit'
    | 'read'
    | 'readIndex'
    | 'stateMachine'
  >
  /** bus forwards calls to other hosts. */
  readonly bus: RemoteShards
  /** registry is this host's current registry snapshot. */
  registry(): RegistryState
  /**
   * catchUp resolves once registry() holds every registry change committed before the call
   * (a linearizable read of shard 0). A shard created through another host may not be in
   * this host's snapshot yet; clients catch up once before they call such a shard unknown.
   */
  catchUp?(timeoutMs: number): Promise<void>
  /** runs tells whether this host runs an active replica of the shard. */
  runs(shardId: number): boolean
  /**
   * health is what the agent's clients have seen of other hosts (latencies, circuits); a
   * client without one keeps its own.
   */
  readonly health?: HostHealth
}
