// Agent: what a user runs on each host. It owns the engine host, the registry replica,
// the message bus and the controllers that turn the registry into running replicas.
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'

import { invalid, ZongziError } from '../binding/errors'
import { Host, type HostEvent, type HostOptions } from '../binding/host'
import type { StateMachineFactory } from '../binding/state-machine'
import { BusClient } from '../bus/client'
import { BusServer } from '../bus/server'
import { ShardClient, type ShardClientOptions } from './client'
import { busHandlers } from './handlers'
import { HostController } from './host-controller'
import { PlacementError, validatePlacement } from './placement'
import type { Command, Outcome, Placement, ShardRecord } from './records'
import { Registry } from './registry'
import type { RegistryState } from './registry-state'
import { DefaultShardController, type ShardController } from './shard-controller'

/** Logger receives structured log records. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
}

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} }

/** AgentOptions configure an agent. Only `dataDir` is required. */
export interface AgentOptions {
  /** Directory for this host's data (created if missing). */
  dataDir: string
  /** Bus (gRPC) listen address. A peer must use the address the peer list names. Default `127.0.0.1:0`. */
  apiAddress?: string
  /** Raft transport listen address. Default `127.0.0.1:0`. */
  raftAddress?: string
  /** Tags of this host, used by placement (`zone`, `region`, …). */
  tags?: Record<string, string>
  /** Structured logger; silent by default. */
  logger?: Logger
  /** Default timeout of calls in milliseconds (default 5,000). */
  timeoutMs?: number
  /** How often controllers reconcile without a registry change, in ms (default 500). */
  reconcileMs?: number
  /** Engine options (tick length, snapshots, …). */
  host?: Omit<Partial<HostOptions>, 'clusterId' | 'dataDir' | 'listenAddress'>
  /** Replaces the placement logic of the registry leader. */
  shardController?: ShardController
}

/** AgentStatus is where an agent is in its life. */
export type AgentStatus = 'new' | 'starting' | 'ready' | 'stopping' | 'stopped'

/** ShardOptions describe a shard to create. */
export interface ShardOptions {
  /** Unique name; creating a shard whose name exists returns the existing shard. */
  name?: string
  tags?: Record<string, string>
  placement?: Placement
}

const REGISTRY_TYPE = 'zongzi:registry'

/** clusterIdOf derives the engine's numeric cluster id from the cluster name (FNV-1a, 53 bits). */
function clusterIdOf(name: string): number {
  let h = 0xcbf29ce484222325n
  for (const b of Buffer.from(name)) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n)
  return Number(h & 0x1fffffffffffffn)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Agent runs one host of a Zongzi cluster. Construct it with the cluster name and the bus
 * addresses of the initial peers (three or more), register state machine types, then
 * `start()`. Peers initialise the cluster together; any other host joins it.
 *
 * Events: `'status'` (AgentStatus), `'event'` (engine events), `'change'` (RegistryState).
 */
export class Agent extends EventEmitter {
  readonly clusterName: string
  readonly peers: readonly string[]
  readonly timeoutMs: number
  readonly log: Logger
  readonly #options: AgentOptions
  readonly #types = new Map<string, StateMachineFactory>()
  #status: AgentStatus = 'new'
  #hostId = ''
  #host: Host | undefined
  #bus: BusClient | undefined
  #server: BusServer | undefined
  #apiAddress = ''
  readonly #registry = new Registry()
  #hostController: HostController | undefined
  #shardController: ShardController
  #timer: NodeJS.Timeout | undefined
  #started: Promise<void> | undefined
  #stopped: Promise<void> | undefined
  readonly #abort = new AbortController()

