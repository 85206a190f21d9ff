// Registry events: what changed between two registry states, as the agent announces it.
import type { RegistryState } from './state'

/** HostChange: the registry marked a host missing (`hostDown`) or active again (`hostUp`). */
export interface HostChange {
  type: 'hostDown' | 'hostUp'
  hostId: string
}

/** hostChanges lists the hosts that went down or came back between two registry states. */
export function hostChanges(before: RegistryState, after: RegistryState): HostChange[] {
  const out: HostChange[] = []
  for (const h of after.hosts.values()) {
    const was = before.hosts.get(h.id)?.status
    if (was === 'active' && h.status === 'missing') out.push({ type: 'hostDown', hostId: h.id })
    if (was === 'missing' && h.status === 'active') out.push({ type: 'hostUp', hostId: h.id })
  }
  return out
}

/**
 * MembershipChange is a change of a shard's replicas on record: one `added` (joining,
 * non-voting), `promoted` to voter, `demoted` to non-voting, or `removed`.
 */
export interface MembershipChange {
  change: 'added' | 'promoted' | 'demoted' | 'removed'
  shardId: number
  replicaId: number
  hostId: string
}

/** membershipChanges lists the replica changes between two registry states. */
export function membershipChanges(before: RegistryState, after: RegistryState): MembershipChange[] {
  const out: MembershipChange[] = []
  const of = (
    change: MembershipChange['change'],
    r: { id: number; shardId: number; hostId: string },
  ) => out.push({ change, shardId: r.shardId, replicaId: r.id, hostId: r.hostId })
  for (const r of after.replicas.values()) {
    const was = before.replicas.get(r.id)
    if (!was) of('added', r)
    else if (was.nonVoting && !r.nonVoting) of('promoted', r)
    else if (!was.nonVoting && r.nonVoting) of('demoted', r)
  }
  for (const r of before.replicas.values()) if (!after.replicas.has(r.id)) of('removed', r)
  return out
}
