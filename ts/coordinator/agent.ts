// Agent: what a user runs on each host. It owns the engine host, the registry replica,
// the message bus and the controllers that turn the registry into running replicas; its
// state and start-up wiring are in AgentCore (agent-core.ts), its parts' contexts in
// agent-contexts.ts.
import { EventEmitter } from 'node:events'

import { invalid, ZongziError } from '../binding/errors'
import type { ReplicaStatus } from '../binding/host'
import type { StateMachineFactory } from '../binding/state-machine'
import type { AgentEvents } from './agent-events'
import { createJoinToken, leaveCluster, rotateJoinKey } from './access'
import { clientByNameOf, clientOf } from './agent-clients'
import { drainContext, readinessContext, shardsContext } from './agent-contexts'
import { AgentCore } from './agent-core'
import {
  type AgentCallOptions,
  type AgentOptions,
  type AgentStatus,
  callOptions,
  checkAgentArgs,
  checkShardId,
  type JoinTokenOptions,
  type ShardOptions,
  type ShardUpdate,
} from './agent-options'
import type { ShardClientOptions } from './client/client-context'
import type { ShardClient } from './client/shard-client'
import type { TypedClient } from './client/typed-client'
import {
  type DrainOptions,
  drainHost,
  markDeparted,
  transferLeaderTo,
  undrainHost,
} from './control/drain'
import type { Logger } from './control/logger'
import { type DevOptions, devAgent, devCluster } from './dev'
import { type WaitForShardOptions, waitForShard } from './control/shard-readiness'
import type { ShardRecord } from './registry/records'
import type { RegistryState } from './registry/state'
import type { ShardSpec } from './shard-specs'
import type { ChangesOptions, ClusterStatus, Registry, RegistryChange } from '../ops/agent-ops'
import {
  type AnyShardType,
  registerType,
  type ShardType,
  type TypedClientOptions,
  type TypedShard,
} from './shard-type'
import { createShard, createShards, deleteShard, updateShard } from './shards'

/**
 * Agent runs one host of a Zongzi cluster. Construct it with the cluster name and the bus
 * addresses of the initial peers (three or more), register state machine types, then
 * `start()`. Peers initialise the cluster together; any other host joins it. `Agent.dev()`
 * is a cluster of one host in this process, `Agent.devCluster(n)` n hosts for tests.
 *
 * Events (typed by AgentEvents): `'status'` (AgentStatus), `'event'` (engine events),
 * `'change'` (RegistryState), `'circuit'` (`{ address, state }`: this agent's clients stopped
 * or resumed calling a host), `'hostDown'` and `'hostUp'` (`{ hostId }`: the registry marked a
 * host missing, or active again; see `liveness` in the options), `'membership'` (a
 * MembershipChange: a replica was added, promoted, demoted or removed on record),
 * `'rebalance'` (a Move, on the registry leader: a replica moved from one host to another to
 * even out the spread; see `rebalance` in the options).
 */
export class Agent extends EventEmitter<AgentEvents> {
  readonly clusterName: string
  readonly timeoutMs: number
  readonly log: Logger
  readonly #core: AgentCore

  /** An agent of cluster `clusterName` with the bus addresses of its initial peers. */
  constructor(clusterName: string, peers: string[], options: AgentOptions) {
    super()
    checkAgentArgs(clusterName, peers, options)
    this.clusterName = clusterName
    this.#core = new AgentCore(this, clusterName, [...peers].sort(), options)
    this.timeoutMs = this.#core.timeoutMs
    this.log = this.#core.log
  }

  /**
   * dev returns an agent of development mode: a cluster of one host, alone in this process,
   * on 127.0.0.1 with free ports, its data in a temporary directory removed once it stops
   * (unless `dataDir` is given). Register types and `start()` it as any agent; every call
   * works as on a cluster of several hosts.
   */
  static dev(o: DevOptions = {}): Agent {
    return devAgent(o, (...args) => new Agent(...args))
  }

  /**
   * devCluster returns `n` agents (default 3) of one cluster in this process, for
   * integration tests: peers on 127.0.0.1 with free ports, each with its data in a temporary
   * directory removed once it stops (unless `dataDir` is given, and then it is shared: each
   * agent uses a directory of its own in it). Register types on each and start them together.
   */
  static devCluster(n = 3, o: DevOptions = {}): Promise<Agent[]> {
    return devCluster(n, o, (...args) => new Agent(...args))
  }

