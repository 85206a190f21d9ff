// The Agent's options and the checks of what a caller hands it.
import { invalid } from '../binding/errors'
import type { HostOptions, TlsFiles } from '../binding/host'
import type { Registry } from 'prom-client'

import type { HostHealthOptions } from './client/health'
import type { Logger } from './control/logger'
import type { ReplacementOptions } from './control/departures'
import type { LivenessOptions } from './control/liveness'
import { PlacementError, validatePlacement } from './control/placement'
import type { Placement } from './registry/records'
import type { ShardController } from './control/shard-controller'

/**
 * AgentOptions configure an agent. Only `dataDir` is required. The ReplacementOptions
 * (`replaceAfterMs`, `changesPerSecond`, `registryVoters`, `balanceLeaders`, `rebalance`,
 * `rebalanceThreshold`) are used by the agent while it leads the registry.
 */
export interface AgentOptions extends ReplacementOptions {
  /** Directory for this host's data (created if missing). */
  dataDir: string
  /**
   * Bus (gRPC) listen address. A peer must use the address the peer list names.
   * Default `127.0.0.1:0`.
   */
  apiAddress?: string
  /**
   * Raft transport listen address. Default: the address this agent listened on before (kept
   * in `dataDir`), or `127.0.0.1:0` on its first start; the port picked then is kept, so a
   * restart listens where its peers expect it.
   */
  raftAddress?: string
  /**
   * HTTP listen address of `/metrics`, `/healthz`, `/readyz`, `/status.json` and the status
   * page (see docs/operations.md); off by default. With `tls`, HTTPS with the bus's rules.
   */
  httpAddress?: string
  /** Tags of this host, used by placement (`zone`, `region`, …). */
  tags?: Record<string, string>
  /**
   * Structured logger in pino's shape (`info(fields, msg)`, `child(bindings)`): a pino logger
   * as it is. Silent by default (see docs/operations.md). Its records carry the host id.
   */
  logger?: Logger
  /**
   * The prom-client registry to put this agent's series in (see docs/operations.md); by
   * default the agent makes its own (`agent.metrics`). One registry per agent: two agents in
   * one registry would register the same names twice.
   */
  metrics?: Registry
  /** Default timeout of calls in milliseconds (default 5,000). */
  timeoutMs?: number
  /** How often controllers reconcile without a registry change, in ms (default 500). */
  reconcileMs?: number
  /** Engine options (tick length, snapshots, …). */
  host?: Omit<Partial<HostOptions>, 'clusterId' | 'dataDir' | 'raftAddress'>
  /** Replaces the placement logic of the registry leader. */
  shardController?: ShardController
  /**
   * Mutual TLS on the bus and on the Raft transport (unless `host.tls` names other files):
   * PEM files of the cluster CA, this host's certificate (naming the host part of its bus
   * and Raft addresses) and its key.
   */
  tls?: TlsFiles
  /**
   * Allows listening on an address other than loopback without TLS, on a network you trust
   * (the agent then warns at every start). Without it, an address off loopback needs `tls`.
   */
  insecure?: boolean
  /**
   * How this agent's clients judge other hosts: when a host's circuit opens after failures,
   * for how long, and the bounds of the hedging delay of reads (see HostHealthOptions).
   */
  health?: HostHealthOptions
  /**
   * How often the bus pings a connection that carries a call, and how long it waits for the
   * answer, in ms (default 10,000): calls to a host cut off without a word (a watch, say)
   * fail within about twice this instead of hanging.
   */
  keepaliveMs?: number
  /**
   * This agent forms a cluster of its own: `peers` is empty (or names only this agent's
   * `apiAddress`). Its data survives nothing that happens to its host; other hosts may join
   * it with join tokens, and the registry then gets voters on them. `Agent.dev()` sets it.
   */
  singleHost?: boolean
  /**
   * The join token of a host that is not one of the initial peers: made by a member with
   * `agent.createJoinToken()`. Needed for its first start only (a restart finds its data).
   */
  joinToken?: string
  /**
   * When another host counts as suspect, then down, after its last answer to the registry
   * leader's heartbeats (defaults 2 s and 10 s). A down host is marked `missing` in the
   * registry (and `hostDown` announced); when it answers again, `active` (`hostUp`). Clients
   * stop sending it calls meanwhile; its replicas move once it has been missing
   * `replaceAfterMs`.
   */
  liveness?: LivenessOptions
}

/** JoinTokenOptions bound what a join token admits. */
export interface JoinTokenOptions {
  /** Milliseconds the token admits a host for (default one hour). */
  ttlMs?: number
  /** Tags the joining host must have (all of them). */
  tags?: Record<string, string>
}

/** isLoopback tells whether a `host:port` address listens on loopback only. */
export function isLoopback(address: string): boolean {
  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '')
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/**
 * AgentStatus is where an agent is in its life. `'failed'`: its engine host stopped after a
 * failure (fail-stop; `agent.failure` says why); it serves nothing more until it is stopped
 * and started again as a new Agent.
 */
export type AgentStatus = 'new' | 'starting' | 'ready' | 'failed' | 'stopping' | 'stopped'

