// Writer: what one command changes of the registry's state, as persistent tables with their
// indexes. A command that throws Invalid changes nothing.
import { type Indexes, replicaIndexed, shardIndexed } from './indexes'
import type { PMapKey, PMap } from './pmap'
import { type RecordChange, recordChanges } from './changes'
import type { HostRecord, ReplicaRecord, ShardRecord } from './records'
import { type Access, RegistryState } from './state'

/**
 * Invalid marks a command the registry refuses; the state stays as it was. `code` is set when
 * the refusal is about who asks rather than what they ask (a join without a valid token).
 */
export class Invalid extends Error {
  constructor(
    message: string,
    readonly code?: 'ERR_UNAUTHENTICATED' | 'ERR_UNSUPPORTED_VERSION',
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

/**
 * Table is one of the registry's tables as a command changes it: a persistent map behind a
 * Map's methods. Each `set` and `delete` makes a new map (sharing all but one path with the
 * last) and tells `changed`, which keeps the indexes; the state the command started from
 * never changes, so a refused command just leaves the table behind.
 */
export class Table<K extends PMapKey, V> {
  #map: PMap<K, V>
  readonly #changed: (k: K, was: V | undefined, now: V | undefined) => void

  constructor(map: PMap<K, V>, changed: (k: K, was: V | undefined, now: V | undefined) => void) {
    this.#map = map
    this.#changed = changed
  }

  /** map is the table as it is now. */
  get map(): PMap<K, V> {
    return this.#map
  }
  get size(): number {
    return this.#map.size
  }
  get(k: K): V | undefined {
    return this.#map.get(k)
  }
  has(k: K): boolean {
    return this.#map.has(k)
  }
  values(): IterableIterator<V> {
    return this.#map.values()
  }
  set(k: K, v: V): this {
    const was = this.#map.get(k)
    this.#map = this.#map.set(k, v)
    this.#changed(k, was, v)
    return this
  }
  delete(k: K): boolean {
    const was = this.#map.get(k)
    if (was === undefined) return false
    this.#map = this.#map.delete(k)
    this.#changed(k, was, undefined)
    return true
  }
}

/** Writer applies one command to a state, making the next: it never changes `base`. */
export class Writer {
  readonly hosts: Table<string, HostRecord>
  readonly shards: Table<number, ShardRecord>
  readonly replicas: Table<number, ReplicaRecord>
  #ix: Indexes
  nextShardId: number
  nextReplicaId: number
  access: Access
  /** The records the command changed, once it has finished (when `record` is set). */
  changes: RecordChange[] = []
  /** What each record this command changed was before it (kept only when `record` is set). */
  readonly #before = { host: new Map(), shard: new Map(), replica: new Map() }

  /** A writer of one command at `index`; with `record`, `finish` lists what it changed. */
  constructor(
    readonly base: RegistryState,
    readonly index: number,
    readonly record = false,
  ) {
    this.nextShardId = base.nextShardId
    this.nextReplicaId = base.nextReplicaId
    this.access = base.access
    this.#ix = base.indexes
    const before = this.#before
    const note = (m: Map<unknown, unknown>, k: unknown, was: unknown) => {
      if (record && !m.has(k)) m.set(k, was)
    }
    this.hosts = new Table(base.hosts, (k, was) => note(before.host, k, was))
    this.shards = new Table(base.shards, (k, was, now) => {
      note(before.shard, k, was)
      this.#ix = shardIndexed(this.#ix, was, now)
    })
    this.replicas = new Table(base.replicas, (k, was, now) => {
      note(before.replica, k, was)
      this.#ix = replicaIndexed(this.#ix, was, now)
    })
  }

  /** replicasOf lists a shard's replicas as they are now. */
  replicasOf(shardId: number): ReplicaRecord[] {
    return this.#ix.byShard.get(shardId)?.valueList() ?? []
  }

  /** replicasOn lists a host's replicas as they are now. */
  replicasOn(hostId: string): ReplicaRecord[] {
    return this.#ix.byHost.get(hostId)?.valueList() ?? []
  }

  /** replicaOf is the replica a host has of a shard, if any. */
  replicaOf(shardId: number, hostId: string): ReplicaRecord | undefined {
    return this.replicasOf(shardId).find((r) => r.hostId === hostId)
  }

  /** shardByName is the shard of a name, if any. */
  shardByName(name: string): ShardRecord | undefined {
    const id = name === '' ? undefined : this.#ix.byName.get(name)
    return id === undefined ? undefined : this.shards.get(id)
  }

  /** finish is the state the command made. */
  finish(): RegistryState {
    if (this.record) {
      this.changes = recordChanges([
        ['host', this.hosts, this.#before.host],
        ['shard', this.shards, this.#before.shard],
        ['replica', this.replicas, this.#before.replica],
      ])
    }
    return RegistryState.indexed(
      this.index,
      this.hosts.map,
      this.shards.map,
      this.replicas.map,
      this.nextShardId,
      this.nextReplicaId,
      this.access,
      this.#ix,
    )
  }

  /** touchShard marks a shard and the hosts of its replicas as updated. */
  touchShard(id: number): void {
    const sh = this.shards.get(id)
    if (sh && sh.updated !== this.index) this.shards.set(id, { ...sh, updated: this.index })
    for (const r of this.replicasOf(id)) this.touchHost(r.hostId, false)
  }

  /** touchHost marks a host (and, when asked, the shards of its replicas) as updated. */
  touchHost(id: string, shardsToo = true): void {
    const h = this.hosts.get(id)
    if (h && h.updated !== this.index) this.hosts.set(id, { ...h, updated: this.index })
    if (shardsToo) {
      for (const r of this.replicasOn(id)) {
        const sh = this.shards.get(r.shardId)
        if (sh && sh.updated !== this.index) this.shards.set(sh.id, { ...sh, updated: this.index })
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
    need(
      this.replicaOf(shardId, hostId) === undefined,
      `host ${hostId} already has a replica of shard ${shardId}`,
    )
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
