// MembershipOps: the Raft membership changes the registry leader makes in shards it may not
// run itself, through the bus, on a host that runs a member of the shard.
import { ZongziError } from '../../binding/errors'
import type { BusClient } from '../../bus/client'
import { isAlive } from './departures'
import type { ReplicaRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'
import { firstOf } from '../client/retry'

/**
 * MembershipOps change a shard's Raft membership. Each is safe to ask again: a change that
 * already happened changes nothing.
 */
export interface MembershipOps {
  /** promote makes a caught-up non-voting replica a voter. */
  promote(s: RegistryState, shardId: number, replicaId: number): Promise<void>
  /** demote makes a voter non-voting. */
  demote(s: RegistryState, shardId: number, replicaId: number): Promise<void>
  /** remove takes a replica out of the shard. */
  remove(s: RegistryState, shardId: number, replicaId: number): Promise<void>
}

/** busMembership asks, one after another, the live hosts that run the shard. */
export function busMembership(
  bus: Pick<BusClient, 'addReplica' | 'removeReplica'>,
  timeoutMs: number,
): MembershipOps {
  const members = (s: RegistryState, shardId: number, replicaId: number) =>
    s.replicasOf(shardId).flatMap((r) => {
      const h = s.hosts.get(r.hostId)
      const usable = r.id !== replicaId && r.status === 'active' && isAlive(h)
      return usable && h ? [h.apiAddress] : []
    })
  const across = (
    s: RegistryState,
    shardId: number,
    replicaId: number,
    call: (address: string) => Promise<void>,
  ) =>
    firstOf(
      members(s, shardId, replicaId),
      call,
      () => true,
      () => new ZongziError('ERR_UNAVAILABLE', `shard ${shardId} has no live member to ask`),
    )
  const add = (s: RegistryState, shardId: number, replicaId: number, nonVoting: boolean) => {
    const r = s.replicas.get(replicaId)
    const raftAddress = (r && s.hosts.get(r.hostId)?.raftAddress) ?? ''
    const change = { shardId, replicaId, raftAddress, nonVoting }
    return across(s, shardId, replicaId, (a) => bus.addReplica(a, change, { timeoutMs }))
  }
  return {
    promote: (s, shardId, replicaId) => add(s, shardId, replicaId, false),
    demote: (s, shardId, replicaId) => add(s, shardId, replicaId, true),
    remove: (s, shardId, replicaId) =>
      across(s, shardId, replicaId, (a) =>
        bus.removeReplica(a, { shardId, replicaId }, { timeoutMs }),
      ),
  }
}

/** apiAddresses lists the bus addresses of the hosts of `replicas` that the registry knows. */
export function apiAddresses(s: RegistryState, replicas: ReplicaRecord[]): string[] {
  return replicas.flatMap((m) => {
    const h = s.hosts.get(m.hostId)
    return h ? [h.apiAddress] : []
  })
}
