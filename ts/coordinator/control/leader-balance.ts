// Leader balance: which shard leadership a host hands to another host, so that hosts lead
// about as many shards each, and a draining host leads none.
import type { RegistryState } from '../registry/state'

/** Transfer asks the leader of `shardId` (on this host) to hand leadership to `replicaId`. */
export interface Transfer {
  shardId: number
  replicaId: number
}

/**
 * leadersByHost counts, from the leaders the registry records, how many shards each active
 * host that holds a voter leads (shard 0 aside).
 */
export function leadersByHost(s: RegistryState): Map<string, number> {
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
  return counts
}

/**
 * nextTransfer picks one leadership that `hostId` should hand over: any it holds when it is
 * draining (shard 0 first), else one whose shard has a voter on a host leading at least two
 * fewer shards (the least loaded such host). Undefined when there is none.
 */
export function nextTransfer(s: RegistryState, hostId: string): Transfer | undefined {
  const draining = s.hosts.get(hostId)?.status === 'draining'
  const counts = leadersByHost(s)
  const mine = counts.get(hostId) ?? 0
  const led = [...s.shards.values()]
    .filter((sh) => sh.status !== 'deleting' && s.replicas.get(sh.leader)?.hostId === hostId)
    .sort((a, b) => a.id - b.id)
  for (const sh of led) {
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
    if (targets.length > 0) return { shardId: sh.id, replicaId: targets[0].r.id }
  }
  return undefined
}
