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

/**
 * leadersByHost counts, from the leaders the registry records, how many shards each active
 * host that holds a voter leads (shard 0 aside). It is counted once per state.
 */
export function leadersByHost(s: RegistryState): ReadonlyMap<string, number> {
  const known = counted.get(s)
  if (known) return known
  const counts = new Map<string, number>()
  for (const r of s.replicas.values()) {
    if (r.shardId === 0 || r.nonVoting) continue
    if (s.hosts.get(r.hostId)?.status === 'active') counts.set(r.hostId, 0)
  }
  for (const sh of s.shards.values()) {
    if (sh.id === 0 || sh.leader === 0) continue
    const hostId = s.replicas.get(sh.leader)?.hostId
    if (hostId !== undefined && counts.has(hostId))
      counts.set(hostId, (counts.get(hostId) ?? 0) + 1)
  }
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
