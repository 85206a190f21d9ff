// The cluster's status as one host sees it: what `/status.json`, the status page, the bus's
// Status call and `zongzi status` show. Built from this host's copy of the registry, and the
// engine's view of this host's own replicas (their lag).
import { ERROR_TAG } from '../coordinator/control/shard-controller'
import type { RegistryChange } from '../coordinator/registry/changes'
import type { HostRecord, ShardRecord } from '../coordinator/registry/records'
import type { RegistryState } from '../coordinator/registry/state'

/** HostStatusRow is a host as the status shows it, with how many replicas and leaders it has. */
export interface HostStatusRow {
  id: string
  status: HostRecord['status']
  since?: number
  tags: Record<string, string>
  apiAddress: string
  raftAddress: string
  shardTypes: string[]
  replicas: number
  leaders: number
}

/** ReplicaStatusRow is a replica of a shard; `lag` only on the answering host's own replicas. */
export interface ReplicaStatusRow {
  id: number
  hostId: string
  nonVoting: boolean
  status: 'new' | 'active' | 'deleting'
  leader: boolean
  /** Entries committed but not applied on the answering host (its own replicas only). */
  lag?: number
}

/** ShardStatusRow is a shard with its replicas, leader and placement error, if any. */
export interface ShardStatusRow {
  id: number
  name: string
  type: string
  status: ShardRecord['status']
  tags: Record<string, string>
  leader: number
  leaderHost?: string
  term: number
  placementError?: string
  replicas: ReplicaStatusRow[]
}

/** ClusterStatus is the whole cluster as the host `hostId` sees it at registry `index`. */
export interface ClusterStatus {
  cluster: string
  hostId: string
  index: number
  /** The host keeps the registry changes after this index (`agent.changes({ since })`). */
  changesFrom: number
  hosts: HostStatusRow[]
  shards: ShardStatusRow[]
  /** The latest registry changes of replicas (membership), newest last. */
  recent: RegistryChange[]
}

/** What the status reads of a host: the local lag of a shard's replica. */
export interface StatusSource {
  cluster: string
  hostId: string
  state: RegistryState
  recent: RegistryChange[]
  changesFrom: number
  /** lag tells how far this host's replica of a shard is behind its commit, if it runs one. */
  lag(shardId: number): Promise<number | undefined>
}

/** RECENT is how many membership changes the status lists. */
export const RECENT = 20
/** LAG_LIMIT bounds the local replicas whose lag one status reads from the engine. */
const LAG_LIMIT = 1_000

/** clusterStatus builds the status of the cluster from what `src` offers. */
export async function clusterStatus(src: StatusSource): Promise<ClusterStatus> {
  const s = src.state
  const hosts = [...s.hosts.values()].map((h) => {
    const mine = s.replicasOn(h.id)
    const leaders = mine.filter((r) => s.shards.get(r.shardId)?.leader === r.id).length
    return {
      id: h.id,
      status: h.status,
      ...(h.since === undefined ? {} : { since: h.since }),
      tags: h.tags,
      apiAddress: h.apiAddress,
      raftAddress: h.raftAddress,
      shardTypes: h.shardTypes,
      replicas: mine.length,
      leaders,
    }
  })
  const local = s.replicasOn(src.hostId).slice(0, LAG_LIMIT)
  const lags = new Map<number, number | undefined>(
    await Promise.all(local.map(async (r) => [r.id, await src.lag(r.shardId)] as const)),
  )
  const shards = [...s.shards.values()].map((sh) => {
    const replicas = s.replicasOf(sh.id).map((r) => {
      const lag = lags.get(r.id)
      return {
        id: r.id,
        hostId: r.hostId,
        nonVoting: r.nonVoting,
        status: r.status,
        leader: sh.leader === r.id,
        ...(lag === undefined ? {} : { lag }),
      }
    })
    const leaderHost = replicas.find((r) => r.leader)?.hostId
    const error = sh.tags[ERROR_TAG]
    return {
      id: sh.id,
      name: sh.name,
      type: sh.type,
      status: sh.status,
      tags: sh.tags,
      leader: sh.leader,
      ...(leaderHost ? { leaderHost } : {}),
      term: sh.term,
      ...(error === undefined ? {} : { placementError: error }),
      replicas,
    }
  })
  return {
    cluster: src.cluster,
    hostId: src.hostId,
    index: s.index,
    changesFrom: src.changesFrom,
    hosts,
    shards,
    recent: src.recent,
  }
}
