// The options and types of a host's calls, and the checks of their arguments.
import { fromNative, invalid } from './errors'
import type { HostLogger } from './logger'
import type { SessionRef } from './proposals'

/** HostOptions configures a host. Only `clusterId` and `dataDir` are required. */
export interface HostOptions {
  /** Cluster identity (a non-negative integer); hosts of other clusters are refused. */
  clusterId: number
  /** Directory for the log, snapshots and temporary files. */
  dataDir: string
  /** Raft transport listen address; default `127.0.0.1:0` (an ephemeral port). */
  raftAddress?: string
  /** Raft address peers use to reach this host; default: the bound `raftAddress`. */
  advertiseAddress?: string
  /** Milliseconds per Raft tick (default 100). */
  tickMs?: number
  /** Election timeout in ticks (default 10). */
  electionTicks?: number
  /** Heartbeat interval in ticks (default 2). */
  heartbeatTicks?: number
  /** Step worker threads (default 2). */
  workers?: number
  /** Largest proposal in bytes (default 8 MiB). */
  maxProposalBytes?: number
  /**
   * Snapshot every this many applied entries; 0 disables (default 10,000). Once a snapshot is
   * over 1 MiB, the next also waits until the log since has grown to its size, and comes at
   * the latest after 100 times this many entries.
   */
  snapshotEntries?: number
  /** Entries kept in the log behind a snapshot (default 1,000). */
  compactionOverhead?: number
  /** Sync the log before acknowledging (default true). */
  fsync?: boolean
  /**
   * Most proposals waiting for their result on this host, queued, in Raft or applying
   * (default 65,536); more are refused with ERR_BUSY until some finish.
   */
  maxInFlight?: number
  /** Most proposals of one shard waiting for their result on this host (default 16,384). */
  maxInFlightPerShard?: number
  /**
   * Most client sessions a shard keeps (default 4,096); registering one more evicts the
   * least recently used.
   */
  maxSessionsPerShard?: number
  /**
   * Mutual TLS on the Raft transport: PEM files of the cluster CA, this host's certificate
   * (naming the host part of its advertised address) and its key. Absent: plain TCP.
   */
  tls?: TlsFiles
  /**
   * Quiesce idle shards (default true). A shard with no work for three election timeouts
   * stops ticking and sending heartbeats on every replica, so idle replicas cost almost
   * nothing; a proposal, a read, a membership change, a leader transfer or any Raft message
   * but a heartbeat wakes it. A quiesced follower starts no election until it is woken: the
   * crash of a quiesced shard's leader is noticed (and a new one elected) once the shard has
   * work again.
   */
  quiesce?: boolean
  /**
   * Where the engine's log records go: raft-rs's own records and the engine's events (leader
   * changes and elections, membership changes, replicas started, stopped, failed or removed,
   * snapshots sent and received, transport errors, peers unreachable, the host's failure).
   * Any object of pino's shape, `logger[level](obj, msg)`, such as a pino logger. `obj` holds
   * `host` (this host's Raft address), `source` (`raft` or `engine`), `shard` and `replica`
   * when the record is about a replica, and the record's fields. Records arrive in batches
   * about every 100 ms; nothing is logged per entry, and when the engine's bounded queue is
   * full records are dropped and counted (`metrics().logRecordsDropped`). Records below
   * `logger.level` (a pino level name; default `info`) are never built. Absent: nothing is
   * logged.
   */
  logger?: HostLogger
}

/** TlsFiles names the PEM files of a host's mutual TLS. */
export interface TlsFiles {
  /** The cluster CA's certificate. */
  ca: string
  /** This host's certificate. */
  cert: string
  /** This host's private key. */
  key: string
}

/** StartOptions says how a replica starts. */
export type StartOptions =
  | { mode: 'bootstrap'; voters: Array<{ replicaId: number; address: string }> }
  | { mode: 'join' }
  | { mode: 'restart' }

/** CallOptions bounds a call in time. */
export interface CallOptions {
  /** Milliseconds before the call fails with ERR_TIMEOUT (default 5,000). */
  timeoutMs?: number
}

/** ProposeOptions bound a proposal and may place it in a client session. */
export interface ProposeOptions extends CallOptions {
  /**
   * The client session and series of the proposal: sent again with the same series, it
   * applies once and answers the first result (see `registerSession`).
   */
  session?: SessionRef
}

