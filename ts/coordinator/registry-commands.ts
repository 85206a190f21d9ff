// The registry's commands: one handler per op, each checking its own fields next to the
// change it makes to a Writer. A handler that throws Invalid changes nothing.
import type { Command, HostStatus, Outcome, Placement, ReplicaRecord, ShardRecord } from './records'
import { isJoinKey, readJoinToken } from './join-tokens'
import { checkProposer } from './registry-proposers'
import { deny, Invalid, need, type Writer } from './registry-writer'

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

/** Fields are a command's fields, not yet checked. */
type Fields = Record<string, unknown>

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
  w.access = { joinKey: (c.joinKey as string | undefined) ?? '', used: new Map() }
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

/** hostPut (host.put) adds a host or replaces a known one, keeping when it was created. */
function hostPut(w: Writer, c: Fields): Outcome {
  const h = c.host
  need(isObj(h) && typeof h.id === 'string' && h.id.length > 0, 'host.id is required')
  need(
    typeof h.apiAddress === 'string' && typeof h.raftAddress === 'string',
    'host addresses are required',
  )
  const tags = h.tags ?? {}
  need(isTags(tags), 'host tags must map non-empty names to strings')
  need(isStrings(h.shardTypes), 'shardTypes must be strings')
  const isPrint = (x: unknown) => x === undefined || (typeof x === 'string' && x.length <= 256)
  need(isPrint(h.certificate) && isPrint(h.nextCertificate), 'certificate must be a fingerprint')
  const prev = w.hosts.get(h.id)
  const back = 'to come back, start it with an empty data directory (it joins as a new host)'
  need(prev?.status !== 'gone', `host ${h.id} was removed from the cluster; ${back}`)
  // A draining host that restarts goes on draining; any other comes back active.
  const status = prev?.status === 'draining' ? 'draining' : 'active'
  w.hosts.set(h.id, {
    id: h.id,
    created: prev?.created ?? w.index,
    updated: w.index,
    status,
    ...(prev?.status === status && prev.since !== undefined ? { since: prev.since } : {}),
    tags: { ...tags },
    apiAddress: h.apiAddress,
    raftAddress: h.raftAddress,
    shardTypes: [...h.shardTypes],
    ...(h.certificate === undefined ? {} : { certificate: h.certificate as string }),
    ...(h.nextCertificate === undefined ? {} : { nextCertificate: h.nextCertificate as string }),
  })
  w.touchHost(h.id)
  // A peer that lost its data and joined again: another id at its address is its earlier
  // life, gone for good, and its replicas are replaced.
  need(c.rejoined === undefined || typeof c.rejoined === 'boolean', 'rejoined must be a boolean')
  for (const o of c.rejoined ? [...w.hosts.values()] : []) {
    if (o.id === h.id || o.status === 'gone' || o.apiAddress !== h.apiAddress) continue
    w.hosts.set(o.id, { ...o, status: 'gone', since: 0, updated: w.index })
    w.touchHost(o.id)
  }
  return { ok: true }
}

/**
 * hostJoin (host.join) admits a new host that shows a join token, adding its replica of
 * shard 0 as non-voting. The token must be signed with the cluster's key, must not have
 * expired by `now` (the admitting member's clock, carried in the command so that every
 * replica decides alike), must not have admitted another host, and its tags must be the
 * host's. A host id names one host for good: a host on record is refused, and so is one with
 * a replica of shard 0, unless it is the host this token admitted retrying its unfinished join
 * (it has not written its record yet). Expired tokens are forgotten.
 */
function hostJoin(w: Writer, c: Fields): Outcome {
  need(typeof c.hostId === 'string' && c.hostId.length > 0, 'hostId is required')
  need(isId(c.now), 'now must be a time in milliseconds')
  need(c.tags === undefined || isTags(c.tags), 'host tags must map non-empty names to strings')
  const hostId = c.hostId
  const now = c.now
  const claims = readJoinToken(w.access.joinKey, c.token)
  deny(typeof claims !== 'string', claims as string)
  deny(now <= claims.expires, 'the join token has expired')
  const used = w.access.used.get(claims.id)
  deny(!used || used.hostId === hostId, 'the join token has admitted another host')
  deny(!w.hosts.has(hostId), `host ${hostId} is known: a host id names one host for good`)
  const held = [...w.replicas.values()].find((r) => r.shardId === 0 && r.hostId === hostId)
  deny(
    !held || (used !== undefined && held.nonVoting),
    `host ${hostId} has a replica of the registry, which a join may not take over`,
  )
  const tags = (c.tags ?? {}) as Record<string, string>
  const missing = Object.keys(claims.tags).filter((k) => tags[k] !== claims.tags[k])
  deny(missing.length === 0, `the join token admits hosts tagged ${JSON.stringify(claims.tags)}`)
  const next = new Map([...w.access.used].filter(([, u]) => u.expires >= now))
  next.set(claims.id, { hostId, expires: claims.expires })
  w.access = { ...w.access, used: next }
  return replicaCreate(w, { shardId: 0, hostId, nonVoting: true })
}

