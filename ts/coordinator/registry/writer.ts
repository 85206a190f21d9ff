// Writer: a copy-on-write view of the registry's state that one command changes. A command
// that throws Invalid changes nothing.
import type { HostRecord, ReplicaRecord, ShardRecord } from './records'
import { type Access, RegistryState } from './state'

/**
 * Invalid marks a command the registry refuses; the state stays as it was. `code` is set when
 * the refusal is about who asks rather than what they ask (a join without a valid token).
 */
export class Invalid extends Error {
  constructor(
    message: string,
    readonly code?: 'ERR_UNAUTHENTICATED',
  ) {
    super(message)
  }
}

/** need throws Invalid with `msg` unless `cond` holds. */
export function need(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Invalid(msg)
}

/** deny throws Invalid with `msg`, as an authentication failure, unless `cond` holds. */
export function deny(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Invalid(msg, 'ERR_UNAUTHENTICATED')
}

/** Writer applies one command to a copy-on-write view of a state. */
export class Writer {
  #hosts: Map<string, HostRecord> | undefined
  #shards: Map<number, ShardRecord> | undefined
  #replicas: Map<number, ReplicaRecord> | undefined
  nextShardId: number
  nextReplicaId: number
  access: Access

  constructor(
    readonly base: RegistryState,
    readonly index: number,
  ) {
    this.nextShardId = base.nextShardId
    this.nextReplicaId = base.nextReplicaId
    this.access = base.access
  }

  get hosts(): Map<string, HostRecord> {
    this.#hosts ??= new Map(this.base.hosts)
    return this.#hosts
  }
  get shards(): Map<number, ShardRecord> {
    this.#shards ??= new Map(this.base.shards)
    return this.#shards
  }
  get replicas(): Map<number, ReplicaRecord> {
    this.#replicas ??= new Map(this.base.replicas)
    return this.#replicas
  }

  finish(): RegistryState {
    return new RegistryState(
      this.index,
      this.#hosts ?? this.base.hosts,
      this.#shards ?? this.base.shards,
      this.#replicas ?? this.base.replicas,
      this.nextShardId,
      this.nextReplicaId,
      this.access,
    )
  }

  /** touchShard marks a shard and the hosts of its replicas as updated. */
  touchShard(id: number): void {
    const sh = this.shards.get(id)
    if (sh) this.shards.set(id, { ...sh, updated: this.index })
    for (const r of this.replicas.values()) if (r.shardId === id) this.touchHost(r.hostId, false)
  }

  /** touchHost marks a host (and, when asked, the shards of its replicas) as updated. */
  touchHost(id: string, shardsToo = true): void {
    const h = this.hosts.get(id)
    if (h) this.hosts.set(id, { ...h, updated: this.index })
    if (shardsToo) {
      for (const r of this.replicas.values()) {
        const sh = r.hostId === id ? this.shards.get(r.shardId) : undefined
        if (sh) this.shards.set(sh.id, { ...sh, updated: this.index })
      }
    }
  }

  /**
   * newReplica adds a replica of a shard to a host, with the next replica id unless `id` is
   * given. It throws Invalid when the shard is unknown or being deleted, the host is unknown
   * (except for shard 0) or already has a replica of the shard, or the id is taken.
   */
  newReplica(
    shardId: number,
    hostId: string,
    nonVoting: boolean,
    initial: boolean,
    id?: number,
    status: ReplicaRecord['status'] = 'new',
  ): number {
    const shard = this.shards.get(shardId)
    need(shard !== undefined, `shard ${shardId} does not exist`)
    need(shard.status !== 'deleting', `shard ${shardId} is being deleted`)
    need(this.hosts.has(hostId) || shardId === 0, `host ${hostId} does not exist`)
    for (const r of this.replicas.values()) {
      need(
        !(r.shardId === shardId && r.hostId === hostId),
        `host ${hostId} already has a replica of shard ${shardId}`,
      )
    }
    const rid = id ?? this.nextReplicaId
    need(!this.replicas.has(rid), `replica ${rid} exists`)
    this.nextReplicaId = Math.max(this.nextReplicaId, rid + 1)
    this.replicas.set(rid, {
      id: rid,
      shardId,
      hostId,
      nonVoting,
      initial,
      status,
      tags: {},
      created: this.index,
      updated: this.index,
    })
    this.touchShard(shardId)
    return rid
  }
}