  constructor(clusterName: string, peers: string[], options: AgentOptions) {
    super()
    if (typeof clusterName !== 'string' || clusterName === '') throw invalid('cluster name is required')
    if (!Array.isArray(peers) || peers.length < 3 || peers.some((p) => typeof p !== 'string' || !p.includes(':'))) {
      throw invalid('peers must list the bus addresses (host:port) of at least three initial peers')
    }
    if (new Set(peers).size !== peers.length) throw invalid('peers must not repeat')
    if (!options || typeof options.dataDir !== 'string' || options.dataDir === '') throw invalid('options.dataDir is required')
    if (options.tags !== undefined && !isTags(options.tags)) throw invalid('tags must map non-empty names to strings')
    this.clusterName = clusterName
    this.peers = [...peers].sort()
    this.#options = options
    this.timeoutMs = options.timeoutMs ?? 5000
    this.log = options.logger ?? silent
    this.#shardController = options.shardController ?? new DefaultShardController()
    this.#registry.on('change', (s: RegistryState) => {
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
    if (this.#status !== 'new') throw new ZongziError('ERR_INVALID_ARGUMENT', 'register state machine types before start()')
    if (typeof uri !== 'string' || uri === '' || uri === REGISTRY_TYPE) throw invalid('a state machine type needs a URI')
    if (typeof factory !== 'function') throw invalid('factory must be a function')
    this.#types.set(uri, factory)
    return this
  }

  get status(): AgentStatus {
    return this.#status
  }
  /** hostId is this host's stable id (kept in the data directory). */
  get hostId(): string {
    return this.#hostId
  }
  /** apiAddress is the bound bus address. */
  get apiAddress(): string {
    return this.#apiAddress
  }
  /** host is the engine host (for advanced use and the client). */
  get host(): Host {
    if (!this.#host) throw new ZongziError('ERR_NOT_READY', 'agent not started')
    return this.#host
  }
  /** bus is the bus client. */
  get bus(): BusClient {
    if (!this.#bus) throw new ZongziError('ERR_NOT_READY', 'agent not started')
    return this.#bus
  }
  /** factory returns the registered factory of a type. */
  factory(type: string): StateMachineFactory | undefined {
    return this.#types.get(type)
  }
  /** runs tells whether this host runs an active replica of the shard. */
  runs(shardId: number): boolean {
    return shardId === 0 ? !!this.#host : (this.#hostController?.runs(shardId) ?? false)
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
    mkdirSync(o.dataDir, { recursive: true })
    const idFile = join(o.dataDir, 'host-id')
    if (existsSync(idFile)) this.#hostId = readFileSync(idFile, 'utf8').trim()
    else {
      this.#hostId = randomUUID()
      writeFileSync(idFile, this.#hostId)
    }
    this.#host = Host.open({
      ...o.host,
      clusterId: clusterIdOf(this.clusterName),
      dataDir: join(o.dataDir, 'raft'),
      listenAddress: o.raftAddress ?? '127.0.0.1:0',
    })
    this.#host.on('event', (e: HostEvent) => this.#onHostEvent(e))
    this.#bus = new BusClient(this.clusterName)
    this.#server = new BusServer(this.clusterName, busHandlers(this))
    this.#apiAddress = await this.#server.listen(o.apiAddress ?? '127.0.0.1:0')
    this.#hostController = new HostController(this)

    const stored = this.#host.storedReplicas()
    const zero = stored.find((r) => r.shardId === 0)
    if (zero) {
      this.log.info('restarting from disk', { replicas: stored.length })
      await this.#host.startReplica(0, zero.replicaId, { mode: 'restart' }, () => this.#registry)
    } else if (this.peers.includes(this.#apiAddress)) {
      await this.#bootstrap()
    } else {
      await this.#join()
    }
    await this.propose({
      op: 'host.put',
      host: {
        id: this.#hostId,
        apiAddress: this.#apiAddress,
        raftAddress: this.#host.address,
        tags: o.tags ?? {},
        shardTypes: [...this.#types.keys()],
      },
    })
    await this.state((s) => s.hosts.get(this.#hostId))
    this.#checkNotStopping()
    this.#timer = setInterval(() => this.#kick(), o.reconcileMs ?? 500)
    this.#timer.unref()
    this.#setStatus('ready')
    this.#kick()
  }

  /** #bootstrap: every peer learns every peer's identity, then all start shard 0 with the same voters. */
  async #bootstrap(): Promise<void> {
    const infos = await Promise.all(
      this.peers.map(async (addr) => {
        if (addr === this.#apiAddress) return { hostId: this.#hostId, raftAddress: this.host.address, apiAddress: addr }
        for (;;) {
          this.#checkNotStopping()
          try {
            const p = await this.bus.probe(addr, { timeoutMs: 1000 })
            if (p.initialized && !p.initialHosts.includes(this.#hostId)) {
              // The cluster exists and this peer was not part of it: its data is gone. Starting
              // it over with an empty log could let it vote away committed entries.
              throw new ZongziError(
                'ERR_INVALID_ARGUMENT',
                `the cluster is already initialised and this peer (host ${this.#hostId}) has no data of it; replace the peer instead`,
              )
            }
            return { hostId: p.hostId, raftAddress: p.raftAddress, apiAddress: addr }
          } catch (e) {
            if (e instanceof ZongziError && ['ERR_CLUSTER_MISMATCH', 'ERR_INVALID_ARGUMENT'].includes(e.code)) throw e
            await sleep(100)
          }
        }
      }),
    )
    const peers = infos.map((p, i) => ({ ...p, replicaId: i + 1 }))
    const me = peers.find((p) => p.apiAddress === this.#apiAddress)!
    this.log.info('bootstrapping shard 0', { peers: peers.length, replicaId: me.replicaId })
    await this.host.startReplica(
      0,
      me.replicaId,
      { mode: 'bootstrap', voters: peers.map((p) => ({ replicaId: p.replicaId, address: p.raftAddress })) },
      () => this.#registry,
    )
    // Every peer proposes the same initialisation; the registry applies the first only.
    await this.propose({ op: 'cluster.init', peers })
  }

  /** #join asks the peers, one after another, to add this host to shard 0 as non-voting. */
  async #join(): Promise<void> {
    await this.#joinShardZero()
    // Catch up (a read index barrier) before writing to the registry through this replica.
    for (let round = 0; ; round++) {
      this.#checkNotStopping()
      try {
        await this.state(() => undefined)
        return
      } catch (e) {
        this.log.debug('catching up with shard 0', { error: String(e) })
        await sleep(Math.min(100 * (round + 1), 1000))
      }
    }
  }

  async #joinShardZero(): Promise<void> {
    for (let round = 0; ; round++) {
      for (const addr of this.peers) {
        this.#checkNotStopping()
        try {
          const res = await this.bus.join(
            addr,
            { hostId: this.#hostId, raftAddress: this.host.address, apiAddress: this.#apiAddress },
            { timeoutMs: this.timeoutMs },
          )
          for (const m of res.members) if (m.raftAddress) this.host.setAddress(m.replicaId, m.raftAddress)
          this.log.info('joining shard 0', { replicaId: res.replicaId, via: addr })
          await this.host.startReplica(0, res.replicaId, { mode: 'join' }, () => this.#registry)
          return
        } catch (e) {
          if (e instanceof ZongziError && e.code === 'ERR_CLUSTER_MISMATCH') throw e
          this.log.debug('join attempt failed', { peer: addr, error: String(e) })
        }
      }
      await sleep(Math.min(100 * (round + 1), 1000))
    }
  }

  #checkNotStopping(): void {
    if (this.#abort.signal.aborted) throw new ZongziError('ERR_CLOSED', 'agent stopped')
  }

  /**
   * propose applies a registry command, retrying while shard 0 has no leader. Commands that
   * are safe to apply twice are also retried when their outcome is unknown.
   */
  async propose(cmd: Command, timeoutMs = this.timeoutMs * 4): Promise<Outcome & { ok: true }> {
    const deadline = Date.now() + timeoutMs
    const data = Buffer.from(JSON.stringify(cmd))
    const idempotent = !(cmd.op === 'replicas.create' || (cmd.op === 'shard.create' && cmd.name === ''))
    const retryable = ['ERR_NO_LEADER', 'ERR_DROPPED', 'ERR_NOT_READY', ...(idempotent ? ['ERR_TIMEOUT', 'ERR_OUTCOME_UNKNOWN'] : [])]
    for (;;) {
      this.#checkNotStopping()
      try {
        const r = await this.host.propose(0, data, { timeoutMs: Math.max(1, Math.min(this.timeoutMs, deadline - Date.now())) })
        const out = JSON.parse(r.data.toString()) as Outcome
        if (!out.ok) throw new ZongziError('ERR_INVALID_ARGUMENT', out.error)
        return out
      } catch (e) {
        const retry = e instanceof ZongziError && retryable.includes(e.code)
        if (!retry || Date.now() >= deadline) throw e
        await sleep(50)
      }
    }
  }

  /** state runs `fn` on a linearizable snapshot of the registry. */
  async state<T>(fn: (s: RegistryState) => T, timeoutMs = this.timeoutMs): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        await this.host.readIndex(0, { timeoutMs: Math.max(1, deadline - Date.now()) })
        return fn(this.#registry.state)
      } catch (e) {
        const retry = e instanceof ZongziError && ['ERR_NO_LEADER', 'ERR_DROPPED'].includes(e.code)
        if (!retry || Date.now() >= deadline) throw e
        await sleep(50)
      }
    }
  }

  /** stateLocal runs `fn` on this host's current snapshot of the registry (no round trip). */
  stateLocal<T>(fn: (s: RegistryState) => T): T {
    return fn(this.#registry.state)
  }

  /** createShard creates a shard of a registered type; idempotent by name. */
  async createShard(type: string, o: ShardOptions = {}): Promise<ShardRecord> {
    this.#checkReady()
    if (typeof type !== 'string' || type === '' || type === REGISTRY_TYPE) throw invalid('shard type is required')
    if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length > 256))
      throw invalid('name must be a string of at most 256 characters')
    if (o.tags !== undefined && !isTags(o.tags)) throw invalid('tags must map non-empty names to strings')
    if (o.placement !== undefined) checkPlacement(o.placement)
    const out = await this.propose({ op: 'shard.create', name: o.name ?? '', type, tags: o.tags, placement: o.placement })
    return this.state((s) => s.shards.get(out.id!)!)
  }

  /** updateShard replaces a shard's tags and/or placement. */
  async updateShard(id: number, o: { tags?: Record<string, string>; placement?: Placement }): Promise<ShardRecord> {
    this.#checkReady()
    checkShardId(id)
    if (o.tags !== undefined && !isTags(o.tags)) throw invalid('tags must map non-empty names to strings')
    if (o.placement !== undefined) checkPlacement(o.placement)
    await this.#known(id)
    await this.propose({ op: 'shard.update', id, tags: o.tags, placement: o.placement })
    return this.state((s) => s.shards.get(id)!)
  }

  /** deleteShard stops every replica of the shard, removes them and their data. */
  async deleteShard(id: number): Promise<void> {
    this.#checkReady()
    checkShardId(id)
    await this.#known(id)
    await this.propose({ op: 'shard.delete', id })
  }

  /** findShard returns a shard by name (linearizable), or undefined. */
  findShard(name: string): Promise<ShardRecord | undefined> {
    return this.state((s) => s.shardByName(name))
  }

  /** replica resolves once this host runs an active replica of the shard. */
  async replica(shardId: number, timeoutMs = this.timeoutMs * 4): Promise<void> {
    checkShardId(shardId)
    const deadline = Date.now() + timeoutMs
    while (!this.runs(shardId)) {
      if (Date.now() >= deadline) throw new ZongziError('ERR_TIMEOUT', `no local replica of shard ${shardId} yet`)
      this.#checkNotStopping()
      await sleep(25)
    }
  }

  /** client returns a ShardClient for a shard id. */
  client(shardId: number, o?: ShardClientOptions): ShardClient {
    checkShardId(shardId)
    return new ShardClient(this, shardId, o)
  }

  /** clientByName returns a ShardClient for a shard name (linearizable lookup). */
  async clientByName(name: string, o?: ShardClientOptions): Promise<ShardClient> {
    const sh = await this.findShard(name)
    if (!sh) throw new ZongziError('ERR_SHARD_NOT_FOUND', `no shard named ${JSON.stringify(name)}`)
    return new ShardClient(this, sh.id, o)
  }

  /** stop leaves the cluster's replicas on this host stopped (data kept) and closes everything. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown()
    return this.#stopped
  }

  async #shutdown(): Promise<void> {
    if (this.#status === 'stopped') return
    this.#setStatus('stopping')
    this.#abort.abort()
    if (this.#timer) clearInterval(this.#timer)
    await this.#hostController?.stop()
    await this.#server?.close()
    this.#bus?.close()
    await this.#host?.close()
    this.#setStatus('stopped')
  }

  #checkReady(): void {
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
    if (this.#status !== 'ready') return
    this.#hostController?.kick()
    void this.#leadOnce()
  }

  #leading = false
  async #leadOnce(): Promise<void> {
    if (this.#leading) return
    this.#leading = true
    try {
      const st = await this.host.status(0).catch(() => undefined)
      if (st && st.leaderId === st.replicaId && this.#status === 'ready') {
        // The registry leader keeps its own leadership on record (the event that announced
        // it may have come before the registry existed).
        const zero = this.#registry.state.shards.get(0)
        if (zero && (zero.leader !== st.leaderId || zero.term !== st.term)) {
          await this.propose({ op: 'shard.leader', id: 0, leader: st.leaderId, term: st.term })
        }
        await this.#shardController.reconcile(this, this.#registry.state)
      }
    } catch (e) {
      this.log.warn('shard controller failed', { error: String(e) })
    } finally {
      this.#leading = false
    }
  }

  #onHostEvent(e: HostEvent): void {
    this.emit('event', e)
    if (e.type === 'leaderChanged' && e.leaderId !== 0 && e.leaderId === e.replicaId) {
      this.propose({ op: 'shard.leader', id: e.shardId, leader: e.leaderId, term: e.term }).catch(() => {})
    }
    if (e.type === 'replicaFailed') this.log.error('replica failed', { ...e })
  }
}

function isTags(v: unknown): v is Record<string, string> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.entries(v).every(([k, x]) => k !== '' && typeof x === 'string')
}

function checkShardId(id: unknown): asserts id is number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
    throw invalid(`shard id must be a non-negative integer, got ${String(id)}`)
}

function checkPlacement(p: unknown): asserts p is Placement {
  try {
    validatePlacement(p)
  } catch (e) {
    if (e instanceof PlacementError) throw invalid(`placement: ${e.message}`)
    throw e
  }
}
