// AgentCore: what an Agent runs and knows, and its start-up wiring — the data directory, the
// engine host, the bus, the registry replica and the controllers. The Agent is its public face.
import type { EventEmitter } from 'node:events'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { ZongziError } from '../binding/errors'
import { REGISTRY_VERSION } from '../binding/versions'
import { Host, type HostEvent } from '../binding/host'
import type { StateMachineFactory } from '../binding/state-machine'
import { BusClient } from '../bus/client'
import { type BusCredentials, busCredentials } from '../bus/credentials'
import { BusServer } from '../bus/server'
import {
  type AgentInside,
  type AgentParts,
  bootstrapContext,
  controllerContext,
  drainContext,
  handlerContext,
  leaderContext,
  opsContext,
} from './agent-contexts'
import type { AgentEvents } from './agent-events'
import type { AdminAgent } from '../ops/admin'
import { type AgentOptions, type AgentStatus, isLoopback } from './agent-options'
import { bootstrap, join as joinCluster, REJOIN } from './bootstrap'
import { HostHealth } from './client/health'
import type { ShardClient } from './client/shard-client'
import { checkReplacement, type ReplacementOptions, retireEarlier } from './control/departures'
import { LeaderBalance } from './control/drain'
import { HostController } from './control/host-controller'
import { checkLiveness, Liveness } from './control/liveness'
import { bindLater, type Logger, silent } from './control/logger'
import { RegistryLeader } from './control/registry-leader'
import { DefaultShardController, type ShardController } from './control/shard-controller'
import { busHandlers } from './handlers'
import { hostIdIn, keepRaftAddress, lostLog, savedRaftAddress } from './host-files'
import type { Accepted, Command } from './registry/records'
import { Registry } from './registry/registry'
import { hostChanges, membershipChanges } from './registry/events'
import { RegistryState } from './registry/state'
import { RegistryAccess } from './registry-access'
import { AgentOps } from '../ops/agent-ops'
import type { AnyShardType } from './shard-type'

/** A file in the data directory that says this host has held a replica of shard 0. */
const REGISTRY_MARKER = 'registry-member'

/** clusterIdOf derives the engine's numeric cluster id from the cluster name (FNV-1a, 53 bits). */
function clusterIdOf(name: string): number {
  let h = 0xcbf29ce484222325n
  for (const b of Buffer.from(name)) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n)
  return Number(h & 0x1fffffffffffffn)
}

/**
 * AgentCore holds an agent's state and runs its start, its reconciling and its shutdown. It
 * emits the agent's events on `events` (the Agent itself).
 */
export class AgentCore implements AgentInside {
  readonly timeoutMs: number
  readonly log: Logger
  readonly types = new Map<string, StateMachineFactory>()
  /** The ShardTypes this agent was given (registered, or passed to createShard), by name. */
  readonly shardTypes = new Map<string, AnyShardType>()
  status: AgentStatus = 'new'
  failure: ZongziError | undefined
  hostId = ''
  apiAddress = ''
  parts: AgentParts | undefined
  /** The agent's clients, by shard and options (see `Agent.client`). */
  readonly clients = new Map<string, ShardClient>()
  readonly registry = new Registry()
  readonly abort = new AbortController()
  /** What this agent's clients have seen of other hosts: latencies and circuits. */
  readonly health: HostHealth
  readonly ops: AgentOps // status, change stream, metrics
  stopped: Promise<void> | undefined
  #credentials: BusCredentials | undefined
  readonly #liveness: Liveness
  readonly #replacement: Required<ReplacementOptions>
  readonly #balance = new LeaderBalance(5_000)
  readonly #shardController: ShardController
  /** The registry state the last `'change'` showed, to announce hosts going down or up. */
  #seen = RegistryState.empty()
  #timer: NodeJS.Timeout | undefined
  /** This start is a peer's that lost its data and joined as a new host. */
  #rejoined = false
  /** The departure of this host's earlier identity being proposed (see retireEarlier). */
  #retiring: Promise<void> | undefined
  #started: Promise<void> | undefined

