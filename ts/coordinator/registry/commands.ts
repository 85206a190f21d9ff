// The registry's commands: one handler per op, each checking its own fields next to the
// change it makes to a Writer. A handler that throws Invalid changes nothing. The commands
// about hosts and the cluster's access are in registry-host-commands.ts.
import { isJoinKey } from './join-tokens'
import type { Command, Outcome, Placement, ReplicaRecord, ShardRecord } from './records'
import { type Fields, isId, isObj, isTags } from './fields'
import { HOST_HANDLERS } from './host-commands'
import { checkProposer } from './proposers'
import { clusterVersion } from './versions'
import { Invalid, need, type Writer } from './writer'

/** Handler checks a command's fields and applies it, or throws Invalid. */
type Handler = (w: Writer, c: Fields) => Outcome

/**
 * clusterInit (cluster.init) creates shard 0 and its peers' replicas, active; a second init
 * changes nothing.
 */
function clusterInit(w: Writer, c: Fields): Outcome {
  need(Array.isArray(c.peers) && c.peers.length >= 1, 'cluster.init needs peers')
  need(c.joinKey === undefined || isJoinKey(c.joinKey), 'a join key is 64 hex digits')
  if (w.shards.has(0)) return { ok: true } // initialised before: the first init wins
  w.access = { joinKey: (c.joinKey as string | undefined) ?? '', used: new Map(), named: true }
  w.shards.set(0, {
    id: 0,
    name: 'registry',
    type: 'zongzi:registry',
    status: 'active',
    tags: {},
    placement: {},
    leader: 0,
    term: 0,
    created: w.index,
    updated: w.index,
  })
  for (const p of c.peers as unknown[]) {
    need(
      isObj(p) && typeof p.hostId === 'string' && isId(p.replicaId) && p.replicaId > 0,
      'bad peer',
    )
    w.newReplica(0, p.hostId, false, true, p.replicaId, 'active')
  }
  return { ok: true }
}

/**
 * shardCreate (shard.create) makes a shard; a known name with the same type answers the existing
 * shard.
 */
function shardCreate(w: Writer, c: Fields): Outcome {
  return { ok: true, id: newShard(w, c) }
}

/** newShard makes the shard shard.create describes, or finds it by name; it returns its id. */
function newShard(w: Writer, c: Fields): number {
  need(typeof c.type === 'string' && c.type.length > 0, 'shard type is required')
  need(typeof c.name === 'string' && c.name.length <= 256, 'shard name must be a string')
  need(c.tags === undefined || isTags(c.tags), 'shard tags must map non-empty names to strings')
  need(c.placement === undefined || isObj(c.placement), 'placement must be an object')
  const s = w.shardByName(c.name)
  if (s) {
    need(s.type === c.type, `shard ${JSON.stringify(c.name)} exists with type ${s.type}`)
    return s.id
  }
  const id = w.nextShardId++
  w.shards.set(id, {
    id,
    name: c.name,
    type: c.type,
    status: 'new',
    tags: { ...((c.tags as Record<string, string>) ?? {}) },
    placement: (c.placement as Placement) ?? {},
    leader: 0,
    term: 0,
    created: w.index,
    updated: w.index,
  })
  return id
}

/**
 * shardsCreate (shards.create) makes many shards in one command, each item as shard.create
 * makes one (a known name with the same type answers the existing shard, also a name an
 * earlier item took): all or none. A bad item refuses the whole command, its error naming the
 * item by its index.
 */
function shardsCreate(w: Writer, c: Fields): Outcome {
  need(Array.isArray(c.items) && c.items.length > 0, 'items are required')
  const ids = (c.items as unknown[]).map((it, i) => {
    try {
      need(isObj(it), 'an item must be an object')
      return newShard(w, it)
    } catch (e) {
      if (e instanceof Invalid) throw new Invalid(`item ${i}: ${e.message}`)
      throw e
    }
  })
  return { ok: true, ids }
}

/** shardUpdate (shard.update) replaces a shard's tags and/or placement (never shard 0's). */
function shardUpdate(w: Writer, c: Fields): Outcome {
  const sh = isId(c.id) ? w.shards.get(c.id) : undefined
  need(!!sh && sh.id !== 0, 'unknown shard')
  need(c.tags === undefined || isTags(c.tags), 'shard tags must map non-empty names to strings')
  need(c.placement === undefined || isObj(c.placement), 'placement must be an object')
  w.shards.set(sh.id, {
    ...sh,
    tags: c.tags === undefined ? sh.tags : { ...(c.tags as Record<string, string>) },
    placement: c.placement === undefined ? sh.placement : (c.placement as Placement),
  })
  w.touchShard(sh.id)
  return { ok: true, id: sh.id }
}

/**
 * shardDelete (shard.delete) removes a shard without replicas, or marks it and its replicas
 * deleting.
 */
function shardDelete(w: Writer, c: Fields): Outcome {
  const sh = isId(c.id) ? w.shards.get(c.id) : undefined
  need(!!sh && sh.id !== 0, 'unknown shard')
  const reps = w.replicasOf(sh.id)
  if (reps.length === 0) {
    w.shards.delete(sh.id)
  } else {
    w.shards.set(sh.id, { ...sh, status: 'deleting' })
    for (const r of reps) w.replicas.set(r.id, { ...r, status: 'deleting', updated: w.index })
    w.touchShard(sh.id)
  }
  return { ok: true }
}

