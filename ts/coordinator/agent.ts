// Agent: what a user runs on each host. It owns the engine host, the registry replica,
// the message bus and the controllers that turn the registry into running replicas.
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { invalid, ZongziError } from '../binding/errors'
import { Host, type HostEvent } from '../binding/host'
import type { StateMachineFactory } from '../binding/state-machine'
import { BusClient } from '../bus/client'
import { type BusCredentials, busCredentials } from '../bus/credentials'
import { BusServer } from '../bus/server'
import { bootstrap, join as joinCluster, REJOIN, type BootstrapContext } from './bootstrap'
import {
  type AgentOptions,
  type AgentStatus,
  checkAgentArgs,
  checkPlacement,
  checkShardId,
  isLoopback,
  isTags,
  type JoinTokenOptions,
  type ShardOptions,
} from './agent-options'
import { type ClientContext, ShardClient, type ShardClientOptions } from './client/shard-client'
import { busHandlers, type HandlerContext } from './handlers'
import { HostHealth } from './client/health'
import { newJoinKey, newTokenId, signJoinToken } from './registry/join-tokens'
import { checkReplacement, type ReplacementOptions } from './control/departures'
import {
  type DrainContext,
  drainHost,
  type DrainOptions,
  LeaderBalance,
  markDeparted,
  undrainHost,
} from './control/drain'
import { checkLiveness, Liveness } from './control/liveness'
import { HostController, type HostControllerContext } from './control/host-controller'
import { type Logger, silent } from './control/logger'
import {
  type Accepted,
  type Command,
  createdId,
  type Placement,
  type ShardRecord,
} from './registry/records'
import { Registry } from './registry/registry'
import { RegistryAccess } from './registry-access'
import { hostChanges, membershipChanges } from './registry/events'
import { RegistryLeader, type RegistryLeaderContext } from './control/registry-leader'
import { RegistryState } from './registry/state'
import { retry } from './client/retry'
import { checkWaitOptions, readyShard, type WaitForShardOptions } from './control/shard-readiness'
import { DefaultShardController, type ShardController } from './control/shard-controller'
import type { ReplicaStatus } from '../binding/host'

export type { WaitForShardOptions } from './control/shard-readiness'
export type { LivenessOptions } from './control/liveness'
export type { ReplacementOptions } from './control/departures'
export type { DrainOptions } from './control/drain'
export type { HostChange, MembershipChange } from './registry/events'
export type { AgentOptions, AgentStatus, JoinTokenOptions, ShardOptions } from './agent-options'

const REGISTRY_TYPE = 'zongzi:registry'
/** A file in the data directory that says this host has held a replica of shard 0. */
const REGISTRY_MARKER = 'registry-member'

/** clusterIdOf derives the engine's numeric cluster id from the cluster name (FNV-1a, 53 bits). */
function clusterIdOf(name: string): number {
  let h = 0xcbf29ce484222325n
  for (const b of Buffer.from(name)) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n)
  return Number(h & 0x1fffffffffffffn)
}

/** Engine is what the agent keeps once started: the host, the bus and the registry access. */
interface Engine {
  host: Host
  bus: BusClient
  server: BusServer
  registry: RegistryAccess
  hostController: HostController
  leader: RegistryLeader
}

/**
 * Agent runs one host of a Zongzi cluster. Construct it with the cluster name and the bus
 * addresses of the initial peers (three or more), register state machine types, then
 * `start()`. Peers initialise the cluster together; any other host joins it.
 *
 * Events: `'status'` (AgentStatus), `'event'` (engine events), `'change'` (RegistryState),
 * `'circuit'` (`{ address, state }`: this agent's clients stopped or resumed calling a host,
 * a CircuitState), `'hostDown'` and `'hostUp'` (`{ hostId }`: the registry marked a host
 * missing, or active again; see `liveness` in the options), `'membership'` (a
 * MembershipChange: a replica was added, promoted, demoted or removed on record).
 */