  constructor(
    readonly events: EventEmitter<AgentEvents> & AdminAgent,
    readonly clusterName: string,
    /** The initial peers; a single host's is its own address once it listens. */
    public peers: readonly string[],
    readonly options: AgentOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 5000
    this.log = bindLater(options.logger ?? silent, () => this.hostId && { hostId: this.hostId })
    this.health = new HostHealth(options.health ?? {}, (address, state) => {
      this.log.info({ address, state }, 'circuit')
      events.emit('circuit', { address, state })
    })
    this.ops = new AgentOps(opsContext(this), options.metrics)
    this.#liveness = new Liveness(checkLiveness(options.liveness))
    this.#replacement = checkReplacement(options)
    const r = this.#replacement
    this.#shardController =
      options.shardController ??
      new DefaultShardController(this.log, undefined, {
        rebalance: r.rebalance,
        rebalanceThreshold: r.rebalanceThreshold,
        maxMoves: Math.ceil(r.changesPerSecond),
        onMove: (m) => events.emit('rebalance', m),
      })
    this.registry.on('change', (s: RegistryState) => this.#onChange(s))
  }

  get signal(): AbortSignal {
    return this.abort.signal
  }

  ready(): boolean {
    return this.status === 'ready'
  }

  /** runs tells whether this host runs an active replica of the shard (never once failed). */
  runs(shardId: number): boolean {
    if (!this.parts || this.failure) return false
    return shardId === 0 || this.parts.hostController.runs(shardId)
  }

  started(): AgentParts {
    if (!this.parts) throw new ZongziError('ERR_NOT_READY', 'agent not started')
    return this.parts
  }

  propose(cmd: Command): Promise<Accepted> {
    return this.started().registry.propose(cmd)
  }

  /** checkReady throws unless the agent is ready: its failure, ERR_CLOSED or ERR_NOT_READY. */
  checkReady(): void {
    if (this.failure) throw this.failure
    if (this.status !== 'ready')
      throw new ZongziError(
        this.status === 'stopped' || this.status === 'stopping' ? 'ERR_CLOSED' : 'ERR_NOT_READY',
        `agent is ${this.status}`,
      )
  }

  /** start runs the start-up once; a failed start shuts down what it opened. */
  start(): Promise<void> {
    this.#started ??= this.#start().catch(async (e) => {
      this.log.error({ error: String(e) }, 'start failed')
      await this.shutdown()
      throw e
    })
    return this.#started
  }

  #setStatus(s: AgentStatus): void {
    this.status = s
    this.events.emit('status', s)
  }

  #onChange(s: RegistryState): void {
    for (const e of hostChanges(this.#seen, s)) {
      this.log.info({ hostId: e.hostId }, e.type)
      this.events.emit(e.type, { hostId: e.hostId })
    }
    // Only worked out for listeners: it walks every replica of the registry.
    if (this.events.listenerCount('membership') > 0)
      for (const m of membershipChanges(this.#seen, s)) this.events.emit('membership', m)
    this.#seen = s
    this.kick()
    try {
      this.events.emit('change', s)
    } catch (e) {
      this.log.error({ error: String(e) }, 'a change listener failed')
    }
  }

  /** #open prepares the data directory and opens the engine host on it. */
  #open(): Host {
    const o = this.options
    const plain = [
      o.tls ? undefined : o.apiAddress,
      (o.host?.tls ?? o.tls) ? undefined : o.raftAddress,
    ]
    const exposed = plain.filter((a) => a && !isLoopback(a))
    if (o.insecure && exposed.length > 0) {
      const msg = 'INSECURE: listening off loopback without TLS on every channel'
      this.log.warn({ addresses: exposed }, msg)
    }
    this.hostId = hostIdIn(o.dataDir)
    const saved = savedRaftAddress(o.dataDir)
    const listen = o.raftAddress ?? saved ?? '127.0.0.1:0'
    this.#credentials = busCredentials(o.tls)
    const host = Host.open({
      ...o.host,
      tls: o.host?.tls ?? o.tls,
      clusterId: clusterIdOf(this.clusterName),
      dataDir: join(o.dataDir, 'raft'),
      raftAddress: listen,
      // The engine's and raft-rs's records (with the host id).
      logger: o.host?.logger ?? this.log,
    })
    // Keep the address bound now (the port the host picked for port 0), so that a restart
    // without a raftAddress listens on it again. An advertised address hides the bound one.
    keepRaftAddress(o.dataDir, o.host?.advertiseAddress ? listen : host.raftAddress, saved)
    host.on('event', (e: HostEvent) => this.#onHostEvent(e))
    return host
  }

  async #start(): Promise<void> {
    this.#setStatus('starting')
    const o = this.options
    const host = this.#open()
    const credentials = this.#credentials as BusCredentials
    const stored = host.storedReplicas()
    const zero = stored.find((r) => r.shardId === 0)
    // This data directory held a replica of shard 0 once: without it now, its Raft log is
    // lost, and this host id may not take part again (it may have voted: starting over with
    // an empty log could vote away committed entries). Checked before anything takes the id.
    const marker = join(o.dataDir, REGISTRY_MARKER)
    if (!zero && existsSync(marker)) {
      try {
        this.hostId = lostLog(this.options, this.hostId, this.log)
        this.#rejoined = true
      } catch (e) {
        await host.close()
        throw e
      }
    }
    const bus = new BusClient(this.clusterName, {
      credentials: credentials.channel(),
      hostId: () => this.hostId,
      keepaliveMs: o.keepaliveMs,
    })
    const registry = new RegistryAccess(
      host,
      this.registry,
      this.timeoutMs,
      this.abort.signal,
      this.hostId,
    )
    const handlers = this.ops.handlers(busHandlers(handlerContext(this, host, registry)))
    const server = new BusServer(this.clusterName, handlers, {
      keepaliveMs: o.keepaliveMs,
      interceptors: this.ops.interceptors(),
    })
    const hostController = new HostController(controllerContext(this, host, bus, registry))
    const leader = new RegistryLeader(
      leaderContext(this, host, bus, registry),
      this.#liveness,
      this.#shardController,
      this.#replacement,
    )
    this.parts = { host, bus, server, registry, hostController, leader }
    this.apiAddress = await server.listen(o.apiAddress ?? '127.0.0.1:0', credentials.server)
    await this.ops.listen()
    if (o.singleHost && this.peers.length === 0) this.peers = [this.apiAddress]

    const boot = bootstrapContext(this, host, bus, registry)
    if (zero) {
      if (!existsSync(marker)) writeFileSync(marker, '') // a directory of an earlier version
      this.log.info({ replicas: stored.length }, 'restarting from disk')
      await host
        .startReplica(0, zero.replicaId, { mode: 'restart' }, boot.registryFactory)
        .catch((e) => Promise.reject(this.registry.refusal ?? e)) // its code says more
    } else if (this.peers.includes(this.apiAddress) && !this.#rejoined) {
      writeFileSync(marker, '')
      if ((await bootstrap(boot)) === REJOIN) {
        await joinCluster(boot)
        this.#rejoined = true
      }
    } else {
      writeFileSync(marker, '')
      await joinCluster(boot)
    }
    try {
      await this.putHost()
      await registry.read((s) => s.hosts.get(this.hostId), this.timeoutMs)
    } catch (e) {
      throw this.failure ?? e // why the host failed says more than a write that timed out
    }
    if (this.abort.signal.aborted) throw new ZongziError('ERR_CLOSED', 'agent stopped')
    if (this.failure) throw this.failure
    this.#timer = setInterval(() => this.kick(), o.reconcileMs ?? 500)
    this.#timer.unref()
    this.#setStatus('ready')
    this.kick()
  }

  /**
   * putHost writes this host's record: addresses, tags, types and certificate (and the one
   * it is switching to, if `next` is given).
   */
  async putHost(next?: string): Promise<void> {
    const { host, registry } = this.started()
    const certificate = this.#credentials?.certificate()
    await registry.propose({
      op: 'host.put',
      host: {
        id: this.hostId,
        apiAddress: this.apiAddress,
        raftAddress: host.raftAddress,
        tags: this.options.tags ?? {},
        shardTypes: [...this.types.keys()],
        ...(certificate ? { certificate } : {}),
        ...(next ? { nextCertificate: next } : {}),
        version: REGISTRY_VERSION,
      },
      ...(this.#rejoined ? { rejoined: true } : {}),
    })
  }

  /**
   * reloadTls reads the TLS files again for both channels; with bus TLS, the registry records
   * the new certificate next to the one in use first, then the new one alone.
   */
  async reloadTls(): Promise<void> {
    const { host, bus } = this.started()
    const raft = this.options.host?.tls ?? this.options.tls
    if (!raft)
      throw new ZongziError('ERR_INVALID_ARGUMENT', 'this agent has no TLS files to reload')
    if (this.options.tls && this.#credentials) {
      const staged = this.#credentials.stage() // read first: files that do not parse change nothing
      if (staged.certificate !== this.#credentials.certificate())
        await this.putHost(staged.certificate)
      staged.use()
      bus.useCredentials(this.#credentials.channel())
    }
    host.reloadTls()
    this.ops.reloadTls()
    if (this.options.tls) await this.putHost()
  }

  /**
   * #fail records that the engine host stopped after a failure (`error` says why when its
   * code says more than ERR_HOST_FAILED): the agent stops reconciling and its status becomes
   * 'failed' (unless it is already stopping).
   */
  #fail(cause: string, error?: ZongziError): void {
    if (this.failure || this.status === 'stopping' || this.status === 'stopped') return
    this.failure = error ?? new ZongziError('ERR_HOST_FAILED', `host failed: ${cause}`)
    this.log.error({ error: cause }, 'host failed')
    if (this.#timer) clearInterval(this.#timer)
    this.#setStatus('failed')
  }

  /** shutdown stops the controllers, the bus and the engine host (data kept). */
  async shutdown(): Promise<void> {
    if (this.status === 'stopped') return
    this.#setStatus('stopping')
    this.abort.abort()
    await this.ops.close()
    if (this.#timer) clearInterval(this.#timer)
    const p = this.parts
    await p?.hostController.stop()
    await p?.server.close()
    p?.bus.close()
    await p?.host.close()
    this.#setStatus('stopped')
  }

  /** kick runs the controllers once more (they coalesce overlapping requests). */
  kick(): void {
    if (this.status !== 'ready' || !this.parts) return
    this.parts.hostController.kick()
    if (this.#rejoined && !this.#retiring) {
      const p = retireEarlier(this.registry.state, this, (c) => this.propose(c))
      this.#retiring = p.finally(() => {
        this.#retiring = undefined
      })
    }
    void this.parts.leader.once()
    if (this.#replacement.balanceLeaders) void this.#balance.once(drainContext(this))
  }

  #onHostEvent(e: HostEvent): void {
    this.events.emit('event', e)
    if (e.type === 'hostFailed') this.#fail(e.error)
    if (e.type === 'leaderChanged' && e.leaderId !== 0 && e.leaderId === e.replicaId) {
      this.propose({ op: 'shard.leader', id: e.shardId, leader: e.leaderId, term: e.term }).catch(
        () => {},
      )
    }
    if (e.type === 'replicaFailed') this.log.error({ ...e }, 'replica failed')
    // Without its replica of the registry, a host can neither see nor change the cluster (a
    // registry command or snapshot in a format its build does not read stops it, say).
    if (e.type === 'replicaFailed' && e.shardId === 0)
      this.#fail(`its replica of the registry failed: ${e.error}`, this.registry.refusal)
  }
}