/** REGISTRY_TYPE is the state machine type of shard 0, which no user type may take. */
export const REGISTRY_TYPE = 'zongzi:registry'

/** AgentCallOptions bound one call of an Agent. */
export interface AgentCallOptions {
  /** Milliseconds for the whole call, retries included (each call says its default). */
  timeoutMs?: number
  /** Cancels the call (ERR_ABORTED; a change it proposed may still apply). */
  signal?: AbortSignal
}

/**
 * DEFAULT_PLACEMENT is the placement of a shard created without one: three voters, or as
 * many as there are hosts that run its type while there are fewer (at least one), more as
 * such hosts appear.
 */
export const DEFAULT_PLACEMENT: Placement = Object.freeze({
  members: Object.freeze({ count: 3, min: 1 }),
})

/** ShardOptions describe a shard to create. */
export interface ShardOptions extends AgentCallOptions {
  /**
   * Unique name; creating a shard whose name exists returns the existing shard, unless the
   * `tags` or `placement` given differ from its own (ERR_SHARD_EXISTS: change them with
   * `updateShard`).
   */
  name?: string
  /** The shard's tags. */
  tags?: Record<string, string>
  /** Where its replicas go; default DEFAULT_PLACEMENT (three voters, fewer on fewer hosts). */
  placement?: Placement
}

/** ShardUpdate is what `updateShard` changes: the shard's tags and/or placement. */
export interface ShardUpdate extends AgentCallOptions {
  /** The shard's new tags (all of them). */
  tags?: Record<string, string>
  /** The shard's new placement. */
  placement?: Placement
}

/**
 * callOptions checks a call's options and returns them; a number (the older form) is a
 * timeout in milliseconds.
 */
export function callOptions(o: AgentCallOptions | number | undefined): AgentCallOptions {
  const c = typeof o === 'number' ? { timeoutMs: o } : (o ?? {})
  if (typeof c !== 'object') throw invalid('options must be an object')
  if (c.timeoutMs !== undefined && !(typeof c.timeoutMs === 'number' && c.timeoutMs > 0))
    throw invalid('timeoutMs must be a positive number')
  if (c.signal !== undefined && !(c.signal instanceof AbortSignal))
    throw invalid('signal must be an AbortSignal')
  return c
}

/**
 * checkAgentArgs checks what an Agent is constructed with: a cluster name, three or more
 * distinct peer addresses (none or one with `singleHost`), a data directory, tags, and TLS
 * for any address off loopback (unless `insecure`).
 */
export function checkAgentArgs(clusterName: unknown, peers: unknown, options: AgentOptions): void {
  if (typeof clusterName !== 'string' || clusterName === '')
    throw invalid('cluster name is required')
  const single = options?.singleHost === true
  if (
    !Array.isArray(peers) ||
    (single ? peers.length > 1 : peers.length < 3) ||
    peers.some((p) => typeof p !== 'string' || !p.includes(':'))
  ) {
    throw invalid(
      single
        ? 'peers of a single host must be empty, or name only its own bus address'
        : 'peers must list the bus addresses (host:port) of at least three initial peers ' +
            '(or set singleHost for a cluster of one)',
    )
  }
  if (new Set(peers).size !== peers.length) throw invalid('peers must not repeat')
  if (!options || typeof options.dataDir !== 'string' || options.dataDir === '')
    throw invalid('options.dataDir is required')
  if (options.tags !== undefined && !isTags(options.tags))
    throw invalid('tags must map non-empty names to strings')
  const k = options.keepaliveMs
  if (k !== undefined && !(Number.isSafeInteger(k) && k > 0))
    throw invalid('keepaliveMs must be a positive whole number of milliseconds')
  const h = options.health
  if (h !== undefined && (h === null || typeof h !== 'object' || !positives(h)))
    throw invalid('health must be an object of positive numbers (see HostHealthOptions)')
  const open = [
    ['bus', options.apiAddress, options.tls],
    ['Raft', options.raftAddress, options.host?.tls ?? options.tls],
    ['HTTP', options.httpAddress, options.tls],
  ] as const
  for (const [what, address, tls] of open) {
    if (address === undefined || isLoopback(address) || tls || options.insecure) continue
    const ways = 'use a loopback address, set tls, or set insecure: true on a trusted network'
    throw invalid(`refusing to listen on ${address} (${what}) without TLS; ${ways}`)
  }
}

/** positives tells whether every field of an object is a positive number. */
function positives(o: object): boolean {
  return Object.values(o).every((v) => v === undefined || (typeof v === 'number' && v > 0))
}

export function isTags(v: unknown): v is Record<string, string> {
  return (
    v !== null &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    Object.entries(v).every(([k, x]) => k !== '' && typeof x === 'string')
  )
}

export function checkShardId(id: unknown): asserts id is number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
    throw invalid(`shard id must be a non-negative integer, got ${String(id)}`)
}

export function checkPlacement(p: unknown): asserts p is Placement {
  try {
    validatePlacement(p)
  } catch (e) {
    if (e instanceof PlacementError) throw invalid(`placement: ${e.message}`)
    throw e
  }
}
