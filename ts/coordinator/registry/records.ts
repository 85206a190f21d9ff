// The registry's records and commands: the shapes every part of the coordinator shares.

/** HostSelector picks hosts by tags: a host matches when it has every given tag value. */
export interface HostSelector {
  /** How many replicas. */
  count: number
  /**
   * The fewest that will do while fewer hosts fit (default `count`, at most `count`): the
   * shard gets as many as fit, at least `min`, and more as hosts that fit appear.
   */
  min?: number
  /** Tags the host must have (all of them). */
  tags?: Record<string, string>
}

/**
 * Placement says where a shard's replicas live.
 * - `members`: voters, `count` of them (or as many as fit, at least `min`), on hosts
 *   matching `tags`.
 * - `groups`: named groups of non-voting replicas, `count` each, on hosts matching `tags`.
 * - `vary`: host tag keys to spread replicas over: no two voters share a value of a key
 *   when the hosts allow it (e.g. `['zone']`).
 * - `cover`: a non-voting replica on every host matching these tags.
 */
export interface Placement {
  members?: HostSelector
  groups?: Record<string, HostSelector>
  vary?: string[]
  cover?: { tags?: Record<string, string> }
}

/** HostStatus is what the registry says of a host; see HostRecord.status. */
export type HostStatus = 'active' | 'missing' | 'draining' | 'gone'

/** HostRecord describes one host (agent). */
export interface HostRecord {
  id: string
  created: number
  updated: number
  /**
   * `active`: up as far as the registry leader can tell. `missing`: stopped answering its
   * heartbeats; its replicas are replaced once it has been missing `replaceAfterMs`.
   * `draining`: its replicas are being moved off (`agent.drain()`); it gets no new ones.
   * `gone`: removed for good (`agent.removeHost()`, a drained stop, or a host that came back
   * with an empty data directory under a new id); it may never come back under this id.
   */
  status: HostStatus
  /**
   * When the status last changed, in milliseconds since the epoch on the clock of the agent
   * that proposed the change; 0 for a missing host to be replaced at once
   * (`agent.replaceHost`), and for a host that took the place of this one. Absent when not
   * known.
   */
  since?: number
  tags: Record<string, string>
  apiAddress: string
  raftAddress: string
  /** State machine type URIs this host can run. */
  shardTypes: string[]
  /**
   * The newest registry format this host's build reads (see docs/upgrades.md); absent: 1 (a
   * build from before versions, or a host that has not written its record since).
   */
  version?: number
  /**
   * SHA-256 fingerprint of the host's TLS certificate (as Node prints it), when it has one:
   * the bus lets a caller act as this host only with this certificate.
   */
  certificate?: string
  /**
   * Fingerprint of the certificate the host is switching to (`agent.reloadTls()`): the bus
   * accepts it next to `certificate` until the host records it as its only one.
   */
  nextCertificate?: string
}

/** ShardRecord describes one shard. Shard 0 is the registry itself. */
export interface ShardRecord {
  id: number
  name: string
  type: string
  status: 'new' | 'active' | 'deleting'
  tags: Record<string, string>
  placement: Placement
  /** Leader replica id as last reported, 0 if unknown. */
  leader: number
  term: number
  created: number
  updated: number
}

/** ReplicaRecord describes one replica; ids are unique across the cluster. */
export interface ReplicaRecord {
  id: number
  shardId: number
  hostId: string
  nonVoting: boolean
  /** Initial voters bootstrap the shard together; later replicas join it. */
  initial: boolean
  status: 'new' | 'active' | 'deleting'
  tags: Record<string, string>
  created: number
  updated: number
}

/**
 * Proposer names the host that proposes a command (`by`): the agent's registry access sets it
 * on every command. The registry lets a host change only its own host record, except for the
 * changes it can check are the registry leader's duty (see registry-proposers.ts).
 */
export interface Proposer {
  by?: string
}

/** Command is what the registry accepts, as JSON. */
export type Command = CommandBody & Proposer

/** CommandBody is a command without its proposer. */
export type CommandBody =
  | {
      op: 'cluster.init'
      peers: Array<{ hostId: string; replicaId: number; raftAddress: string; apiAddress: string }>
      /** Signs join tokens (see join-tokens.ts); every peer proposes its own, the first wins. */
      joinKey?: string
    }
  | {
      op: 'host.put'
      host: Pick<
        HostRecord,
        | 'id'
        | 'apiAddress'
        | 'raftAddress'
        | 'tags'
        | 'shardTypes'
        | 'certificate'
        | 'nextCertificate'
        | 'version'
      >
      /**
       * The host is a peer that lost its data and joined again under a new id: the earlier
       * identity at its bus address is gone.
       */
      rejoined?: boolean
    }
  | {
      op: 'host.join'
      hostId: string
      token: string
      /** The admitting member's clock (ms since the epoch), for the token's expiry. */
      now: number
      tags?: Record<string, string>
      /**
       * The Raft address the host joins from, and the fingerprint of the certificate it called
       * with (over TLS), as the admitting member saw them: a retry must come from both again.
       */
      raftAddress?: string
      certificate?: string
    }
  | {
      op: 'host.status'
      id: string
      status: HostStatus
      /** The proposer's clock (ms since the epoch), kept as the record's `since`. */
      now?: number
      /** The status the proposer saw: the command changes nothing unless it is still so. */
      from?: HostStatus
    }
  | {
      op: 'tokens.prune'
      /** The registry leader's clock (ms since the epoch): used tokens expired by then go. */
      now: number
    }
  | { op: 'access.name' }
  | {
      op: 'cluster.version'
      /** The registry format the cluster writes from this command on (only ever raised). */
      version: number
    }
  | {
      op: 'access.rotate'
      /** The new join key (64 hex digits): tokens signed with the earlier one admit nobody. */
      joinKey: string
    }
  | {
      op: 'shard.create'
      name: string
      type: string
      tags?: Record<string, string>
      placement?: Placement
    }
  | {
      op: 'shards.create'
      /** The shards to make, all or none: each as shard.create makes one. */
      items: Array<{
        name: string
        type: string
        tags?: Record<string, string>
        placement?: Placement
      }>
    }
  | { op: 'shard.update'; id: number; tags?: Record<string, string>; placement?: Placement }
  | { op: 'shard.delete'; id: number }
  | { op: 'shard.status'; id: number; status: ShardRecord['status'] }
  | { op: 'shard.leader'; id: number; leader: number; term: number }
  | {
      op: 'replicas.create'
      shardId: number
      items: Array<{ hostId: string; nonVoting: boolean; initial: boolean }>
    }
  | { op: 'replica.create'; shardId: number; hostId: string; nonVoting: boolean }
  | { op: 'replica.update'; id: number; nonVoting?: boolean; status?: ReplicaRecord['status'] }
  | { op: 'replica.delete'; id: number }

/** Outcome of a command: `ok` with data, or an error message. */
export type Outcome =
  | { ok: true; id?: number; ids?: number[] }
  | { ok: false; error: string; code?: 'ERR_UNAUTHENTICATED' | 'ERR_UNSUPPORTED_VERSION' }

/** Accepted is the outcome of a command the registry applied. */
export type Accepted = Extract<Outcome, { ok: true }>

/**
 * createdId returns the id in the outcome of an accepted create command (`shard.create`,
 * `replica.create`), which always carries one; its absence is a broken invariant.
 */
export function createdId(out: Accepted): number {
  if (out.id === undefined) throw new Error('the registry accepted a create command without an id')
  return out.id
}
