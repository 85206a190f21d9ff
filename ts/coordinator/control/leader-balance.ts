// Leader balance: which shard leadership a host hands to another host, so that hosts lead
// about as many shards each, and a draining host leads none.
import type { ShardRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'

/** Transfer asks the leader of `shardId` (on this host) to hand leadership to `replicaId`. */
export interface Transfer {
  shardId: number
  replicaId: number
}

/** The leaders per host of each state counted so far (a state never changes). */
const counted = new WeakMap<RegistryState, ReadonlyMap<string, number>>()

/** Whether a host's replicas (the registry's index of them) include a voter of a user shard. */
const voting = new WeakMap<object, boolean>()

/** The last state whose leaders were counted, with the shards each host leads in it. */
let last: { s: RegistryState; leads: Map<string, number> } | undefined

/** hostOfLeader is the host of a shard's leader on record, if it has one. */
const hostOfLeader = (s: RegistryState, sh: ShardRecord | undefined) =>
  sh && sh.id !== 0 && sh.leader !== 0 ? s.replicas.get(sh.leader)?.hostId : undefined

/**
 * leadsOf counts the user shards each host leads, from the last state counted and the shards
 * that differ from it (the registry's tables tell them apart without a walk), so a command
 * costs what it changed; the first state is counted in full.
 */
function leadsOf(s: RegistryState): Map<string, number> {
  if (last?.s === s) return last.leads
  const leads = new Map(last?.leads)
  const add = (hostId: string | undefined, n: number) => {
    if (hostId !== undefined) leads.set(hostId, (leads.get(hostId) ?? 0) + n)
  }
  if (last) {
    for (const id of s.shards.changes(last.s.shards)) {
      add(hostOfLeader(last.s, last.s.shards.get(id)), -1)
      add(hostOfLeader(s, s.shards.get(id)), 1)
    }
  } else {
    for (const sh of s.shards.values()) add(hostOfLeader(s, sh), 1)
  }
  last = { s, leads }
  return leads
}

/** votes tells whether a host holds a voter of a user shard (looked at once per change). */
function votes(s: RegistryState, hostId: string): boolean {
  const mine = s.indexes.byHost.get(hostId)
  if (!mine) return false
  let v = voting.get(mine)
  if (v === undefined) {
    v = false
    for (const r of mine.values()) {
      if (r.shardId !== 0 && !r.nonVoting) {
        v = true
        break
      }
    }
    voting.set(mine, v)
  }
  return v
}

/**
 * leadersByHost counts, from the leaders the registry records, how many shards each active
 * host that holds a voter leads (shard 0 aside). It is counted once per state, from the last
 * state counted and what changed since.
 */
export function leadersByHost(s: RegistryState): ReadonlyMap<string, number> {
  const known = counted.get(s)
  if (known) return known
  const leads = leadsOf(s)
  const counts = new Map<string, number>()
  for (const h of s.hosts.values())
    if (h.status === 'active' && votes(s, h.id)) counts.set(h.id, leads.get(h.id) ?? 0)
  counted.set(s, counts)
  return counts
}

/**
 * leadTarget is the most shards a host should lead for leaders to be even: the mean over the
 * hosts that can lead (active, with a voter), rounded up.
 */
export function leadTarget(s: RegistryState): number {
  const counts = leadersByHost(s)
  let total = 0
  for (const n of counts.values()) total += n
  return Math.ceil(total / Math.max(1, counts.size))
}

/**
 * nextTransfer picks one leadership that `hostId` should hand over: any it holds when it is
 * draining (shard 0 first), else, when it leads more than another host could, one whose shard
 * has a voter on a host leading at least two fewer: the least loaded such host, so that the
 * counts close in on the mean (see leadTarget). Undefined when there is none. It looks at
 * the replicas of this host only.
 */
export function nextTransfer(s: RegistryState, hostId: string): Transfer | undefined {
  return nextTransfers(s, hostId, 1)[0]
}

/**
 * nextTransfers picks up to `max` leaderships to hand over as nextTransfer does, one after
 * another, counting each as made: a host far above the mean hands several over at once
 * without piling them on one host.
 */
export function nextTransfers(s: RegistryState, hostId: string, max: number): Transfer[] {
  const draining = s.hosts.get(hostId)?.status === 'draining'
  const counts = new Map(leadersByHost(s))
  let mine = counts.get(hostId) ?? 0
  if (!draining && mine < 2) return []
  const led = s
    .replicasOn(hostId)
    .map((r) => s.shards.get(r.shardId))
    .filter((sh): sh is ShardRecord => sh !== undefined && sh.status !== 'deleting')
    .filter((sh) => s.replicas.get(sh.leader)?.hostId === hostId)
    .sort((a, b) => a.id - b.id)
  const out: Transfer[] = []
  for (const sh of led) {
    if (out.length >= max) break
    if (sh.id === 0 && !draining) continue
    const targets = s
      .replicasOf(sh.id)
      // (Replicas of shard 0 that joined later are never marked active; their hosts are.)
      .filter((r) => !r.nonVoting && (r.status === 'active' || sh.id === 0))
      .filter((r) => r.hostId !== hostId)
      .filter((r) => s.hosts.get(r.hostId)?.status === 'active')
      .map((r) => ({ r, n: counts.get(r.hostId) ?? 0 }))
      .filter(({ n }) => draining || n + 2 <= mine)
      .sort((a, b) => a.n - b.n || a.r.id - b.r.id)
    if (targets.length === 0) continue
    const { r, n } = targets[0]
    out.push({ shardId: sh.id, replicaId: r.id })
    counts.set(r.hostId, n + 1)
    mine--
  }
  return out
}