/** shardStatus (shard.status) sets a shard's status; a shard being deleted stays deleting. */
function shardStatus(w: Writer, c: Fields): Outcome {
  const sh = isId(c.id) ? w.shards.get(c.id) : undefined
  need(!!sh, 'unknown shard')
  need(['new', 'active', 'deleting'].includes(c.status as string), 'bad shard status')
  need(sh.status !== 'deleting' || c.status === 'deleting', `shard ${sh.id} is being deleted`)
  w.shards.set(sh.id, { ...sh, status: c.status as ShardRecord['status'] })
  w.touchShard(sh.id)
  return { ok: true }
}

/** shardLeader (shard.leader) records a shard's leader, unless a newer term is on record. */
function shardLeader(w: Writer, c: Fields): Outcome {
  const sh = isId(c.id) ? w.shards.get(c.id) : undefined
  need(!!sh && isId(c.leader) && isId(c.term), 'bad shard.leader')
  if ((c.term as number) >= sh.term)
    w.shards.set(sh.id, { ...sh, leader: c.leader as number, term: c.term as number })
  return { ok: true }
}

/** replicasCreate (replicas.create) adds new replicas of a shard, all or none. */
function replicasCreate(w: Writer, c: Fields): Outcome {
  need(isId(c.shardId), 'shardId is required')
  need(Array.isArray(c.items) && c.items.length > 0, 'items are required')
  const ids = (c.items as unknown[]).map((it) => {
    need(isObj(it) && typeof it.hostId === 'string', 'each item needs a hostId')
    return w.newReplica(c.shardId as number, it.hostId, !!it.nonVoting, !!it.initial)
  })
  return { ok: true, ids }
}

/**
 * replicaCreate (replica.create) adds a replica of a shard to a host, or answers the one it has.
 */
function replicaCreate(w: Writer, c: Fields): Outcome {
  need(isId(c.shardId) && typeof c.hostId === 'string', 'shardId and hostId are required')
  const existing = w.replicaOf(c.shardId, c.hostId)
  if (existing) return { ok: true, id: existing.id }
  return {
    ok: true,
    id: w.newReplica(c.shardId as number, c.hostId as string, !!c.nonVoting, false),
  }
}

/**
 * replicaUpdate (replica.update) sets a replica's status and/or voting; a replica being deleted
 * stays so.
 */
function replicaUpdate(w: Writer, c: Fields): Outcome {
  const r = isId(c.id) ? w.replicas.get(c.id) : undefined
  need(!!r, 'unknown replica')
  need(
    c.status === undefined || ['new', 'active', 'deleting'].includes(c.status as string),
    'bad replica status',
  )
  need(c.nonVoting === undefined || typeof c.nonVoting === 'boolean', 'nonVoting must be a boolean')
  need(
    r.status !== 'deleting' || c.status === undefined || c.status === 'deleting',
    `replica ${r.id} is being deleted`,
  )
  w.replicas.set(r.id, {
    ...r,
    status: (c.status as ReplicaRecord['status']) ?? r.status,
    nonVoting: (c.nonVoting as boolean) ?? r.nonVoting,
    updated: w.index,
  })
  if (c.status === 'active') {
    const sh = w.shards.get(r.shardId)
    if (sh?.status === 'new') w.shards.set(sh.id, { ...sh, status: 'active' })
  }
  w.touchShard(r.shardId)
  return { ok: true }
}

/**
 * replicaDelete (replica.delete) removes a replica, and its shard once a deleting shard's last
 * replica goes.
 */
function replicaDelete(w: Writer, c: Fields): Outcome {
  const r = isId(c.id) ? w.replicas.get(c.id) : undefined
  need(!!r, 'unknown replica')
  w.replicas.delete(r.id)
  w.touchHost(r.hostId, false)
  const sh = w.shards.get(r.shardId)
  if (sh?.status === 'deleting' && w.replicasOf(sh.id).length === 0) {
    w.shards.delete(sh.id)
  } else w.touchShard(r.shardId)
  return { ok: true }
}

/** HANDLERS has one handler for each op of Command. */
const HANDLERS: Record<Command['op'], Handler> = {
  'cluster.init': clusterInit,
  'cluster.version': clusterVersion,
  ...HOST_HANDLERS,
  'shard.create': shardCreate,
  'shards.create': shardsCreate,
  'shard.update': shardUpdate,
  'shard.delete': shardDelete,
  'shard.status': shardStatus,
  'shard.leader': shardLeader,
  'replicas.create': replicasCreate,
  'replica.create': replicaCreate,
  'replica.update': replicaUpdate,
  'replica.delete': replicaDelete,
}

/** runCommand checks and applies one command to `w`; it throws Invalid, changing nothing. */
export function runCommand(w: Writer, c: unknown): Outcome {
  need(isObj(c) && typeof c.op === 'string', 'command must be an object with an op')
  const handler = Object.hasOwn(HANDLERS, c.op) ? HANDLERS[c.op as Command['op']] : undefined
  if (!handler) throw new Invalid(`unknown op ${JSON.stringify(c.op)}`)
  checkProposer(w, c)
  return handler(w, c)
}
