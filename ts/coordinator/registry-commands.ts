// The registry's commands: each checks its input and changes a copy-on-write view of the
// state. A command that throws Invalid changes nothing.
import type { HostRecord, Outcome, Placement, ReplicaRecord, ShardRecord } from './records'
import { RegistryState } from './registry-state'

/** Invalid marks a command the registry refuses; the state stays as it was. */
export class Invalid extends Error {}

const isObj = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isTags = (v: unknown): v is Record<string, string> =>
  isObj(v) &&
  Object.entries(v).every(
    ([k, x]) => k.length > 0 && k.length <= 256 && typeof x === 'string' && x.length <= 1024,
  )

const isStrings = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((t) => typeof t === 'string')

function need(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Invalid(msg)
}

/** Writer applies one command to a copy-on-write view of a state. */
export class Writer {
  #hosts: Map<string, HostRecord> | undefined
  #shards: Map<number, ShardRecord> | undefined
  #replicas: Map<number, ReplicaRecord> | undefined
  nextShardId: number
  nextReplicaId: number

  constructor(
    readonly base: RegistryState,
    readonly index: number,
  ) {
    this.nextShardId = base.nextShardId
    this.nextReplicaId = base.nextReplicaId
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

  run(c: unknown): Outcome {
    need(isObj(c) && typeof c.op === 'string', 'command must be an object with an op')
    switch (c.op) {
      case 'cluster.init': {
        need(Array.isArray(c.peers) && c.peers.length >= 1, 'cluster.init needs peers')
        if (this.shards.has(0)) return { ok: true } // initialised before: the first init wins
        this.shards.set(0, {
          id: 0,
          name: 'registry',
          type: 'zongzi:registry',
          status: 'active',
          tags: {},
          placement: {},
          leader: 0,
          term: 0,
          created: this.index,
          updated: this.index,
        })
        for (const p of c.peers as unknown[]) {
          need(
            isObj(p) && typeof p.hostId === 'string' && isId(p.replicaId) && p.replicaId > 0,
            'bad peer',
          )
          this.newReplica(0, p.hostId, false, true, p.replicaId, 'active')
        }
        return { ok: true }
      }
      case 'host.put': {
        const h = c.host
        need(isObj(h) && typeof h.id === 'string' && h.id.length > 0, 'host.id is required')
        need(
          typeof h.apiAddress === 'string' && typeof h.raftAddress === 'string',
          'host addresses are required',
        )
        const tags = h.tags ?? {}
        need(isTags(tags), 'host tags must map non-empty names to strings')
        need(isStrings(h.shardTypes), 'shardTypes must be strings')
        const prev = this.hosts.get(h.id)
        this.hosts.set(h.id, {
          id: h.id,
          created: prev?.created ?? this.index,
          updated: this.index,
          status: 'active',
          tags: { ...tags },
          apiAddress: h.apiAddress,
          raftAddress: h.raftAddress,
          shardTypes: [...h.shardTypes],
        })
        this.touchHost(h.id)
        return { ok: true }
      }
      case 'host.status': {
        const h = typeof c.id === 'string' ? this.hosts.get(c.id) : undefined
        need(h !== undefined, 'unknown host')
        need(['active', 'missing', 'gone'].includes(c.status as string), 'bad host status')
        this.hosts.set(h.id, { ...h, status: c.status as HostRecord['status'] })
        this.touchHost(h.id)
        return { ok: true }
      }
      case 'shard.create': {
        need(typeof c.type === 'string' && c.type.length > 0, 'shard type is required')
        need(typeof c.name === 'string' && c.name.length <= 256, 'shard name must be a string')
        need(
          c.tags === undefined || isTags(c.tags),
          'shard tags must map non-empty names to strings',
        )
        need(c.placement === undefined || isObj(c.placement), 'placement must be an object')
        if (c.name !== '') {
          for (const s of this.shards.values()) {
            if (s.name === c.name) {
              need(s.type === c.type, `shard ${JSON.stringify(c.name)} exists with type ${s.type}`)
              return { ok: true, id: s.id }
            }
          }
        }
        const id = this.nextShardId++
        this.shards.set(id, {
          id,
          name: c.name,
          type: c.type,
          status: 'new',
          tags: { ...((c.tags as Record<string, string>) ?? {}) },
          placement: (c.placement as Placement) ?? {},
          leader: 0,
          term: 0,
          created: this.index,
          updated: this.index,
        })
        return { ok: true, id }
      }
      case 'shard.update': {
        const sh = isId(c.id) ? this.shards.get(c.id) : undefined
        need(!!sh && sh.id !== 0, 'unknown shard')
        need(
          c.tags === undefined || isTags(c.tags),
          'shard tags must map non-empty names to strings',
        )
        need(c.placement === undefined || isObj(c.placement), 'placement must be an object')
        this.shards.set(sh.id, {
          ...sh,
          tags: c.tags === undefined ? sh.tags : { ...(c.tags as Record<string, string>) },
          placement: c.placement === undefined ? sh.placement : (c.placement as Placement),
        })
        this.touchShard(sh.id)
        return { ok: true, id: sh.id }
      }
      case 'shard.delete': {
        const sh = isId(c.id) ? this.shards.get(c.id) : undefined
        need(!!sh && sh.id !== 0, 'unknown shard')
        const reps = [...this.replicas.values()].filter((r) => r.shardId === sh.id)
        if (reps.length === 0) {
          this.shards.delete(sh.id)
        } else {
          this.shards.set(sh.id, { ...sh, status: 'deleting' })
          for (const r of reps)
            this.replicas.set(r.id, { ...r, status: 'deleting', updated: this.index })
          this.touchShard(sh.id)
        }
        return { ok: true }
      }
      case 'shard.status': {
        const sh = isId(c.id) ? this.shards.get(c.id) : undefined
        need(!!sh, 'unknown shard')
        need(['new', 'active', 'deleting'].includes(c.status as string), 'bad shard status')
        need(sh.status !== 'deleting' || c.status === 'deleting', `shard ${sh.id} is being deleted`)
        this.shards.set(sh.id, { ...sh, status: c.status as ShardRecord['status'] })
        this.touchShard(sh.id)
        return { ok: true }
      }
      case 'shard.leader': {
        const sh = isId(c.id) ? this.shards.get(c.id) : undefined
        need(!!sh && isId(c.leader) && isId(c.term), 'bad shard.leader')
        if ((c.term as number) >= sh.term)
          this.shards.set(sh.id, { ...sh, leader: c.leader as number, term: c.term as number })
        return { ok: true }
      }
      case 'replicas.create': {
        need(isId(c.shardId), 'shardId is required')
        need(Array.isArray(c.items) && c.items.length > 0, 'items are required')
        const ids = (c.items as unknown[]).map((it) => {
          need(isObj(it) && typeof it.hostId === 'string', 'each item needs a hostId')
          return this.newReplica(c.shardId as number, it.hostId, !!it.nonVoting, !!it.initial)
        })
        return { ok: true, ids }
      }
      case 'replica.create': {
        need(isId(c.shardId) && typeof c.hostId === 'string', 'shardId and hostId are required')
        const existing = [...this.replicas.values()].find(
          (r) => r.shardId === c.shardId && r.hostId === c.hostId,
        )
        if (existing) return { ok: true, id: existing.id }
        return {
          ok: true,
          id: this.newReplica(c.shardId as number, c.hostId as string, !!c.nonVoting, false),
        }
      }
      case 'replica.update': {
        const r = isId(c.id) ? this.replicas.get(c.id) : undefined
        need(!!r, 'unknown replica')
        need(
          c.status === undefined || ['new', 'active', 'deleting'].includes(c.status as string),
          'bad replica status',
        )
        need(
          c.nonVoting === undefined || typeof c.nonVoting === 'boolean',
          'nonVoting must be a boolean',
        )
        need(
          r.status !== 'deleting' || c.status === undefined || c.status === 'deleting',
          `replica ${r.id} is being deleted`,
        )
        this.replicas.set(r.id, {
          ...r,
          status: (c.status as ReplicaRecord['status']) ?? r.status,
          nonVoting: (c.nonVoting as boolean) ?? r.nonVoting,
          updated: this.index,
        })
        if (c.status === 'active') {
          const sh = this.shards.get(r.shardId)
          if (sh?.status === 'new') this.shards.set(sh.id, { ...sh, status: 'active' })
        }
        this.touchShard(r.shardId)
        return { ok: true }
      }
      case 'replica.delete': {
        const r = isId(c.id) ? this.replicas.get(c.id) : undefined
        need(!!r, 'unknown replica')
        this.replicas.delete(r.id)
        this.touchHost(r.hostId, false)
        const sh = this.shards.get(r.shardId)
        if (
          sh?.status === 'deleting' &&
          ![...this.replicas.values()].some((x) => x.shardId === sh.id)
        ) {
          this.shards.delete(sh.id)
        } else this.touchShard(r.shardId)
        return { ok: true }
      }
      default:
        throw new Invalid(`unknown op ${JSON.stringify(c.op)}`)
    }
  }
}
