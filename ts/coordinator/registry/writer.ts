// Writer: a copy-on-write view of the registry's state that one command changes. A command
// that throws Invalid changes nothing.
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

/** Table is one of the registry's tables as a writer changes it. */
type Table = Map<unknown, unknown>

/**
 * Batch is the tables the registry copied within the batch of entries it is applying: no
 * reader has seen them, so the batch's later commands change them in place (journaled, to
 * undo a command the registry refuses). The registry starts a new one for every batch, so a
 * state readers have seen is never changed.
 */
export type Batch = Set<Table>

/** Journal is what a command changed in a table it changes in place: key, was it there, value. */
type Journal = Array<[unknown, boolean, unknown]>

/**
 * journal makes `t.set` and `t.delete` record what they replace, until unjournal; the table
 * stays a plain Map (the methods are its own properties meanwhile).
 */
function journal(t: Table, log: Journal): void {
  const o = t as unknown as Record<'set' | 'delete', unknown>
  o.set = (k: unknown, v: unknown) => {
    log.push([k, t.has(k), t.get(k)])
    return Map.prototype.set.call(t, k, v)
  }
  o.delete = (k: unknown) => {
    log.push([k, t.has(k), t.get(k)])
    return Map.prototype.delete.call(t, k)
  }
}

/** unjournal ends journal(t). */
function unjournal(t: Table): void {
  // Deleted, not set to undefined: the table is a plain Map again, as readers expect.
  const o = t as unknown as Partial<Record<'set' | 'delete', unknown>>
  // biome-ignore lint/performance/noDelete: its own property must go, not be undefined
  delete o.set
  // biome-ignore lint/performance/noDelete: as above
  delete o.delete
}

/** Writer applies one command to a copy-on-write view of a state. */
export class Writer {
  #hosts: Map<string, HostRecord> | undefined
  #shards: Map<number, ShardRecord> | undefined
  #replicas: Map<number, ReplicaRecord> | undefined
  nextShardId: number
  nextReplicaId: number
  access: Access
  /** Tables this command changes in place, with their journals. */
  readonly #inPlace = new Map<Table, Journal>()
  /** Tables this command copied, with their journals (kept only when `record` is set). */
  readonly #copied = new Map<Table, Journal>()
  /** The records the command changed, once it has finished (when `record` is set). */
  changes: RecordChange[] = []

  /** A writer of one command at `index`; with `record`, `finish` lists what it changed. */
  constructor(
    readonly base: RegistryState,
    readonly index: number,
    readonly batch: Batch = new Set(),
    readonly record = false,
  ) {
    this.nextShardId = base.nextShardId
    this.nextReplicaId = base.nextReplicaId
    this.access = base.access
  }

  /**
   * #own returns the table to change: the base's own, journaled, when this batch copied it;
   * else a copy (once per batch).
   */
  #own<K, V>(t: ReadonlyMap<K, V>): Map<K, V> {
    const mine = t as Map<K, V>
    if (this.batch.has(mine as Table)) {
      const log: Journal = []
      journal(mine as Table, log)
      this.#inPlace.set(mine as Table, log)
      return mine
    }
    const copy = new Map(t)
    this.batch.add(copy as Table)
    if (this.record) {
      const log: Journal = []
      journal(copy as Table, log)
      this.#copied.set(copy as Table, log)
    }
    return copy
  }

  get hosts(): Map<string, HostRecord> {
    this.#hosts ??= this.#own(this.base.hosts)
    return this.#hosts
  }
  get shards(): Map<number, ShardRecord> {
    this.#shards ??= this.#own(this.base.shards)
    return this.#shards
  }
  get replicas(): Map<number, ReplicaRecord> {
    this.#replicas ??= this.#own(this.base.replicas)
    return this.#replicas
  }

  /**
   * abandon undoes a refused command: it puts back what it changed in place, newest first,
   * and forgets the tables it copied.
   */
  abandon(): void {
    for (const t of [this.#hosts, this.#shards, this.#replicas] as Array<Table | undefined>) {
      if (!t) continue
      const log = this.#inPlace.get(t)
      if (!log) {
        if (this.#copied.has(t)) unjournal(t)
        this.batch.delete(t)
        continue
      }
      unjournal(t)
      for (let i = log.length - 1; i >= 0; i--) {
        const [k, had, v] = log[i]
        if (had) t.set(k, v)
        else t.delete(k)
      }
    }
    this.#inPlace.clear()
    this.#copied.clear()
  }

  finish(): RegistryState {
    if (this.record) {
      const log = (t: Table | undefined) => t && (this.#inPlace.get(t) ?? this.#copied.get(t))
      this.changes = recordChanges([
        ['host', this.#hosts, log(this.#hosts as Table | undefined)],
        ['shard', this.#shards, log(this.#shards as Table | undefined)],
        ['replica', this.#replicas, log(this.#replicas as Table | undefined)],
      ])
    }
    for (const t of [...this.#inPlace.keys(), ...this.#copied.keys()]) unjournal(t)
    this.#inPlace.clear()
    this.#copied.clear()
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
