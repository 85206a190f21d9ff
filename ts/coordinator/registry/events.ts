// Registry events: what changed between two registry states, as the agent announces it.
import type { ReplicaRecord } from './records'
import type { RegistryState } from './state'

/** HostChange: the registry marked a host missing (`hostDown`) or active again (`hostUp`). */
export interface HostChange {
  type: 'hostDown' | 'hostUp'
  hostId: string
}

/**
 * hostChanges lists the hosts that went down or came back between two registry states (of
 * the hosts whose records differ).
 */
export function hostChanges(before: RegistryState, after: RegistryState): HostChange[] {
  const out: HostChange[] = []
  for (const id of after.hosts.changes(before.hosts)) {
    const h = after.hosts.get(id)
    if (!h) continue
    const was = before.hosts.get(id)?.status
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

/**
 * membershipChanges lists the replica changes between two registry states: additions and
 * changes of voting in the order of replica ids, then removals. It looks only at the replicas
 * whose records differ.
 */
export function membershipChanges(before: RegistryState, after: RegistryState): MembershipChange[] {
  const out: MembershipChange[] = []
  const of = (
    change: MembershipChange['change'],
    r: { id: number; shardId: number; hostId: string },
  ) => out.push({ change, shardId: r.shardId, replicaId: r.id, hostId: r.hostId })
  const gone: ReplicaRecord[] = []
  for (const id of after.replicas.changes(before.replicas)) {
    const was = before.replicas.get(id)
    const r = after.replicas.get(id)
    if (!r) {
      if (was) gone.push(was)
    } else if (!was) of('added', r)
    else if (was.nonVoting && !r.nonVoting) of('promoted', r)
    else if (!was.nonVoting && r.nonVoting) of('demoted', r)
  }
  for (const r of gone) of('removed', r)
  return out
}