export class Agent extends EventEmitter {
  readonly clusterName: string
  readonly peers: readonly string[]
  readonly timeoutMs: number
  readonly log: Logger
  readonly #options: AgentOptions
  readonly #types = new Map<string, StateMachineFactory>()
  #status: AgentStatus = 'new'
  #failure: ZongziError | undefined
  #hostId = ''
  #engine: Engine | undefined
  #apiAddress = ''
  #credentials: BusCredentials | undefined
  /** The agent's clients, by shard and options (see `client`). */
  readonly #clients = new Map<string, ShardClient>()
  readonly #liveness: Liveness
  readonly #replacement: Required<ReplacementOptions>
  readonly #balance = new LeaderBalance(5_000)
  /** The registry state the last `'change'` showed, to announce hosts going down or up. */
  #seen = RegistryState.empty()
  readonly #registry = new Registry()
  readonly #shardController: ShardController
  #timer: NodeJS.Timeout | undefined
  /** This start is a peer's that lost its data and joined as a new host. */
  #rejoined = false
  #started: Promise<void> | undefined
  #stopped: Promise<void> | undefined
  readonly #abort = new AbortController()
  /** What this agent's clients have seen of other hosts: latencies and circuits. */
  readonly #health = new HostHealth({}, (address, state) => {
    this.log.info('circuit', { address, state })
    this.emit('circuit', { address, state })
  })

  constructor(clusterName: string, peers: string[], options: AgentOptions) {
    super()
    checkAgentArgs(clusterName, peers, options)
    this.clusterName = clusterName
    this.peers = [...peers].sort()
    this.#options = options
    this.timeoutMs = options.timeoutMs ?? 5000
    this.log = options.logger ?? silent
    this.#shardController = options.shardController ?? new DefaultShardController(this.log)
    this.#liveness = new Liveness(checkLiveness(options.liveness))
    this.#replacement = checkReplacement(options)
    this.#registry.on('change', (s: RegistryState) => {
      for (const e of hostChanges(this.#seen, s)) {
        this.log.info(e.type, { hostId: e.hostId })
        this.emit(e.type, { hostId: e.hostId })
      }
      // Only worked out for listeners: it walks every replica of the registry.
      if (this.listenerCount('membership') > 0)
        for (const m of membershipChanges(this.#seen, s)) this.emit('membership', m)
      this.#seen = s
      this.#kick()
      try {
        this.emit('change', s)
      } catch (e) {
        this.log.error('a change listener failed', { error: String(e) })
      }
    })
  }

  /** register makes a state machine type available on this host; call before start(). */
  register(uri: string, factory: StateMachineFactory): this {
    if (this.#status !== 'new')
      throw new ZongziError('ERR_INVALID_ARGUMENT', 'register state machine types before start()')
    if (typeof uri !== 'string' || uri === '' || uri === REGISTRY_TYPE)
      throw invalid('a state machine type needs a URI')
    if (typeof factory !== 'function') throw invalid('factory must be a function')
    this.#types.set(uri, factory)
    return this
  }

  /** status is where the agent is in its life; `'status'` events announce each change. */
  get status(): AgentStatus {
    return this.#status
  }
  /** failure is why the agent failed (an ERR_HOST_FAILED error), once its status is 'failed'. */
  get failure(): ZongziError | undefined {
    return this.#failure
  }
  /** hostId is this host's stable id (kept in the data directory). */
  get hostId(): string {
    return this.#hostId
  }
  /** apiAddress is the bound bus address. */
  get apiAddress(): string {
    return this.#apiAddress
  }
  /** raftAddress is this host's Raft transport address (empty before start). */
  get raftAddress(): string {
    return this.#engine?.host.raftAddress ?? ''
  }
  /** runs tells whether this host runs an active replica of the shard (never once failed). */
  runs(shardId: number): boolean {
    if (!this.#engine || this.#failure) return false
    return shardId === 0 || this.#engine.hostController.runs(shardId)
  }
  /** replicaStatus is the engine's local view of this host's replica of a shard. */
  replicaStatus(shardId: number): Promise<ReplicaStatus> {
    return this.#started_().host.status(shardId)
  }
  /**
   * transferLeader asks the shard's leader to hand leadership to the replica on host
   * `hostId`; this host must run a replica of the shard. It resolves once asked, not once
   * moved (watch `replicaStatus`).
   */
  async transferLeader(shardId: number, hostId: string): Promise<void> {
    checkShardId(shardId)
    const target = this.stateLocal((s) =>
      s.replicasOf(shardId).find((r) => r.hostId === hostId && !r.nonVoting),
    )
    if (!target) throw invalid(`host ${hostId} has no voting replica of shard ${shardId}`)
    await this.#started_().host.transferLeader(shardId, target.id)
  }

  /**
   * cutLinks drops this host's outgoing Raft messages to the given Raft addresses (fault
   * injection for tests, see Host.cutLinks); an empty list mends them.
   */
  cutLinks(raftAddresses: string[]): void {
    this.#started_().host.cutLinks(raftAddresses)
  }
  /** storedReplicas lists the replicas with data on this host's disk. */
  storedReplicas(): Array<{ shardId: number; replicaId: number }> {
    return this.#started_().host.storedReplicas()
  }

  #started_(): Engine {
    if (!this.#engine) throw new ZongziError('ERR_NOT_READY', 'agent not started')
    return this.#engine
  }

  #setStatus(s: AgentStatus): void {
    this.#status = s
    this.emit('status', s)
  }

  /** start joins or initialises the cluster; resolves when this host is registered and ready. */
  start(): Promise<void> {
    this.#started ??= this.#start().catch(async (e) => {
      this.log.error('start failed', { error: String(e) })
      await this.#shutdown()
      throw e
    })
    return this.#started
  }

  async #start(): Promise<void> {
    this.#setStatus('starting')
    const o = this.#options
    const plain = [
      o.tls ? undefined : o.apiAddress,
      (o.host?.tls ?? o.tls) ? undefined : o.raftAddress,
    ]
    const exposed = plain.filter((a) => a && !isLoopback(a))
    if (o.insecure && exposed.length > 0) {
      this.log.warn('INSECURE: listening off loopback without TLS on every channel', {
        addresses: exposed,
      })
    }
    mkdirSync(o.dataDir, { recursive: true })
    const idFile = join(o.dataDir, 'host-id')
    if (existsSync(idFile)) this.#hostId = readFileSync(idFile, 'utf8').trim()
    else {
      this.#hostId = randomUUID()
      writeFileSync(idFile, this.#hostId)
    }
    const addressFile = join(o.dataDir, 'raft-address')
    const saved = existsSync(addressFile) ? readFileSync(addressFile, 'utf8').trim() : undefined
    const listen = o.raftAddress ?? saved ?? '127.0.0.1:0'
    const credentials = busCredentials(o.tls)
    this.#credentials = credentials
    const host = Host.open({
      ...o.host,
      tls: o.host?.tls ?? o.tls,
      clusterId: clusterIdOf(this.clusterName),
      dataDir: join(o.dataDir, 'raft'),
      raftAddress: listen,
    })
    // Keep the address bound now (the port the host picked for port 0), so that a restart
    // without a raftAddress listens on it again. An advertised address hides the bound one.
    const bound = o.host?.advertiseAddress ? listen : host.raftAddress
    if (bound !== saved && !bound.endsWith(':0')) {
      writeFileSync(`${addressFile}.tmp`, bound)
      renameSync(`${addressFile}.tmp`, addressFile)
    }
    host.on('event', (e: HostEvent) => this.#onHostEvent(e))
    const stored = host.storedReplicas()
    const zero = stored.find((r) => r.shardId === 0)
    // This data directory held a replica of shard 0 once: without it now, its Raft log is
    // lost, and this host id may not take part again (it may have voted: starting over with
    // an empty log could vote away committed entries). Checked before anything takes the id.
    const marker = join(o.dataDir, REGISTRY_MARKER)
    if (!zero && existsSync(marker)) {
      try {
        this.#lostLog()
      } catch (e) {
        await host.close()
        throw e
      }
    }
    const bus = new BusClient(this.clusterName, {
      credentials: credentials.channel(),
      hostId: () => this.#hostId,
    })
    const registry = new RegistryAccess(
      host,
      this.#registry,
      this.timeoutMs,
      this.#abort.signal,
      this.#hostId,
    )
    const server = new BusServer(
      this.clusterName,
      busHandlers(this.#handlerContext(host, registry)),
    )
    const hostController = new HostController(this.#controllerContext(host, bus, registry))
    const leader = new RegistryLeader(
      this.#leaderContext(host, bus, registry),
      this.#liveness,
      this.#shardController,
      this.#replacement,
    )
    this.#engine = { host, bus, server, registry, hostController, leader }
    this.#apiAddress = await server.listen(o.apiAddress ?? '127.0.0.1:0', credentials.server)

    const boot = this.#bootstrapContext(host, bus, registry)
    if (zero) {
      if (!existsSync(marker)) writeFileSync(marker, '') // a directory of an earlier version
      this.log.info('restarting from disk', { replicas: stored.length })
      await host.startReplica(0, zero.replicaId, { mode: 'restart' }, boot.registryFactory)
    } else if (this.peers.includes(this.#apiAddress) && !this.#rejoined) {
      writeFileSync(marker, '')
      if ((await bootstrap(boot)) === REJOIN) {
        await joinCluster(boot)
        this.#rejoined = true
      }
    } else {
      writeFileSync(marker, '')
      await joinCluster(boot)
    }
    await this.#putHost()
    await this.state((s) => s.hosts.get(this.#hostId))
    this.#checkNotStopping()
    if (this.#failure) throw this.#failure
    this.#timer = setInterval(() => this.#kick(), o.reconcileMs ?? 500)
    this.#timer.unref()
    this.#setStatus('ready')
    this.#kick()
  }

  /**
   * #lostLog handles a data directory that kept its host id but lost its Raft log: with a
   * join token, this host takes a new id and joins as a new host (the registry marks the
   * earlier one at its address gone); without one, it fails.
   */
  #lostLog(): void {
    const o = this.#options
    if (!o.joinToken) {
      const how = 'start it with a join token (options.joinToken) to join as a new host'
      throw new ZongziError(
        'ERR_INVALID_ARGUMENT',
        `host ${this.#hostId} lost its Raft log (${join(o.dataDir, 'raft')}); ${how}`,
      )
    }
    this.log.warn('the Raft log is lost: joining as a new host', { formerId: this.#hostId })
    this.#hostId = randomUUID()
    writeFileSync(join(o.dataDir, 'host-id'), this.#hostId)
    this.#rejoined = true
  }

  /**
   * #putHost writes this host's record: addresses, tags, types and certificate (and the one
   * it is switching to, if `next` is given).
   */
  async #putHost(next?: string): Promise<void> {
    const { host, registry } = this.#started_()
    const certificate = this.#credentials?.certificate()
    await registry.propose({
      op: 'host.put',
      host: {
        id: this.#hostId,
        apiAddress: this.#apiAddress,
        raftAddress: host.raftAddress,
        tags: this.#options.tags ?? {},
        shardTypes: [...this.#types.keys()],
        ...(certificate ? { certificate } : {}),
        ...(next ? { nextCertificate: next } : {}),
      },
      ...(this.#rejoined ? { rejoined: true } : {}),
    })
  }

  /**
   * createJoinToken makes a token that lets one new host join the cluster (its
   * `options.joinToken`) within `ttlMs`. It is signed with the cluster's join key; the
   * registry refuses it once expired, or once it admitted another host.
   */
  async createJoinToken(o: JoinTokenOptions = {}): Promise<string> {
    this.#checkReady()
    const ttlMs = o.ttlMs ?? 3_600_000
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)
      throw invalid('ttlMs must be a positive whole number of milliseconds')
    if (o.tags !== undefined && !isTags(o.tags))
      throw invalid('tags must map non-empty names to strings')
    const key = await this.state((s) => s.access.joinKey)
    if (!key)
      throw new ZongziError('ERR_INVALID_ARGUMENT', 'this cluster was made without a join key')
    const claims = { id: newTokenId(), expires: Date.now() + ttlMs, tags: { ...o.tags } }
    return signJoinToken(key, claims)
  }

  /**
   * reloadTls reads this host's TLS files again (a renewed certificate, a new CA bundle) for
   * both channels: connections made from now on use them. The registry first records the new
   * certificate next to the one in use, so that other hosts take either while this host
   * switches, and then the new one alone, which the bus asks of this host's calls from then on.
   */
  async reloadTls(): Promise<void> {
    this.#checkReady()
    const { host, bus } = this.#started_()
    const raft = this.#options.host?.tls ?? this.#options.tls
    if (!raft) throw invalid('this agent has no TLS files to reload')
    if (this.#options.tls && this.#credentials) {
      const staged = this.#credentials.stage() // read first: files that do not parse change nothing
      if (staged.certificate !== this.#credentials.certificate())
        await this.#putHost(staged.certificate)
      staged.use()
      bus.useCredentials(this.#credentials.channel())
    }
    host.reloadTls()
    if (this.#options.tls) await this.#putHost()
  }

  /**
   * rotateJoinKey replaces the cluster's join key: tokens made before it admit nobody from
   * then on (a host that already joined stays). Make new tokens with createJoinToken.
   */
  async rotateJoinKey(): Promise<void> {
    this.#checkReady()
    await this.#propose({ op: 'access.rotate', joinKey: newJoinKey() })
  }

  /**
   * #fail records that the engine host stopped after a failure: the agent stops reconciling
   * and its status becomes 'failed' (unless it is already stopping).
   */
  #fail(cause: string): void {
    if (this.#failure || this.#status === 'stopping' || this.#status === 'stopped') return
    this.#failure = new ZongziError('ERR_HOST_FAILED', `host failed: ${cause}`)
    this.log.error('host failed', { error: cause })
    if (this.#timer) clearInterval(this.#timer)
    this.#setStatus('failed')
  }

  #checkNotStopping(): void {
    if (this.#abort.signal.aborted) throw new ZongziError('ERR_CLOSED', 'agent stopped')
  }

  /** state runs `fn` on a linearizable snapshot of the registry. */
  state<T>(fn: (s: RegistryState) => T, timeoutMs = this.timeoutMs): Promise<T> {
    return this.#started_().registry.read(fn, timeoutMs)
  }

  #propose(cmd: Command): Promise<Accepted> {
    return this.#started_().registry.propose(cmd)
  }

  /** stateLocal runs `fn` on this host's current snapshot of the registry (no round trip). */
  stateLocal<T>(fn: (s: RegistryState) => T): T {
    return fn(this.#registry.state)
  }

  /** createShard creates a shard of a registered type; idempotent by name. */
  async createShard(type: string, o: ShardOptions = {}): Promise<ShardRecord> {
    this.#checkReady()
    if (typeof type !== 'string' || type === '' || type === REGISTRY_TYPE)
      throw invalid('shard type is required')
    if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length > 256))
      throw invalid('name must be a string of at most 256 characters')
    if (o.tags !== undefined && !isTags(o.tags))
      throw invalid('tags must map non-empty names to strings')
    if (o.placement !== undefined) checkPlacement(o.placement)
    const out = await this.#propose({
      op: 'shard.create',
      name: o.name ?? '',
      type,
      tags: o.tags,
      placement: o.placement,
    })
    return this.#shard(createdId(out))
  }

  /** updateShard replaces a shard's tags and/or placement. */
  async updateShard(
    id: number,
    o: { tags?: Record<string, string>; placement?: Placement },
  ): Promise<ShardRecord> {
    this.#checkReady()
    checkShardId(id)
    if (o.tags !== undefined && !isTags(o.tags))
      throw invalid('tags must map non-empty names to strings')
    if (o.placement !== undefined) checkPlacement(o.placement)
    await this.#known(id)
    await this.#propose({ op: 'shard.update', id, tags: o.tags, placement: o.placement })
    return this.#shard(id)
  }

  /** #shard returns a shard's record, or fails when a concurrent delete removed it. */
  async #shard(id: number): Promise<ShardRecord> {
    const sh = await this.state((s) => s.shards.get(id))
    if (!sh) throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${id} does not exist`)
    return sh
  }

  /** deleteShard stops every replica of the shard, removes them and their data. */
  async deleteShard(id: number): Promise<void> {
    this.#checkReady()
    checkShardId(id)
    await this.#known(id)
    await this.#propose({ op: 'shard.delete', id })
  }

  /** findShard returns a shard by name (linearizable), or undefined. */
  findShard(name: string): Promise<ShardRecord | undefined> {
    return this.state((s) => s.shardByName(name))
  }

  /** replica resolves once this host runs an active replica of the shard. */
  async replica(shardId: number, timeoutMs = this.timeoutMs * 4): Promise<void> {
    await this.waitForShard(shardId, { replicas: 'local', timeoutMs })
  }

  /**
   * waitForShard resolves with the shard's record once enough of its replicas are active:
   * `'all'` (the default) — every replica the registry lists for it; `'quorum'` — a majority
   * of its voters; `'local'` — this host runs an active replica of it. It rejects with
   * ERR_SHARD_NOT_FOUND when the shard does not exist (or is deleted meanwhile), ERR_TIMEOUT
   * after `timeoutMs` (default four times the agent's timeout), ERR_ABORTED when `signal`
   * aborts and ERR_CLOSED when the agent stops.
   */
  async waitForShard(id: number, o: WaitForShardOptions = {}): Promise<ShardRecord> {
    checkShardId(id)
    const { replicas, timeoutMs } = checkWaitOptions(o, this.timeoutMs * 4)
    const signals = o.signal ? [o.signal, this.#abort.signal] : [this.#abort.signal]
    const aborted = () =>
      o.signal?.aborted
        ? new ZongziError('ERR_ABORTED', 'aborted')
        : new ZongziError('ERR_CLOSED', 'agent stopped')
    if (signals.some((x) => x.aborted)) throw aborted()
    if (!(await this.state((s) => s.shards.has(id))))
      throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${id} not found`)
    return retry(
      async () => {
        const sh = readyShard(this.#registry.state, id, replicas, () => this.runs(id))
        if (sh) return sh
        const what = replicas === 'local' ? 'no local replica' : `not ${replicas} replicas`
        throw new ZongziError('ERR_TIMEOUT', `shard ${id}: ${what} active in ${timeoutMs} ms`)
      },
      {
        deadline: Date.now() + timeoutMs,
        signal: AbortSignal.any(signals),
        aborted,
        retryable: (e) => e instanceof ZongziError && e.code === 'ERR_TIMEOUT',
        maxDelayMs: 25,
      },
    )
  }

  /**
   * client returns the agent's ShardClient of a shard id with these options: one per shard
   * and options, kept by the agent, so that calling it again is cheap and its writes share one
   * client session (a new client would register a session of its own through Raft). After
   * its `close()`, the next call makes a new one.
   */
  client(shardId: number, o: ShardClientOptions = {}): ShardClient {
    checkShardId(shardId)
    if (o === null || typeof o !== 'object') throw invalid('client options must be an object')
    const key = `${shardId}/${!!o.writeToLeader}/${o.session !== false}`
    let c = this.#clients.get(key)
    if (!c || c.closed) {
      const options = { writeToLeader: !!o.writeToLeader, session: o.session !== false }
      c = new ShardClient(this.#clientContext(), shardId, options)
      this.#clients.set(key, c)
    }
    return c
  }

  /**
   * clientByName returns the agent's ShardClient of a shard name (see `client`); the name is
   * looked up linearizably on every call.
   */
  async clientByName(name: string, o?: ShardClientOptions): Promise<ShardClient> {
    const sh = await this.findShard(name)
    if (!sh) throw new ZongziError('ERR_SHARD_NOT_FOUND', `no shard named ${JSON.stringify(name)}`)
    return this.client(sh.id, o)
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
    this.#checkReady()
    await drainHost(this.#drainContext(), o)
  }

  /**
   * undrain ends a drain of this host (one that timed out, say): it is `active` again and may
   * get replicas; those already moved stay where they are.
   */
  async undrain(): Promise<void> {
    this.#checkReady()
    await undrainHost(this.#drainContext())
  }

  /**
   * removeHost removes a host that is down for good: it is marked `gone`, its replicas are
   * replaced on other hosts (without waiting for `replaceAfterMs`), its vote in the registry
   * goes to another host, and it may never come back under its id. It resolves once that is
   * on record; the replicas move in the background (see `waitForShard`). A host that still
   * answers is refused: drain it, or stop it first.
   */
  async removeHost(hostId: string): Promise<void> {
    await this.#departure(hostId, 'gone')
  }

  /**
   * replaceHost replaces the replicas of a missing host on other hosts now, instead of after
   * `replaceAfterMs` (also when that is 0) — its vote in the registry among them. The host
   * keeps its id: if it comes back, it deletes the data of the replicas that were replaced.
   * A host that still answers is refused.
   */
  async replaceHost(hostId: string): Promise<void> {
    await this.#departure(hostId, 'missing')
  }

  async #departure(hostId: string, status: 'missing' | 'gone'): Promise<void> {
    this.#checkReady()
    await markDeparted(this.#drainContext(), hostId, status)
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
    if (o.drain && !this.#stopped) {
      // A drain that fails leaves the agent running (and draining): stop rejects with it.
      await this.drain(o.drain === true ? {} : o.drain)
      const now = Date.now()
      await this.#propose({ op: 'host.status', id: this.#hostId, status: 'gone', now })
    }
    this.#stopped ??= this.#shutdown()
    return this.#stopped
  }

  async #shutdown(): Promise<void> {
    if (this.#status === 'stopped') return
    this.#setStatus('stopping')
    this.#abort.abort()
    if (this.#timer) clearInterval(this.#timer)
    const e = this.#engine
    await e?.hostController.stop()
    await e?.server.close()
    e?.bus.close()
    await e?.host.close()
    this.#setStatus('stopped')
  }

  #checkReady(): void {
    if (this.#failure) throw this.#failure
    if (this.#status !== 'ready')
      throw new ZongziError(
        this.#status === 'stopped' || this.#status === 'stopping' ? 'ERR_CLOSED' : 'ERR_NOT_READY',
        `agent is ${this.#status}`,
      )
  }

  async #known(id: number): Promise<void> {
    const sh = await this.state((s) => s.shards.get(id))
    if (!sh || id === 0) throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${id} not found`)
  }

  /** #kick runs the controllers once more (they coalesce overlapping requests). */
  #kick(): void {
    if (this.#status !== 'ready' || !this.#engine) return
    this.#engine.hostController.kick()
    void this.#engine.leader.once()
    if (this.#replacement.balanceLeaders) void this.#balance.once(this.#drainContext())
  }

  #handlerContext(host: Host, registry: RegistryAccess): HandlerContext {
    const agent = this
    return {
      clusterName: this.clusterName,
      get hostId() {
        return agent.hostId
      },
      get apiAddress() {
        return agent.apiAddress
      },
      timeoutMs: this.timeoutMs,
      tls: this.#options.tls !== undefined,
      host,
      ready: () => this.#status === 'ready',
      runs: (shardId) => this.runs(shardId),
      registry: () => this.#registry.state,
      catchUp: (timeoutMs) => registry.read(() => undefined, timeoutMs),
      propose: (cmd) => registry.propose(cmd),
    }
  }

  /** #parts are what the host controller and the registry leader's round both use. */
  #parts(host: Host, bus: BusClient, registry: RegistryAccess) {
    return {
      hostId: this.#hostId,
      timeoutMs: this.timeoutMs,
      log: this.log,
      host,
      bus,
      registry: () => this.#registry.state,
      propose: (cmd: Command) => registry.propose(cmd),
    }
  }

  #leaderContext(host: Host, bus: BusClient, registry: RegistryAccess): RegistryLeaderContext {
    return { ...this.#parts(host, bus, registry), ready: () => this.#status === 'ready' }
  }

  #drainContext(): DrainContext {
    const { host, registry, bus } = this.#started_()
    return {
      hostId: this.#hostId,
      log: this.log,
      host,
      answers: async (hostId, timeoutMs) => {
        const h = this.#registry.state.hosts.get(hostId)
        if (!h) return false
        const p = await bus.probe(h.apiAddress, { timeoutMs }).catch(() => undefined)
        return p?.hostId === hostId
      },
      registry: () => this.#registry.state,
      read: (fn) => registry.read(fn, this.timeoutMs),
      propose: (cmd) => registry.propose(cmd),
    }
  }

  #controllerContext(host: Host, bus: BusClient, registry: RegistryAccess): HostControllerContext {
    return {
      ...this.#parts(host, bus, registry),
      factory: (type) => this.#types.get(type),
      catchUp: () => registry.read(() => undefined, this.timeoutMs),
    }
  }

  #bootstrapContext(host: Host, bus: BusClient, registry: RegistryAccess): BootstrapContext {
    return {
      hostId: this.#hostId,
      apiAddress: this.#apiAddress,
      peers: this.peers,
      joinToken: this.#options.joinToken,
      tags: this.#options.tags ?? {},
      timeoutMs: this.timeoutMs,
      log: this.log,
      signal: this.#abort.signal,
      host,
      bus,
      registry,
      registryFactory: () => this.#registry,
    }
  }

  #clientContext(): ClientContext {
    const agent = this
    return {
      get hostId() {
        return agent.hostId
      },
      timeoutMs: this.timeoutMs,
      // Looked up per call: a client made before start() works once the agent has started.
      get host() {
        return agent.#started_().host
      },
      get bus() {
        return agent.#started_().bus
      },
      registry: () => this.#registry.state,
      catchUp: (timeoutMs) => this.state(() => undefined, timeoutMs),
      runs: (shardId) => this.runs(shardId),
      health: this.#health,
    }
  }

  #onHostEvent(e: HostEvent): void {
    this.emit('event', e)
    if (e.type === 'hostFailed') this.#fail(e.error)
    if (e.type === 'leaderChanged' && e.leaderId !== 0 && e.leaderId === e.replicaId) {
      this.#propose({ op: 'shard.leader', id: e.shardId, leader: e.leaderId, term: e.term }).catch(
        () => {},
      )
    }
    if (e.type === 'replicaFailed') this.log.error('replica failed', { ...e })
  }
}
