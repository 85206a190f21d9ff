// The registry's commands about hosts and the cluster's access: a host's record and status,
// joins with a token, and the join key. Who may propose each is checked before (see
// registry-proposers.ts); a handler that throws Invalid changes nothing.
import type { HostStatus, Outcome } from './records'
import { isJoinKey, type JoinClaims, readJoinToken } from './join-tokens'
import { type Fields, isId, isObj, isStrings, isTags } from './fields'
import { hostVersion } from './versions'
import { deny, need, type Writer } from './writer'

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
  const version = hostVersion(w, h.id, h.version)
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
    ...(version === undefined ? {} : { version }),
  })
  w.touchHost(h.id)
  // A peer that lost its data and joined again: another id at its address is its earlier
  // life, gone for good, and its replicas are replaced. Any member can claim this, so only
  // an identity the registry leader already has missing goes (it no longer answers as itself
  // there); the rejoined agent marks one still active gone once it is missing. A registry
  // made before that rule (Access.named) replays its log as written: any but a gone one.
  need(c.rejoined === undefined || typeof c.rejoined === 'boolean', 'rejoined must be a boolean')
  const earlier = w.access.named ? ['missing'] : ['active', 'missing', 'draining']
  for (const o of c.rejoined ? [...w.hosts.values()] : []) {
    if (o.id === h.id || !earlier.includes(o.status) || o.apiAddress !== h.apiAddress) continue
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
 * (it has not written its record yet) from the Raft address and certificate it joined from,
 * which the admitting member puts in the command. Expired tokens are forgotten. A registry
 * made before these rules applies the earlier ones (see joinAsWritten).
 */
function hostJoin(w: Writer, c: Fields): Outcome {
  need(typeof c.hostId === 'string' && c.hostId.length > 0, 'hostId is required')
  need(isId(c.now), 'now must be a time in milliseconds')
  need(c.tags === undefined || isTags(c.tags), 'host tags must map non-empty names to strings')
  const hostId = c.hostId
  const now = c.now
  const tags = (c.tags ?? {}) as Record<string, string>
  const claims = readJoinToken(w.access.joinKey, c.token)
  deny(typeof claims !== 'string', claims as string)
  if (!w.access.named) return joinAsWritten(w, hostId, now, claims, tags)
  const { raftAddress, certificate } = c
  need(raftAddress === undefined || typeof raftAddress === 'string', 'raftAddress is a string')
  need(
    certificate === undefined || (typeof certificate === 'string' && certificate.length <= 256),
    'certificate must be a fingerprint',
  )
  deny(now <= claims.expires, 'the join token has expired')
  const used = w.access.used.get(claims.id)
  deny(!used || used.hostId === hostId, 'the join token has admitted another host')
  deny(
    !used || (used.raftAddress === raftAddress && used.certificate === certificate),
    `the join token admitted host ${hostId} from another Raft address or certificate`,
  )
  deny(!w.hosts.has(hostId), `host ${hostId} is known: a host id names one host for good`)
  const held = w.replicaOf(0, hostId)
  deny(
    !held || (used !== undefined && held.nonVoting),
    `host ${hostId} has a replica of the registry, which a join may not take over`,
  )
  const missing = Object.keys(claims.tags).filter((k) => tags[k] !== claims.tags[k])
  deny(missing.length === 0, `the join token admits hosts tagged ${JSON.stringify(claims.tags)}`)
  const next = new Map([...w.access.used].filter(([, u]) => u.expires >= now))
  next.set(claims.id, {
    hostId,
    expires: claims.expires,
    ...(raftAddress === undefined ? {} : { raftAddress }),
    ...(certificate === undefined ? {} : { certificate }),
  })
  w.access = { ...w.access, used: next }
  if (held) return { ok: true, id: held.id }
  return { ok: true, id: w.newReplica(0, hostId, true, false) }
}

/**
 * joinAsWritten is host.join as a registry made before the proposer rules (Access.named)
 * applied it, so that its log replays as written: a token that admitted this host admits it
 * again even after it expired, and a host with a replica of shard 0 is answered that replica.
 */
function joinAsWritten(
  w: Writer,
  hostId: string,
  now: number,
  claims: JoinClaims,
  tags: Record<string, string>,
): Outcome {
  const used = w.access.used.get(claims.id)
  deny(!used || used.hostId === hostId, 'the join token has admitted another host')
  deny(!!used || now <= claims.expires, 'the join token has expired')
  const missing = Object.keys(claims.tags).filter((k) => tags[k] !== claims.tags[k])
  deny(missing.length === 0, `the join token admits hosts tagged ${JSON.stringify(claims.tags)}`)
  const next = new Map([...w.access.used].filter(([, u]) => u.expires >= now))
  next.set(claims.id, { hostId, expires: claims.expires })
  w.access = { ...w.access, used: next }
  const held = w.replicaOf(0, hostId)
  return { ok: true, id: held?.id ?? w.newReplica(0, hostId, true, false) }
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
 * accessName (access.name) turns on the proposer rules in a registry made before them (see
 * Access.named); once on, they stay on.
 */
function accessName(w: Writer): Outcome {
  need(w.shards.has(0), 'the cluster is not initialised')
  if (!w.access.named) w.access = { ...w.access, named: true }
  return { ok: true }
}

/** HOST_HANDLERS has one handler for each op about hosts and access. */
export const HOST_HANDLERS = {
  'host.put': hostPut,
  'host.join': hostJoin,
  'host.status': hostStatus,
  'tokens.prune': tokensPrune,
  'access.rotate': accessRotate,
  'access.name': accessName,
} as const
