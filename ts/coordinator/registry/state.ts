// RegistryState: one immutable version of the registry's tables.
import { type Indexes, indexesOf } from './indexes'
import { PMap } from './pmap'
import type { HostRecord, ReplicaRecord, ShardRecord } from './records'

/** UsedToken records the host a join token admitted, kept until the token expires. */
export interface UsedToken {
  hostId: string
  expires: number
  /**
   * The Raft address and certificate fingerprint the host joined from (absent when it showed
   * none, or joined before they were recorded): only a join from both again is its retry.
   */
  raftAddress?: string
  certificate?: string
}

/** Access is what the registry keeps to admit hosts: the join key and the tokens used. */
export interface Access {
  /** Signs join tokens (hex); empty in a cluster initialised without one. */
  joinKey: string
  used: ReadonlyMap<string, UsedToken>
  /**
   * Commands must name their proposer, who may change only its own records (see
   * registry-proposers.ts): set when the cluster is initialised, or, in a registry made
   * before that rule, by the registry leader's `access.name` (the commands before it apply
   * as they did when they were written).
   */
  named?: boolean
  /**
   * The registry format the cluster writes its commands and snapshots in (see
   * binding/versions.ts); absent: 1. Raised by the registry leader's `cluster.version` once
   * every host reads the next one, never lowered.
   */
  version?: number
}

export const NO_ACCESS: Access = { joinKey: '', used: new Map() }

/** The indexes RegistryState.indexed hands its constructor (which takes them at once). */
let given: Indexes | undefined

/**
 * RegistryState is an immutable view of the registry at one index: readers keep a
 * consistent snapshot while writes go on. Its tables are persistent maps (PMap, a
 * ReadonlyMap in key order): each write builds a new state that shares all it did not change,
 * and keeps the indexes of replicas by shard and by host, and of shards by name, up to date.
 */
export class RegistryState {
  readonly hosts: PMap<string, HostRecord>
  readonly shards: PMap<number, ShardRecord>
  readonly replicas: PMap<number, ReplicaRecord>
  readonly #ix: Indexes

  /**
   * The registry's tables at log `index`, and its id counters and access. Tables given as
   * other maps are copied into persistent ones, and indexed (once).
   */
  constructor(
    readonly index: number,
    hosts: ReadonlyMap<string, HostRecord>,
    shards: ReadonlyMap<number, ShardRecord>,
    replicas: ReadonlyMap<number, ReplicaRecord>,
    readonly nextShardId: number,
    readonly nextReplicaId: number,
    readonly access: Access = NO_ACCESS,
  ) {
    this.hosts = PMap.from(hosts)
    this.shards = PMap.from(shards)
    this.replicas = PMap.from(replicas)
    this.#ix = given ?? indexesOf(this.shards.values(), this.replicas.values())
    given = undefined
  }

  /**
   * indexed makes a state of persistent tables with their indexes, as the registry's writer
   * keeps them (nothing is copied or indexed again).
   * @internal
   */
  static indexed(
    index: number,
    hosts: PMap<string, HostRecord>,
    shards: PMap<number, ShardRecord>,
    replicas: PMap<number, ReplicaRecord>,
    nextShardId: number,
    nextReplicaId: number,
    access: Access,
    indexes: Indexes,
  ): RegistryState {
    given = indexes
    return new RegistryState(index, hosts, shards, replicas, nextShardId, nextReplicaId, access)
  }

  /** empty is the registry before its first command. */
  static empty(): RegistryState {
    return new RegistryState(0, PMap.empty(), PMap.empty(), PMap.empty(), 1, 1)
  }

  /**
   * indexes are this state's indexes (for the registry's writer).
   * @internal
   */
  get indexes(): Indexes {
    return this.#ix
  }

  /**
   * at is this state as of a later log index (a command that changed nothing).
   * @internal
   */
  at(index: number): RegistryState {
    const { hosts, shards, replicas, nextShardId, nextReplicaId, access } = this
    return RegistryState.indexed(
      index,
      hosts,
      shards,
      replicas,
      nextShardId,
      nextReplicaId,
      access,
      this.#ix,
    )
  }

  /**
   * version is the registry format the cluster writes its commands and snapshots in: the
   * newest that every host on record reads, once the registry leader has seen it (see
   * docs/upgrades.md).
   */
  get version(): number {
    return this.access.version ?? 1
  }

  /** shardByName finds a shard by its unique name. */
  shardByName(name: string): ShardRecord | undefined {
    const id = name === '' ? undefined : this.#ix.byName.get(name)
    return id === undefined ? undefined : this.shards.get(id)
  }

  /** replicasOf lists a shard's replicas (in the order of their ids). */
  replicasOf(shardId: number): ReplicaRecord[] {
    return this.#ix.byShard.get(shardId)?.valueList() ?? []
  }

  /** replicasOn lists a host's replicas (in the order of their ids). */
  replicasOn(hostId: string): ReplicaRecord[] {
    return this.#ix.byHost.get(hostId)?.valueList() ?? []
  }

  /** countOn is how many replicas a host has (of every shard, the registry's included). */
  countOn(hostId: string): number {
    return this.#ix.byHost.get(hostId)?.size ?? 0
  }

  /**
   * replicasChangedOn lists the ids of the replicas whose records differ between `before` and
   * this state among those on host `hostId` in either, in id order: added, removed (or moved
   * off), or changed. It skips what the two states share, so it costs about the changes, not
   * the host's replicas (all of a host's shards changed by one command cost what they are).
   */
  replicasChangedOn(before: RegistryState, hostId: string): number[] {
    const none = PMap.empty<number, ReplicaRecord>()
    const now = this.#ix.byHost.get(hostId) ?? none
    return [...now.changes(before.#ix.byHost.get(hostId) ?? none)]
  }
}
