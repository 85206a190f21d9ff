// Host: the engine's host in this process, with replicas whose state machines are written in
// TypeScript. Its options and argument checks are in host-options.ts, the state machines it
// runs and the engine's calls to them in machines.ts.
import { EventEmitter } from 'node:events'

import { answer, checkBytes, type NativeCall, type NativeResults } from './boundary'
import { asRead, asReadOf, fromNative, invalid, ZongziError } from './errors'
import {
  type CallOptions,
  checkId,
  checkAddress,
  checkAddresses,
  checkHostOptions,
  checkSession,
  checkStart,
  type HostEvent,
  type HostOptions,
  type Membership,
  type ProposeOptions,
  type ReplicaStatus,
  type StartOptions,
  timeoutOf,
  call,
  callSync,
} from './host-options'
import { Machines } from './machines'
import { logLevelOf, logTo } from './logger'
import type { HostMetrics } from './metrics'
import { NativeHost } from './native'
import { Proposals } from './proposals'
import { ReadIndexes } from './read-indexes'
import type { StateMachine, StateMachineFactory } from './state-machine'

export type {
  CallOptions,
  HostEvent,
  HostOptions,
  Membership,
  ProposeOptions,
  ReplicaStatus,
  StartOptions,
  TlsFiles,
} from './host-options'
export type { HostLogger } from './logger'
export type { Histogram, HostMetrics, PeerTraffic, QueueDepths } from './metrics'

/**
 * Host runs replicas of many shards in this process on the native engine, with their state
 * machines written in TypeScript. It emits `'event'` for every {@link HostEvent}.
 *
 * `close()` releases the native side; afterwards every call rejects with ERR_CLOSED and
 * nothing of the host keeps the Node.js process alive.
 */
export class Host extends EventEmitter {
  readonly #native: NativeHost
  /** The running replicas' state machines, each with the start it serves. */
  readonly #machines: Machines
  readonly #proposals: Proposals
  readonly #readIndexes: ReadIndexes
  #closed = false

  private constructor(native: NativeHost) {
    super()
    this.#native = native
    this.#machines = new Machines(native)
    this.#proposals = new Proposals(native)
    this.#readIndexes = new ReadIndexes((shardId, t) => call(() => native.readIndex(shardId, t)))
  }

  /** open starts a host with its data in `options.dataDir`. */
  static open(options: HostOptions): Host {
    checkHostOptions(options)
    let host: Host | undefined
    const onCall = (c: NativeCall) => {
      if (host) host.#machines.dispatch(c)
    }
    const onResults = (r: NativeResults) => {
      if (host) host.#proposals.settle(r)
    }
    const { logger, ...rest } = options
    let address: string | undefined
    const onLogs = logger ? logTo(logger, () => address) : undefined
    const native = { ...rest, logLevel: logger ? logLevelOf(logger) : undefined }
    const onEvent = (e: HostEvent) => {
      // A replica that failed or was removed is gone from the engine: let its state machine go.
      if (e.type === 'replicaFailed' || e.type === 'replicaRemoved')
        void host?.dropMachine(e.shardId, e.type === 'replicaRemoved', e.incarnation)
      host?.emit('event', e)
      host?.emit(e.type, e)
    }
    try {
      host = new Host(NativeHost.open(native, onCall, onEvent, onResults, onLogs))
      address = host.raftAddress
    } catch (e) {
      throw fromNative(e)
    }
    return host
  }

