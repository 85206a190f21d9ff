// The registry's indexes: replicas by shard and by host, and shards by name. They are
// persistent maps like the tables, changed with every record the registry writes, so that a
// command costs what it changes and a state answers `replicasOf` in proportion to the answer.
import { type PMapKey, PMap } from './pmap'
import type { ReplicaRecord, ShardRecord } from './records'

/** Group is the replicas of one shard or one host, by replica id. */
export type Group = PMap<number, ReplicaRecord>

/** Indexes of one state of the registry. */
export interface Indexes {
  /** A shard's replicas; a shard without replicas has no entry. */
  readonly byShard: PMap<number, Group>
  /** A host's replicas; a host without replicas has no entry. */
  readonly byHost: PMap<string, Group>
  /** The id of the shard of each name (but the empty one). */
  readonly byName: PMap<string, number>
}

const NO_GROUP: Group = PMap.empty()

/** without removes replica `r` from its group under `key`, and the group once empty. */
function without<K extends PMapKey>(m: PMap<K, Group>, key: K, id: number): PMap<K, Group> {
  const g = m.get(key)?.delete(id)
  if (!g) return m
  return g.size === 0 ? m.delete(key) : m.set(key, g)
}

/** withOne puts replica `r` in its group under `key`. */
const withOne = <K extends PMapKey>(m: PMap<K, Group>, key: K, r: ReplicaRecord): PMap<K, Group> =>
  m.set(key, (m.get(key) ?? NO_GROUP).set(r.id, r))

/** replicaIndexed is `ix` after a replica's record went from `was` to `now` (either absent). */
export function replicaIndexed(
  ix: Indexes,
  was: ReplicaRecord | undefined,
  now: ReplicaRecord | undefined,
): Indexes {
  let { byShard, byHost } = ix
  if (was && (!now || was.shardId !== now.shardId)) byShard = without(byShard, was.shardId, was.id)
  if (was && (!now || was.hostId !== now.hostId)) byHost = without(byHost, was.hostId, was.id)
  if (now) {
    byShard = withOne(byShard, now.shardId, now)
    byHost = withOne(byHost, now.hostId, now)
  }
  return { byShard, byHost, byName: ix.byName }
}

/** shardIndexed is `ix` after a shard's record went from `was` to `now` (either absent). */
export function shardIndexed(
  ix: Indexes,
  was: ShardRecord | undefined,
  now: ShardRecord | undefined,
): Indexes {
  if (was?.name === now?.name) return ix
  let { byName } = ix
  if (was && was.name !== '' && byName.get(was.name) === was.id) byName = byName.delete(was.name)
  if (now && now.name !== '' && !byName.has(now.name)) byName = byName.set(now.name, now.id)
  return { byShard: ix.byShard, byHost: ix.byHost, byName }
}

/** indexesOf builds the indexes of whole tables (a snapshot, or tables made elsewhere). */
export function indexesOf(
  shards: Iterable<ShardRecord>,
  replicas: Iterable<ReplicaRecord>,
): Indexes {
  const byShard = new Map<number, Array<[number, ReplicaRecord]>>()
  const byHost = new Map<string, Array<[number, ReplicaRecord]>>()
  for (const r of replicas) {
    const s = byShard.get(r.shardId)
    if (s) s.push([r.id, r])
    else byShard.set(r.shardId, [[r.id, r]])
    const h = byHost.get(r.hostId)
    if (h) h.push([r.id, r])
    else byHost.set(r.hostId, [[r.id, r]])
  }
  const names = new Map<string, number>()
  // The first shard of a name in the table's order has it (a registry keeps names unique).
  for (const s of shards) if (s.name !== '' && !names.has(s.name)) names.set(s.name, s.id)
  const groups = <K extends PMapKey>(m: Map<K, Array<[number, ReplicaRecord]>>) =>
    PMap.from([...m].map(([k, rs]): [K, Group] => [k, PMap.from(rs)]))
  return { byShard: groups(byShard), byHost: groups(byHost), byName: PMap.from(names) }
}