/** Membership lists a shard's members. */
export interface Membership {
  /** Voting replica ids. */
  voters: number[]
  /** Non-voting replica ids. */
  nonVoters: number[]
}

/** ReplicaStatus is the local view of a shard (the binding's, checked against it). */
export interface ReplicaStatus {
  /** Shard id. */
  shardId: number
  /** Local replica id. */
  replicaId: number
  /** Leader replica id, 0 if unknown. */
  leaderId: number
  /** Current term. */
  term: number
  /** Commit index known locally. */
  commit: number
  /** Index applied locally. */
  applied: number
  /** Current members. */
  membership: Membership
  /** Whether the local replica has quiesced (see {@link HostOptions.quiesce}). */
  quiesced: boolean
}

/** HostEvent is what a host emits as `'event'` (and under the event's own type). */
export type HostEvent =
  | { type: 'leaderChanged'; shardId: number; replicaId: number; leaderId: number; term: number }
  | {
      type: 'membershipChanged'
      shardId: number
      replicaId: number
      voters: number[]
      nonVoters: number[]
    }
  | {
      type: 'replicaFailed'
      shardId: number
      replicaId: number
      /** The start of the replica that failed (see {@link Host.startReplica}). */
      incarnation: number
      error: string
    }
  | { type: 'replicaRemoved'; shardId: number; replicaId: number; incarnation: number }
  | { type: 'hostFailed'; error: string }

/** DEFAULT_TIMEOUT is a call's time limit in milliseconds when its options give none. */
const DEFAULT_TIMEOUT = 5_000

/** checkId checks a shard, replica or client id: a non-negative safe integer. */
export function checkId(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalid(`${what} must be a non-negative integer, got ${String(v)}`)
  }
  return v
}

/** checkSession checks a proposal's session; client id and series start at 1. */
export function checkSession(s: unknown): SessionRef {
  const r = s as Partial<SessionRef> | null
  if (typeof r !== 'object' || r === null) throw invalid('session must be an object')
  const clientId = checkId(r.clientId, 'session.clientId')
  const series = checkId(r.series, 'session.series')
  const respondedTo = checkId(r.respondedTo ?? 0, 'session.respondedTo')
  if (clientId === 0 || series === 0) throw invalid('session clientId and series start at 1')
  return { clientId, series, respondedTo }
}

/** timeoutOf is a call's time limit: its `timeoutMs`, checked, or the default. */
export function timeoutOf(o: CallOptions | undefined): number {
  const t = o?.timeoutMs ?? DEFAULT_TIMEOUT
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) {
    throw invalid(`timeoutMs must be a positive number, got ${String(t)}`)
  }
  return t
}

/** call runs a native call, its error made a ZongziError with the engine's code. */
export async function call<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p()
  } catch (e) {
    throw fromNative(e)
  }
}

/** callSync runs a synchronous native call, its error made a ZongziError. */
export function callSync<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw fromNative(e)
  }
}

/** checkHostOptions checks what a host cannot open without: an object, its cluster and dir. */
export function checkHostOptions(options: HostOptions): void {
  if (options === null || typeof options !== 'object') throw invalid('options are required')
  checkId(options.clusterId, 'clusterId')
  if (typeof options.dataDir !== 'string' || options.dataDir === '')
    throw invalid('dataDir is required')
}

/** checkStart checks how a replica is to start, and the factory of its state machine. */
export function checkStart(start: StartOptions, factory: unknown): void {
  if (typeof factory !== 'function') throw invalid('factory must be a function')
  if (!start || !['bootstrap', 'join', 'restart'].includes(start.mode))
    throw invalid("start.mode must be 'bootstrap', 'join' or 'restart'")
}

/** checkAddress checks a replica id and the address it is to be reached at. */
export function checkAddress(replicaId: number, address: unknown): void {
  checkId(replicaId, 'replicaId')
  if (typeof address !== 'string' || address === '') throw invalid('address is required')
}

/** checkAddresses checks a list of addresses. */
export function checkAddresses(addresses: unknown): void {
  if (!Array.isArray(addresses) || addresses.some((a) => typeof a !== 'string'))
    throw invalid('addresses must be strings')
}