  /**
   * reloadTls reads the TLS files again: new connections use the new certificates, and on
   * an error the ones in use stay. Fails with ERR_INVALID_ARGUMENT on a host without TLS.
   */
  reloadTls(): void {
    callSync(() => this.#native.reloadTls())
  }

  /** raftAddress is this host's Raft transport address (the advertised one if set). */
  get raftAddress(): string {
    return this.#native.raftAddress
  }

  /** storedReplicas lists the replicas with data on disk, to restart after a restart. */
  storedReplicas(): Array<{ shardId: number; replicaId: number }> {
    this.#checkOpen()
    return this.#native.storedReplicas()
  }

  /** setAddress records where a replica can be reached. */
  setAddress(replicaId: number, address: string): void {
    this.#checkOpen()
    checkAddress(replicaId, address)
    callSync(() => this.#native.setAddress(replicaId, address))
  }

  /**
   * startReplica starts this host's replica of a shard with a state machine from `factory`.
   * Each start is an incarnation of its own: nothing the engine had for an earlier start of
   * the shard (a batch still queued, a snapshot) ever reaches this state machine.
   */
  async startReplica(
    shardId: number,
    replicaId: number,
    start: StartOptions,
    factory: StateMachineFactory,
  ): Promise<void> {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    checkId(replicaId, 'replicaId')
    checkStart(start, factory)
    if (this.#machines.has(shardId)) {
      throw new ZongziError(
        'ERR_SHARD_EXISTS',
        `shard ${shardId} already has a replica on this host`,
      )
    }
    await this.#machines.start(shardId, replicaId, start, factory)
  }

  /**
   * stopReplica stops the local replica of a shard, keeping its data. It resolves once the
   * state machine has finished the entries the engine handed it, and has been closed.
   */
  async stopReplica(shardId: number): Promise<void> {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    const running = this.#machines.get(shardId)
    try {
      await call(() => this.#native.stopReplica(shardId))
    } catch (e) {
      // Already stopped by the engine (failed or removed): the state machine still goes.
      const gone = e instanceof ZongziError && e.code === 'ERR_SHARD_NOT_FOUND'
      if (!gone || !this.#machines.has(shardId)) throw e
    }
    await this.dropMachine(shardId, true, running?.incarnation)
  }

  /** removeData deletes all local data of a stopped replica. */
  removeData(shardId: number): void {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    callSync(() => this.#native.removeData(shardId))
  }

  /**
   * propose applies `data` through Raft and resolves with the local state machine's result.
   * Proposals made in the same tick cross into the engine together, and their results come
   * back together.
   */
  propose(
    shardId: number,
    data: Uint8Array,
    options?: ProposeOptions,
  ): Promise<{ value: number; data: Buffer }> {
    // Not an async function: the proposal's own promise is the only one a call makes.
    try {
      this.#checkOpen()
      checkId(shardId, 'shardId')
      const bytes = checkBytes(data, 'data')
      const timeout = timeoutOf(options)
      const session = options?.session === undefined ? undefined : checkSession(options.session)
      return this.#proposals.add(shardId, bytes, timeout, session)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /**
   * registerSession registers client `clientId` (a random id above 0, below 2^53) with a
   * shard, through Raft; registering again changes nothing. Its proposals then carry
   * `session: { clientId, series, respondedTo }`, numbering series from 1. The shard keeps
   * `maxSessionsPerShard` sessions, evicting the least recently used; a proposal of an
   * evicted session fails with ERR_SESSION_EXPIRED and applies nothing.
   */
  async registerSession(shardId: number, clientId: number, options?: CallOptions): Promise<void> {
    if (clientId === 0) throw invalid('clientId must be above 0')
    await this.#session(shardId, clientId, true, options)
  }

  /** unregisterSession ends a client's session with a shard. */
  async unregisterSession(shardId: number, clientId: number, options?: CallOptions): Promise<void> {
    await this.#session(shardId, clientId, false, options)
  }

  /** #session registers or ends a client's session with a shard, through Raft. */
  async #session(shard: number, client: number, on: boolean, o?: CallOptions): Promise<void> {
    this.#checkMember(shard, client, 'clientId')
    const t = timeoutOf(o)
    await call(() => this.#native.session(shard, client, on, t))
  }

  /**
   * cutLinks drops this host's outgoing Raft messages to the given Raft addresses, as if the
   * links were cut: fault injection for tests (a partition cuts both ways, on both hosts). An
   * empty list mends every link.
   */
  cutLinks(addresses: string[]): void {
    this.#checkOpen()
    checkAddresses(addresses)
    callSync(() => this.#native.cutLinks(addresses))
  }

  /** commit resolves with the log index once `data` is committed (before it is applied). */
  async commit(shardId: number, data: Uint8Array, options?: CallOptions): Promise<number> {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    const bytes = checkBytes(data, 'data')
    const t = timeoutOf(options)
    return call(() => this.#native.commit(shardId, bytes, t))
  }

  /**
   * readIndex resolves once the local replica has applied everything committed before it.
   * The calls of a shard made in one turn of the event loop share one read index of the
   * engine's, taken after all of them were made.
   */
  async readIndex(shardId: number, options?: CallOptions): Promise<number> {
    try {
      this.#checkOpen()
      checkId(shardId, 'shardId')
      const t = timeoutOf(options)
      return await this.#readIndexes.readIndex(shardId, t)
    } catch (e) {
      throw asRead(e)
    }
  }

  /**
   * read queries the local state machine: linearizable by default, or `stale` without a
   * barrier. It resolves with the answer as a Buffer, or undefined when the state machine
   * answered "absent" (`undefined` or `null`).
   */
  async read(
    shardId: number,
    query: Uint8Array,
    options?: CallOptions & { stale?: boolean },
  ): Promise<Buffer | undefined> {
    const q = asReadOf(() => {
      this.#checkOpen()
      checkId(shardId, 'shardId')
      return checkBytes(query, 'query')
    })
    // The barrier holds for the replica running when the read began: a replica started
    // again meanwhile has not been through it, and answers nothing.
    const running = this.#machines.get(shardId)
    if (!options?.stale) await this.readIndex(shardId, options)
    if (!running || this.#machines.get(shardId) !== running)
      throw new ZongziError('ERR_SHARD_NOT_FOUND', `shard ${shardId} not found on this host`, {
        call: 'read',
      })
    return answer(await running.sm.query(q))
  }

  /** stateMachine returns the local state machine of a shard (for watch/stream). */
  stateMachine(shardId: number): StateMachine | undefined {
    return this.#machines.get(shardId)?.sm
  }

  /** addReplica adds a voter (or promotes a non-voting member) reachable at `address`. */
  async addReplica(
    shardId: number,
    replicaId: number,
    address: string,
    options?: CallOptions,
  ): Promise<Membership> {
    this.#checkMember(shardId, replicaId)
    const t = timeoutOf(options)
    return call(() => this.#native.addReplica(shardId, replicaId, address, t))
  }

  /** addNonVoting adds a non-voting member reachable at `address`. */
  async addNonVoting(
    shardId: number,
    replicaId: number,
    address: string,
    options?: CallOptions,
  ): Promise<Membership> {
    this.#checkMember(shardId, replicaId)
    const t = timeoutOf(options)
    return call(() => this.#native.addNonVoting(shardId, replicaId, address, t))
  }

  /** promote turns a non-voting member into a voter. */
  async promote(shardId: number, replicaId: number, options?: CallOptions): Promise<Membership> {
    this.#checkMember(shardId, replicaId)
    const t = timeoutOf(options)
    return call(() => this.#native.promote(shardId, replicaId, t))
  }

  /** removeReplica removes a member from the shard. */
  async removeReplica(
    shardId: number,
    replicaId: number,
    options?: CallOptions,
  ): Promise<Membership> {
    this.#checkMember(shardId, replicaId)
    const t = timeoutOf(options)
    return call(() => this.#native.removeReplica(shardId, replicaId, t))
  }

  /** status returns the local view of a shard: leader, term, indexes and members. */
  async status(shardId: number): Promise<ReplicaStatus> {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    return call(() => this.#native.status(shardId))
  }

  /** metrics reads the engine's counters, queue depths and apply lag in one call (HostMetrics). */
  async metrics(): Promise<HostMetrics> {
    this.#checkOpen()
    return call(() => this.#native.metrics())
  }

  /** transferLeader asks the shard's leader to hand leadership to `target`. */
  async transferLeader(shardId: number, target: number): Promise<void> {
    this.#checkMember(shardId, target)
    return call(() => this.#native.transferLeader(shardId, target))
  }

  /** requestSnapshot snapshots the local replica now; resolves with the snapshot's index. */
  async requestSnapshot(shardId: number): Promise<number> {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    return call(() => this.#native.requestSnapshot(shardId))
  }

  /** close stops every replica and releases the native host. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#proposals.closing()
    this.#native.close()
    this.#proposals.rejectAll(new ZongziError('ERR_CLOSED', 'host closed'))
    const machines = this.#machines.clear()
    await Promise.allSettled(machines.map(async ({ sm }) => sm.close?.()))
  }

  #checkOpen(): void {
    if (this.#closed) throw new ZongziError('ERR_CLOSED', 'host closed')
  }

  #checkMember(shardId: number, replicaId: number, what = 'replicaId'): void {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    checkId(replicaId, what)
  }

  /**
   * dropMachine forgets (and closes) the state machine of a replica that no longer runs: the
   * start `incarnation`, never a later one; when it was stopped or removed (not failed), its
   * proposals still waiting get ERR_OUTCOME_UNKNOWN.
   */
  private async dropMachine(
    shardId: number,
    stopped: boolean,
    incarnation: number | undefined,
  ): Promise<void> {
    const running = this.#machines.remove(shardId, incarnation)
    if (!running) return
    if (stopped) this.#proposals.stopped(shardId)
    await running.sm.close?.()
  }
}