  /** dataDir is this host's data directory (a temporary one in development mode). */
  get dataDir(): string {
    return this.#core.options.dataDir
  }

  /** peers are the bus addresses of the cluster's initial peers, sorted. */
  get peers(): readonly string[] {
    return this.#core.peers
  }

  /**
   * register makes a state machine type available on this host; call before start(). A
   * ShardType (see `shardType`) carries its name, its codec and its state machine's types; a
   * name and a factory register a state machine in bytes.
   */
  register<C, R, Q, A>(type: ShardType<C, R, Q, A>): this
  register(uri: string, factory: StateMachineFactory): this
  register(type: string | AnyShardType, bytes?: StateMachineFactory): this {
    if (this.#core.status !== 'new')
      throw new ZongziError('ERR_INVALID_ARGUMENT', 'register state machine types before start()')
    registerType(this.#core, type, bytes)
    return this
  }

  /** status is where the agent is in its life; `'status'` events announce each change. */
  get status(): AgentStatus {
    return this.#core.status
  }
  /** failure is why the agent failed (an ERR_HOST_FAILED error), once its status is 'failed'. */
  get failure(): ZongziError | undefined {
    return this.#core.failure
  }
  /** hostId is this host's stable id (kept in the data directory). */
  get hostId(): string {
    return this.#core.hostId
  }
  /** metrics is the prom-client registry of this agent's series (see docs/operations.md). */
  get metrics(): Registry {
    return this.#core.ops.metrics.registry
  }
  /** apiAddress is the bound bus address. */
  get apiAddress(): string {
    return this.#core.apiAddress
  }
  /** httpAddress is the bound address of the status page and `/metrics` (empty: none). */
  get httpAddress(): string {
    return this.#core.ops.httpAddress
  }
  /** raftAddress is this host's Raft transport address (empty before start). */
  get raftAddress(): string {
    return this.#core.parts?.host.raftAddress ?? ''
  }
  /** runs tells whether this host runs an active replica of the shard (never once failed). */
  runs(shardId: number): boolean {
    return this.#core.runs(shardId)
  }
  /** replicaStatus is the engine's local view of this host's replica of a shard. */
  replicaStatus(shardId: number): Promise<ReplicaStatus> {
    return this.#core.started().host.status(shardId)
  }

  /**
   * transferLeader asks the shard's leader to hand leadership to the replica on host
   * `hostId`; this host must run a replica of the shard. It resolves once asked, not once
   * moved (watch `replicaStatus`).
   */
  transferLeader(shardId: number, hostId: string): Promise<void> {
    checkShardId(shardId)
    return transferLeaderTo(this.#core.registry.state, this.#core.started().host, shardId, hostId)
  }

  /**
   * cutLinks drops this host's outgoing Raft messages to the given Raft addresses (fault
   * injection for tests, see Host.cutLinks); an empty list mends them.
   */
  cutLinks(raftAddresses: string[]): void {
    this.#core.started().host.cutLinks(raftAddresses)
  }
  /** storedReplicas lists the replicas with data on this host's disk. */
  storedReplicas(): Array<{ shardId: number; replicaId: number }> {
    return this.#core.started().host.storedReplicas()
  }

  /** start joins or initialises the cluster; resolves when this host is registered and ready. */
  start(): Promise<void> {
    return this.#core.start()
  }

  /**
   * createJoinToken makes a token that lets one new host join the cluster (its
   * `options.joinToken`) within `ttlMs`. It is signed with the cluster's join key; the
   * registry refuses it once expired, or once it admitted another host.
   */
  createJoinToken(o: JoinTokenOptions & AgentCallOptions = {}): Promise<string> {
    return createJoinToken(this.#core, o)
  }

  /**
   * reloadTls reads this host's TLS files again (a renewed certificate, a new CA bundle) for
   * both channels: connections made from now on use them. The registry first records the new
   * certificate next to the one in use, so that other hosts take either while this host
   * switches, and then the new one alone, which the bus asks of this host's calls from then on.
   */
  async reloadTls(): Promise<void> {
    this.#core.checkReady()
    await this.#core.reloadTls()
  }

  /**
   * rotateJoinKey replaces the cluster's join key: tokens made before it admit nobody from
   * then on (a host that already joined stays). Make new tokens with createJoinToken.
   */
  rotateJoinKey(o?: AgentCallOptions): Promise<void> {
    return rotateJoinKey(this.#core, o)
  }

  /**
   * changes yields the registry's changes after `since` (default: now), then each new one
   * this host applies, without gap or repeat; see ChangesOptions and RegistryChange.
   */
  changes(o?: ChangesOptions): AsyncIterable<RegistryChange> {
    return this.#core.ops.changes(o)
  }

  /** clusterStatus is the whole cluster as this host sees it (what `/status.json` serves). */
  clusterStatus(): Promise<ClusterStatus> {
    return this.#core.ops.status()
  }

  /**
   * state runs `fn` on a linearizable snapshot of the registry (within `timeoutMs`, default
   * the agent's timeout; a number is taken as `timeoutMs`).
   */
  state<T>(fn: (s: RegistryState) => T, o?: AgentCallOptions | number): Promise<T> {
    const { timeoutMs = this.timeoutMs, signal } = callOptions(o)
    return this.#core.started().registry.read(fn, timeoutMs, signal)
  }

  /** stateLocal runs `fn` on this host's current snapshot of the registry (no round trip). */
  stateLocal<T>(fn: (s: RegistryState) => T): T {
    return fn(this.#core.registry.state)
  }

  /**
   * createShard creates a shard of a registered type, placed by `placement` (default
   * DEFAULT_PLACEMENT: three voters, or every host that runs the type while there are fewer).
   * It is idempotent by name: a shard of that name is returned as it is, unless the `tags` or
   * `placement` given differ from its own (ERR_SHARD_EXISTS). Of a ShardType, it resolves with
   * a TypedShard, for `client(shard)`.
   */
  createShard<C, R, Q, A>(
    type: ShardType<C, R, Q, A>,
    o?: ShardOptions,
  ): Promise<TypedShard<C, R, Q, A>>
  createShard(type: string, o?: ShardOptions): Promise<ShardRecord>
  createShard(type: string | AnyShardType, o: ShardOptions = {}): Promise<ShardRecord> {
    return createShard(shardsContext(this.#core), type, o)
  }

  /**
   * createShards creates many shards in one registry command, all or none, and resolves with
   * their records in the order asked; a bad shard rejects the call with ERR_INVALID_ARGUMENT
   * naming it by its index (see docs/agent.md for the rules and limits).
   */
  createShards(shards: ShardSpec[], o: AgentCallOptions = {}): Promise<ShardRecord[]> {
    return createShards(shardsContext(this.#core), shards, o)
  }

  /** updateShard replaces a shard's tags and/or placement. */
  updateShard(id: number, o: ShardUpdate): Promise<ShardRecord> {
    return updateShard(shardsContext(this.#core), id, o)
  }

  /** deleteShard stops every replica of the shard, removes them and their data. */
  deleteShard(id: number, o: AgentCallOptions = {}): Promise<void> {
    return deleteShard(shardsContext(this.#core), id, callOptions(o))
  }

  /** findShard returns a shard by name (linearizable), or undefined. */
  findShard(name: string, o?: AgentCallOptions): Promise<ShardRecord | undefined> {
    return this.state((s) => s.shardByName(name), o)
  }

  /**
   * replica resolves once this host runs an active replica of the shard (within `timeoutMs`,
   * default four times the agent's timeout; a number is taken as `timeoutMs`).
   */
  async replica(shardId: number, o?: AgentCallOptions | number): Promise<void> {
    await this.waitForShard(shardId, { ...callOptions(o), replicas: 'local' })
  }

  /**
   * waitForShard resolves with the shard's record once enough of its replicas are active:
   * `'all'` (the default) — every replica the registry lists for it; `'quorum'` — a majority
   * of its voters; `'local'` — this host runs an active replica of it. It rejects with
   * ERR_SHARD_NOT_FOUND when the shard does not exist (or is deleted meanwhile), ERR_TIMEOUT
   * after `timeoutMs` (default four times the agent's timeout), ERR_ABORTED when `signal`
   * aborts and ERR_CLOSED when the agent stops.
   */
  waitForShard(id: number, o: WaitForShardOptions = {}): Promise<ShardRecord> {
    checkShardId(id)
    return waitForShard(readinessContext(this.#core), id, o)
  }

  /**
   * client returns a ShardClient of a shard id with these options for the caller: a share of
   * the one the agent keeps per shard and options, so that calling it again is cheap and the
   * writes of every share go in one client session (a new client would register a session of
   * its own through Raft). A share's `close()` ends that share only; the session is
   * unregistered once every share has closed, and the next call then starts a new one.
   */
  client<C, R, Q, A>(shard: TypedShard<C, R, Q, A>, o?: ShardClientOptions): TypedClient<C, R, Q, A>
  client<C, R, Q, A>(shardId: number, o: TypedClientOptions<C, R, Q, A>): TypedClient<C, R, Q, A>
  client(shardId: number, o?: ShardClientOptions): ShardClient
  client(
    shard: number | ShardRecord,
    o: ShardClientOptions & { type?: AnyShardType } = {},
  ): ShardClient | TypedClient<unknown, unknown, unknown, unknown> {
    return clientOf(this.#core, shard, o)
  }

  /**
   * clientByName returns a ShardClient of a shard name for the caller (see `client`); the name is
   * looked up linearizably on every call.
   */
  clientByName<C, R, Q, A>(
    name: string,
    o: TypedClientOptions<C, R, Q, A>,
  ): Promise<TypedClient<C, R, Q, A>>
  clientByName(name: string, o?: ShardClientOptions): Promise<ShardClient>
  clientByName(
    name: string,
    o?: ShardClientOptions & { type?: AnyShardType },
  ): Promise<ShardClient | TypedClient<unknown, unknown, unknown, unknown>> {
    return clientByNameOf(this.#core, name, o)
  }

  /**
   * drain moves this host's replicas to other hosts and hands its leaderships over: the host
   * is marked `draining` (it gets no new replicas, also after a restart), the registry leader
   * adds a replica elsewhere for each of its replicas and then removes this host's, and a
   * vote it has in the registry goes to another host. It resolves once only a non-voting
   * replica of the registry is left here; ERR_TIMEOUT (after `timeoutMs`, default two
   * minutes) says what is left, e.g. a shard whose placement finds no other host.
   */
  async drain(o: DrainOptions = {}): Promise<void> {
    this.#core.checkReady()
    await drainHost(drainContext(this.#core, { signal: o?.signal }), o)
  }

  /**
   * undrain ends a drain of this host (one that timed out, say): it is `active` again and may
   * get replicas; those already moved stay where they are.
   */
  async undrain(o?: AgentCallOptions): Promise<void> {
    this.#core.checkReady()
    await undrainHost(drainContext(this.#core, callOptions(o)))
  }

  /**
   * removeHost removes a host that is down for good: it is marked `gone`, its replicas are
   * replaced on other hosts (without waiting for `replaceAfterMs`), its vote in the registry
   * goes to another host, and it may never come back under its id. It resolves once that is
   * on record; the replicas move in the background (see `waitForShard`). A host that still
   * answers is refused: drain it, or stop it first.
   */
  async removeHost(hostId: string, o?: AgentCallOptions): Promise<void> {
    await this.#departure(hostId, 'gone', o)
  }

  /**
   * replaceHost replaces the replicas of a missing host on other hosts now, instead of after
   * `replaceAfterMs` (also when that is 0) — its vote in the registry among them. The host
   * keeps its id: if it comes back, it deletes the data of the replicas that were replaced.
   * A host that still answers is refused.
   */
  async replaceHost(hostId: string, o?: AgentCallOptions): Promise<void> {
    await this.#departure(hostId, 'missing', o)
  }

  async #departure(hostId: string, status: 'missing' | 'gone', o?: AgentCallOptions) {
    this.#core.checkReady()
    await markDeparted(drainContext(this.#core, callOptions(o)), hostId, status)
  }

  /**
   * stop leaves the cluster's replicas on this host stopped (data kept) and closes everything.
   * With `drain`, it first drains the host (see `drain`; DrainOptions may be given) and then
   * leaves the cluster for good: the host is marked `gone`, and a later start needs an empty
   * data directory (it then joins as a new host); if the drain fails, stop rejects with its
   * error and the agent keeps running, still draining. Idempotent.
   */
  async stop(o: { drain?: boolean | DrainOptions } = {}): Promise<void> {
    if (o === null || typeof o !== 'object') throw invalid('stop options must be an object')
    if (o.drain && !this.#core.stopped) await leaveCluster(this.#core, o.drain)
    this.#core.stopped ??= this.#core.shutdown()
    return this.#core.stopped
  }
}
