// RegistryState: one immutable version of the registry's tables.
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
}

export const NO_ACCESS: Access = { joinKey: '', used: new Map() }

/**
 * RegistryState is an immutable view of the registry at one index: readers keep a
 * consistent snapshot while writes go on (each write builds a new state, sharing what did
 * not change).
 */
export class RegistryState {
  /** The registry's tables at log `index`, and its id counters and access. */
  constructor(
    readonly index: number,
    readonly hosts: ReadonlyMap<string, HostRecord>,
    readonly shards: ReadonlyMap<number, ShardRecord>,
    readonly replicas: ReadonlyMap<number, ReplicaRecord>,
    readonly nextShardId: number,
    readonly nextReplicaId: number,
    readonly access: Access = NO_ACCESS,
  ) {}

  /** empty is the registry before its first command. */
  static empty(): RegistryState {
    return new RegistryState(0, new Map(), new Map(), new Map(), 1, 1)
  }

  /** shardByName finds a shard by its unique name. */
  shardByName(name: string): ShardRecord | undefined {
    for (const s of this.shards.values()) if (s.name === name && name !== '') return s
    return undefined
  }

  /** replicasOf lists a shard's replicas (in the order of `replicas`). */
  replicasOf(shardId: number): ReplicaRecord[] {
    return [...(this.#indexes().byShard.get(shardId) ?? [])]
  }

  /** replicasOn lists a host's replicas (in the order of `replicas`). */
  replicasOn(hostId: string): ReplicaRecord[] {
    return [...(this.#indexes().byHost.get(hostId) ?? [])]
  }

  #byShard?: Map<number, ReplicaRecord[]>
  #byHost?: Map<string, ReplicaRecord[]>

  /**
   * #indexes groups the replicas by shard and by host, once per state (it is immutable), so
   * that a reader asking of many shards walks the replicas once, not once per shard.
   */
  #indexes(): { byShard: Map<number, ReplicaRecord[]>; byHost: Map<string, ReplicaRecord[]> } {
    if (!this.#byShard || !this.#byHost) {
      const byShard = new Map<number, ReplicaRecord[]>()
      const byHost = new Map<string, ReplicaRecord[]>()
      for (const r of this.replicas.values()) {
        const s = byShard.get(r.shardId)
        if (s) s.push(r)
        else byShard.set(r.shardId, [r])
        const h = byHost.get(r.hostId)
        if (h) h.push(r)
        else byHost.set(r.hostId, [r])
      }
      this.#byShard = byShard
      this.#byHost = byHost
    }
    return { byShard: this.#byShard, byHost: this.#byHost }
  }
}