/** tokensPrune (tokens.prune) forgets the used join tokens that expired by `now`. */
function tokensPrune(w: Writer, c: Fields): Outcome {
  need(isId(c.now), 'now must be a time in milliseconds')
  const now = c.now
  const kept = [...w.access.used].filter(([, u]) => u.expires >= now)
  if (kept.length < w.access.used.size) w.access = { ...w.access, used: new Map(kept) }
  return { ok: true }
}

/**
 * accessRotate (access.rotate) replaces the join key: tokens signed with the earlier key admit
 * nobody from then on. The used tokens are kept until they expire.
 */
function accessRotate(w: Writer, c: Fields): Outcome {
  need(isJoinKey(c.joinKey), 'a join key is 64 hex digits')
  need(w.shards.has(0), 'the cluster is not initialised')
  w.access = { ...w.access, joinKey: c.joinKey }
  return { ok: true }
}

/**
 * hostStatus (host.status) sets a known host's status, and when it changed (`now`). The same
 * status without `now` changes nothing; a gone host stays gone. With `from`, it changes nothing
 * unless the host's status is still `from` (the proposer decided on what it saw).
 */
function hostStatus(w: Writer, c: Fields): Outcome {
  const h = typeof c.id === 'string' ? w.hosts.get(c.id) : undefined
  need(h !== undefined, 'unknown host')
  need(['active', 'missing', 'draining', 'gone'].includes(c.status as string), 'bad host status')
  need(c.now === undefined || isId(c.now), 'now must be a time in milliseconds')
  need(h.status !== 'gone' || c.status === 'gone', `host ${h.id} was removed from the cluster`)
  need(
    c.from === undefined || c.from === h.status,
    `host ${h.id} is ${h.status} now, not ${String(c.from)}`,
  )
  if (h.status === c.status && c.now === undefined) return { ok: true }
  const { since: _, ...rest } = h
  const since = c.now === undefined ? {} : { since: c.now as number }
  w.hosts.set(h.id, { ...rest, status: c.status as HostStatus, ...since, updated: w.index })
  w.touchHost(h.id)
  return { ok: true }
}

/**
 * shardCreate (shard.create) makes a shard; a known name with the same type answers the existing
 * shard.
 */
function shardCreate(w: Writer, c: Fields): Outcome {
  need(typeof c.type === 'string' && c.type.length > 0, 'shard type is required')
  need(typeof c.name === 'string' && c.name.length <= 256, 'shard name must be a string')
  need(c.tags === undefined || isTags(c.tags), 'shard tags must map non-empty names to strings')
  need(c.placement === undefined || isObj(c.placement), 'placement must be an object')
  if (c.name !== '') {
    for (const s of w.shards.values()) {
      if (s.name === c.name) {
        need(s.type === c.type, `shard ${JSON.stringify(c.name)} exists with type ${s.type}`)
        return { ok: true, id: s.id }
      }
    }
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
  return { ok: true, id }
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
  const reps = [...w.replicas.values()].filter((r) => r.shardId === sh.id)
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
  const existing = [...w.replicas.values()].find(
    (r) => r.shardId === c.shardId && r.hostId === c.hostId,
  )
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
  if (sh?.status === 'deleting' && ![...w.replicas.values()].some((x) => x.shardId === sh.id)) {
    w.shards.delete(sh.id)
  } else w.touchShard(r.shardId)
  return { ok: true }
}

/** HANDLERS has one handler for each op of Command. */
const HANDLERS: Record<Command['op'], Handler> = {
  'cluster.init': clusterInit,
  'host.put': hostPut,
  'host.join': hostJoin,
  'host.status': hostStatus,
  'tokens.prune': tokensPrune,
  'access.rotate': accessRotate,
  'shard.create': shardCreate,
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
