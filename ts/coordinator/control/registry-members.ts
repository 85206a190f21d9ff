// RegistryMembers: on the registry leader, keeps shard 0 at its number of voters — taking
// out the votes of dead hosts that are leaving, promoting non-voting replicas of live hosts,
// spread over zones, and taking out the rest of the leaving — one membership change at a time.
import type { Host } from '../../binding/host'
import type { ControllerContext, ProposeCommand } from './shard-controller'
import { keepsQuorum } from './shard-controller'
import { repairOf } from './membership-repair'
import type { ReplicaRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'

/** ZONE_TAG is the host tag whose values the registry's voters are spread over. */
export const ZONE_TAG = 'zone'

/** RegistryMembersContext is what keeping shard 0's members takes. */
export interface RegistryMembersContext extends Pick<ControllerContext, 'leaving' | 'take'> {
  /** The engine host of the registry leader: it runs shard 0 and changes it directly. */
  readonly host: Pick<Host, 'status' | 'promote' | 'addNonVoting' | 'removeReplica'>
  /** This host's id (the leader's; it never takes its own replica out). */
  readonly hostId: string
  /** Voters to keep: 3 or 5. */
  readonly voters: number
  readonly timeoutMs: number
}

/**
 * reconcileRegistry makes at most one change to shard 0's membership: first one that brings
 * Raft in line with the records (a change recorded by an earlier leader that failed before it
 * was made), then one towards the voters wanted. Each change is recorded first.
 */
export async function reconcileRegistry(
  s: RegistryState,
  propose: ProposeCommand,
  ctx: RegistryMembersContext,
): Promise<void> {
  const o = { timeoutMs: ctx.timeoutMs }
  const st = await ctx.host.status(0)
  const fix = repairOf(s, 0, st.membership, st.replicaId)
  if (fix) {
    if (fix.op === 'promote') await ctx.host.promote(0, fix.replicaId, o)
    else if (fix.op === 'remove') await ctx.host.removeReplica(0, fix.replicaId, o)
    else await raftDemote(s, ctx, fix.replicaId)
    return
  }
  const zero = s.replicasOf(0)
  const host = (r: ReplicaRecord) => s.hosts.get(r.hostId)
  const zone = (r: ReplicaRecord) => host(r)?.tags[ZONE_TAG] ?? ''
  const stays = (r: ReplicaRecord) => !ctx.leaving(host(r))
  const voters = zero.filter((r) => !r.nonVoting)
  const kept = voters.filter(stays)
  // Candidates: non-voting replicas of active hosts (a host is active once it joined shard 0
  // and caught up with it).
  const candidates = zero
    .filter((r) => r.nonVoting && host(r)?.status === 'active')
    .sort((a, b) => a.id - b.id)
  const zones = new Set(kept.map(zone))
  const live = voters.filter((r) => host(r)?.status === 'active').length
  // A voter of a host that is down and leaving (missing long enough, or gone) stops voting
  // first, while the live voters are a quorum and stay one: were its replacement promoted
  // first, a death of the new voter's host would leave two dead of four and no quorum.
  const quorum = live >= Math.floor(voters.length / 2) + 1
  const dead = voters.find(
    (r) =>
      !stays(r) &&
      r.hostId !== ctx.hostId &&
      (host(r)?.status === 'missing' || host(r)?.status === 'gone') &&
      quorum &&
      keepsQuorum(voters.length, live, false),
  )
  if (dead) {
    if (!ctx.take()) return
    await leave(s, propose, ctx, dead)
    return
  }
  const fresh = candidates.find((r) => !zones.has(zone(r)))
  // Voters sharing a zone while another zone has a candidate: one more voter from there (the
  // surplus is demoted next).
  const spread = kept.length === ctx.voters && zones.size < kept.length && fresh !== undefined
  if ((kept.length < ctx.voters || spread) && candidates.length > 0) {
    if (!ctx.take()) return
    const r = fresh ?? candidates[0]
    await propose({ op: 'replica.update', id: r.id, nonVoting: false })
    await ctx.host.promote(0, r.id, o)
    return
  }
  // A voter of a leaving host stops voting once it has a replacement, or at once when it
  // drains or left for good. A host that left for good is taken out; the others keep their
  // replica, non-voting, to follow the registry (a missing host may yet come back).
  const out = voters.find(
    (r) =>
      !stays(r) &&
      r.hostId !== ctx.hostId &&
      (kept.length >= ctx.voters || host(r)?.status !== 'missing') &&
      keepsQuorum(voters.length, live, false),
  )
  if (out) {
    if (!ctx.take()) return
    await leave(s, propose, ctx, out)
    return
  }
  // Too many voters (or two in one zone, once a voter of a new zone joined): demote one — of
  // a host that does not answer first, then a second one in a zone — if a quorum stays.
  if (kept.length > ctx.voters) {
    const seen = new Set<string>()
    const twice = kept.filter((r) => {
      const z = zone(r)
      const again = seen.has(z)
      seen.add(z)
      return again
    })
    const silent = kept.filter((r) => host(r)?.status !== 'active')
    const pick = [...silent, ...twice, ...kept].find(
      (r) =>
        r.hostId !== ctx.hostId && keepsQuorum(voters.length, live, host(r)?.status === 'active'),
    )
    if (pick && ctx.take()) await demote(s, propose, ctx, pick)
    return
  }
  // A non-voting replica of a host that is gone for good.
  const stale = zero.find((r) => r.nonVoting && host(r)?.status === 'gone')
  if (stale && ctx.take()) {
    await propose({ op: 'replica.delete', id: stale.id })
    await ctx.host.removeReplica(0, stale.id, o)
  }
}

/**
 * leave takes a voter of a leaving host out of the vote: a host gone for good loses its
 * replica too; any other keeps it, non-voting, to follow the registry.
 */
async function leave(
  s: RegistryState,
  propose: ProposeCommand,
  ctx: RegistryMembersContext,
  r: ReplicaRecord,
): Promise<void> {
  if (s.hosts.get(r.hostId)?.status !== 'gone') return demote(s, propose, ctx, r)
  await propose({ op: 'replica.delete', id: r.id })
  await ctx.host.removeReplica(0, r.id, { timeoutMs: ctx.timeoutMs })
}

/** demote makes a voter of shard 0 non-voting. */
async function demote(
  s: RegistryState,
  propose: ProposeCommand,
  ctx: RegistryMembersContext,
  r: ReplicaRecord,
): Promise<void> {
  await propose({ op: 'replica.update', id: r.id, nonVoting: true })
  await raftDemote(s, ctx, r.id)
}

/** raftDemote makes a voter of shard 0 non-voting in Raft. */
async function raftDemote(s: RegistryState, ctx: RegistryMembersContext, id: number) {
  const r = s.replicas.get(id)
  const address = (r && s.hosts.get(r.hostId)?.raftAddress) ?? ''
  await ctx.host.addNonVoting(0, id, address, { timeoutMs: ctx.timeoutMs })
}
