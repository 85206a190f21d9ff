// Membership repair: the registry says who votes in a shard; a shard's Raft leader brings the
// Raft membership back in line with it when a change was recorded but not carried out (its
// maker crashed or lost the registry's leadership in between).
import type { Membership } from '../../binding/host'
import type { RegistryState } from '../registry/state'

/** Repair is one Raft membership change that brings a shard closer to its records. */
export interface Repair {
  op: 'promote' | 'demote' | 'remove'
  replicaId: number
}

/**
 * repairOf compares a shard's Raft membership (as its leader, replica `self`, has it) with the
 * registry's records and returns the first change that would make them agree, if any: a voter
 * recorded non-voting is demoted, a non-voter recorded as a voter promoted, and a member the
 * registry deleted removed. A replica being deleted is left to its host, and a member with an
 * id the registry has not given out yet (this view is older than it) is left alone. Members
 * are never added: a replica joins through its own host.
 */
export function repairOf(
  s: RegistryState,
  shardId: number,
  m: Pick<Membership, 'voters' | 'nonVoters'>,
  self: number,
): Repair | undefined {
  const voters = new Set(m.voters)
  for (const id of [...m.voters, ...m.nonVoters]) {
    if (id === self || id >= s.nextReplicaId) continue
    const r = s.replicas.get(id)
    if (!r || r.shardId !== shardId) return { op: 'remove', replicaId: id }
    if (r.status === 'deleting') continue
    if (r.nonVoting && voters.has(id)) return { op: 'demote', replicaId: id }
    if (!r.nonVoting && !voters.has(id)) return { op: 'promote', replicaId: id }
  }
  return undefined
}
