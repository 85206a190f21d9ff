// Proposers: who may propose what. Every command names its proposer (`by`, set by the
// proposing agent); a host changes only its own host record, and the changes to other hosts'
// records that the registry leader's controllers make are checked against the leadership of
// shard 0 that the registry recorded.
import type { HostStatus } from './records'
import { deny, type Writer } from './writer'

/** Fields are a command's fields, not yet checked. */
type Fields = Record<string, unknown>

/**
 * registryLeader is the host of the replica the registry last recorded as shard 0's leader,
 * if any.
 */
export function registryLeader(w: Pick<Writer, 'shards' | 'replicas'>): string | undefined {
  const leader = w.shards.get(0)?.leader ?? 0
  return leader === 0 ? undefined : w.replicas.get(leader)?.hostId
}

/**
 * isMember tells whether `hostId` may propose at all: a host on record that is not gone, or
 * an initial peer of shard 0 that has not written its record yet.
 */
function isMember(w: Writer, hostId: string): boolean {
  const h = w.hosts.get(hostId)
  if (h) return h.status !== 'gone'
  return w.replicaOf(0, hostId) !== undefined
}

/** A departure another member may record: the host is already missing or draining. */
const DEPARTED: HostStatus[] = ['missing', 'gone']
const LEAVING: HostStatus[] = ['missing', 'draining']

/**
 * NAMED are the ops that must name their proposer: those about hosts and who leads. (An op
 * about shards and replicas may leave `by` out, as commands written before it did; a proposer
 * can claim any `by`, so requiring it there would add no check, see the README.)
 */
const NAMED = new Set([
  'cluster.init',
  'host.put',
  'host.status',
  'host.join',
  'shard.leader',
  'tokens.prune',
  'access.rotate',
  'cluster.version',
])

/**
 * checkProposer throws Invalid (ERR_UNAUTHENTICATED) unless the proposer `c.by` may propose
 * command `c`:
 * - `cluster.init`: one of the peers it names;
 * - `host.put`: the host itself;
 * - `host.status`: the host itself; the registry leader (liveness, departures); or any member
 *   marking a host that the registry already has missing or draining `missing` or `gone`,
 *   with `from` (see `agent.removeHost`);
 * - `shard.leader`: the host of the replica it names as leader, a replica of that shard on
 *   record (the term is the proposer's word; see docs/security.md on what `by` guards against);
 * - `tokens.prune` and `cluster.version`: the registry leader;
 * - anything else (`host.join` included): a member of the cluster.
 */
export function checkProposer(w: Writer, c: Fields): void {
  const by = c.by
  // A registry made before this rule applies its commands as they were written, until the
  // registry leader turns it on (access.name; a new cluster has it from the start).
  if (!w.access.named) return
  if (by === undefined && !NAMED.has(c.op as string)) return
  deny(
    typeof by === 'string' && by.length > 0 && by.length <= 256,
    'a registry command names its proposer (by)',
  )
  if (c.op === 'cluster.init') {
    // An init without peers is refused for what it lacks (see clusterInit).
    if (!Array.isArray(c.peers) || c.peers.length === 0) return
    const peers = c.peers as Array<Fields | null>
    deny(
      peers.some((p) => p?.hostId === by),
      `host ${by} is not a peer of this cluster.init`,
    )
    return
  }
  const other = `host ${by} may not change the record of another host`
  switch (c.op) {
    case 'host.put': {
      const h = c.host as Fields | null
      // A put without an id is refused for what it lacks (see hostPut).
      if (typeof h?.id === 'string') deny(h.id === by, other)
      return
    }
    case 'host.status': {
      if (c.id === by) return
      deny(isMember(w, by), `host ${by} is not a member of the cluster`)
      if (registryLeader(w) === by) return
      const h = typeof c.id === 'string' ? w.hosts.get(c.id) : undefined
      const departure =
        DEPARTED.includes(c.status as HostStatus) &&
        h !== undefined &&
        LEAVING.includes(h.status) &&
        c.from === h.status
      deny(departure, `${other} (only the registry leader may, or a departure with from)`)
      return
    }
    case 'shard.leader': {
      if (typeof c.leader !== 'number') return // refused for what it lacks (see shardLeader)
      const r = w.replicas.get(c.leader)
      deny(r?.hostId === by, `host ${by} may report only its own replica as a leader`)
      deny(r.shardId === c.id, `replica ${r.id} is not a replica of shard ${String(c.id)}`)
      return
    }
    case 'tokens.prune':
      deny(registryLeader(w) === by, `only the registry leader prunes join tokens, not ${by}`)
      return
    case 'cluster.version':
      deny(registryLeader(w) === by, `only the registry leader moves the cluster on, not ${by}`)
      return
    default:
      deny(isMember(w, by), `host ${by} is not a member of the cluster`)
  }
}
