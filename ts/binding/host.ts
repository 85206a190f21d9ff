import { EventEmitter } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { finished } from 'node:stream/promises'

import { asRead, fromNative, invalid, ZongziError } from './errors'
import { NativeHost } from './native'
import type { MembershipInfo, ReplicaStatus as NativeReplicaStatus } from './native'
import {
  answer,
  checkBytes,
  message,
  Outcomes,
  unpack,
  type NativeCall,
  type NativeResults,
  type UpdateItem,
} from './boundary'
import { Proposals, type SessionRef } from './proposals'
import { isPersistent, type StateMachine, type StateMachineFactory } from './state-machine'

/** HostOptions configures a host. Only `clusterId` and `dataDir` are required. */
export interface HostOptions {
  /** Cluster identity (a non-negative integer); hosts of other clusters are refused. */
  clusterId: number
  /** Directory for the log, snapshots and temporary files. */
  dataDir: string
  /** Raft transport listen address; default `127.0.0.1:0` (an ephemeral port). */
  raftAddress?: string
  /** @deprecated The former name of `raftAddress`; used only when that is not set. */
  listenAddress?: string
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
  /** Snapshot every this many applied entries; 0 disables (default 10,000). */
  snapshotEntries?: number
  /** Entries kept in the log behind a snapshot (default 1,000). */
  compactionOverhead?: number
  /** Sync the log before acknowledging (default true). */
  fsync?: boolean
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
export type Membership = MembershipInfo
/** ReplicaStatus is the local view of a shard. */
export type ReplicaStatus = NativeReplicaStatus

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

const DEFAULT_TIMEOUT = 5_000

/** Running is a replica's state machine and the start (incarnation) it serves. */
interface Running {
  sm: StateMachine
  incarnation: number
}

function checkId(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalid(`${what} must be a non-negative integer, got ${String(v)}`)
  }
  return v
}

/** checkSession checks a proposal's session; client id and series start at 1. */
function checkSession(s: unknown): SessionRef {
  const r = s as Partial<SessionRef> | null
  if (typeof r !== 'object' || r === null) throw invalid('session must be an object')
  const clientId = checkId(r.clientId, 'session.clientId')
  const series = checkId(r.series, 'session.series')
  const respondedTo = checkId(r.respondedTo ?? 0, 'session.respondedTo')
  if (clientId === 0 || series === 0) throw invalid('session clientId and series start at 1')
  return { clientId, series, respondedTo }
}

function timeoutOf(o: CallOptions | undefined): number {
  const t = o?.timeoutMs ?? DEFAULT_TIMEOUT
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) {
    throw invalid(`timeoutMs must be a positive number, got ${String(t)}`)
  }
  return t
}

async function call<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p()
  } catch (e) {
    throw fromNative(e)
  }
}

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
  readonly #machines = new Map<number, Running>()
  readonly #proposals: Proposals
  /** The last incarnation given to a start of a replica. */
  #incarnations = 0
  #closed = false

  private constructor(native: NativeHost) {
    super()
    this.#native = native
    this.#proposals = new Proposals(native)
  }

  /** open starts a host with its data in `options.dataDir`. */
  static open(options: HostOptions): Host {
    if (options === null || typeof options !== 'object') throw invalid('options are required')
    checkId(options.clusterId, 'clusterId')
    if (typeof options.dataDir !== 'string' || options.dataDir === '')
      throw invalid('dataDir is required')
    let host: Host | undefined
    const onCall = (c: NativeCall) => host?.dispatch(c)
    const onResults = (r: NativeResults) => {
      if (host) host.#proposals.settle(r)
    }
    const onEvent = (e: HostEvent) => {
      // A replica that failed or was removed is gone from the engine: let its state machine go.
      if (e.type === 'replicaFailed' || e.type === 'replicaRemoved')
        void host?.dropMachine(e.shardId, e.type === 'replicaRemoved', e.incarnation)
      host?.emit('event', e)
      host?.emit(e.type, e)
    }
    try {
      const { listenAddress, ...rest } = options
      const native = { ...rest, raftAddress: options.raftAddress ?? listenAddress }
      host = new Host(NativeHost.open(native, onCall, onEvent, onResults))
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
    try {
      this.#native.reloadTls()
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** raftAddress is this host's Raft transport address (the advertised one if set). */
  get raftAddress(): string {
    return this.#native.raftAddress
  }

  /** @deprecated The former name of {@link Host.raftAddress}. */
  get address(): string {
    return this.raftAddress
  }

  /** storedReplicas lists the replicas with data on disk, to restart after a restart. */
  storedReplicas(): Array<{ shardId: number; replicaId: number }> {
    this.#checkOpen()
    return this.#native.storedReplicas()
  }

  /** setAddress records where a replica can be reached. */
  setAddress(replicaId: number, address: string): void {
    this.#checkOpen()
    checkId(replicaId, 'replicaId')
    if (typeof address !== 'string' || address === '') throw invalid('address is required')
    try {
      this.#native.setAddress(replicaId, address)
    } catch (e) {
      throw fromNative(e)
    }
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
    if (typeof factory !== 'function') throw invalid('factory must be a function')
    if (!start || !['bootstrap', 'join', 'restart'].includes(start.mode)) {
      throw invalid("start.mode must be 'bootstrap', 'join' or 'restart'")
    }
    if (this.#machines.has(shardId)) {
      throw new ZongziError(
        'ERR_SHARD_EXISTS',
        `shard ${shardId} already has a replica on this host`,
      )
    }
    const sm = factory(shardId, replicaId)
    const applied = isPersistent(sm) ? await sm.open() : 0
    checkId(applied, 'open() result')
    const incarnation = ++this.#incarnations
    const running = { sm, incarnation }
    this.#machines.set(shardId, running)
    try {
      const voters = start.mode === 'bootstrap' ? start.voters : undefined
      await call(() =>
        this.#native.startReplica(shardId, replicaId, start.mode, voters, applied, incarnation),
      )
    } catch (e) {
      if (this.#machines.get(shardId) === running) this.#machines.delete(shardId)
      await sm.close?.()
      throw e
    }
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
      if (
        !(
          e instanceof ZongziError &&
          e.code === 'ERR_SHARD_NOT_FOUND' &&
          this.#machines.has(shardId)
        )
      )
        throw e
    }
    await this.dropMachine(shardId, true, running?.incarnation)
  }

  /** removeData deletes all local data of a stopped replica. */
  removeData(shardId: number): void {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    try {
      this.#native.removeData(shardId)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * propose applies `data` through Raft and resolves with the local state machine's result.
   * Proposals made in the same tick cross into the engine together, and their results come
   * back together.
   */
  async propose(
    shardId: number,
    data: Uint8Array,
    options?: ProposeOptions,
  ): Promise<{ value: number; data: Buffer }> {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    const bytes = checkBytes(data, 'data')
    const timeout = timeoutOf(options)
    const session = options?.session === undefined ? undefined : checkSession(options.session)
    return this.#proposals.add(shardId, bytes, timeout, session)
  }

  /**
   * registerSession registers client `clientId` (a random id above 0, below 2^53) with a
   * shard, through Raft; registering again changes nothing. Its proposals then carry
   * `session: { clientId, series, respondedTo }`, numbering series from 1. The shard keeps
   * `maxSessionsPerShard` sessions, evicting the least recently used; a proposal of an
   * evicted session fails with ERR_SESSION_EXPIRED and applies nothing.
   */
  async registerSession(shardId: number, clientId: number, options?: CallOptions): Promise<void> {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    checkId(clientId, 'clientId')
    if (clientId === 0) throw invalid('clientId must be above 0')
    const t = timeoutOf(options)
    await call(() => this.#native.session(shardId, clientId, true, t))
  }

  /** unregisterSession ends a client's session with a shard. */
  async unregisterSession(shardId: number, clientId: number, options?: CallOptions): Promise<void> {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    checkId(clientId, 'clientId')
    const t = timeoutOf(options)
    await call(() => this.#native.session(shardId, clientId, false, t))
  }

  /**
   * cutLinks drops this host's outgoing Raft messages to the given Raft addresses, as if the
   * links were cut: fault injection for tests (a partition cuts both ways, on both hosts). An
   * empty list mends every link.
   */
  cutLinks(addresses: string[]): void {
    this.#checkOpen()
    if (!Array.isArray(addresses) || addresses.some((a) => typeof a !== 'string'))
      throw invalid('addresses must be strings')
    try {
      this.#native.cutLinks(addresses)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** commit resolves with the log index once `data` is committed (before it is applied). */
  async commit(shardId: number, data: Uint8Array, options?: CallOptions): Promise<number> {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    const bytes = checkBytes(data, 'data')
    const t = timeoutOf(options)
    return call(() => this.#native.commit(shardId, bytes, t))
  }

  /** readIndex resolves once the local replica has applied everything committed before it. */
  async readIndex(shardId: number, options?: CallOptions): Promise<number> {
    try {
      this.#checkOpen()
      checkId(shardId, 'shardId')
      const t = timeoutOf(options)
      return await call(() => this.#native.readIndex(shardId, t))
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
    let q: Buffer
    try {
      this.#checkOpen()
      checkId(shardId, 'shardId')
      q = checkBytes(query, 'query')
    } catch (e) {
      throw asRead(e)
    }
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
    const machines = [...this.#machines.values()]
    this.#machines.clear()
    await Promise.allSettled(machines.map(async ({ sm }) => sm.close?.()))
  }

  /** #machine is the state machine of a shard's replica, if it runs as `incarnation`. */
  #machine(shardId: number, incarnation: number): StateMachine | undefined {
    const running = this.#machines.get(shardId)
    return running?.incarnation === incarnation ? running.sm : undefined
  }

  #checkOpen(): void {
    if (this.#closed) throw new ZongziError('ERR_CLOSED', 'host closed')
  }

  #checkMember(shardId: number, replicaId: number): void {
    this.#checkOpen()
    checkId(shardId, 'shardId')
    checkId(replicaId, 'replicaId')
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
    const running = this.#machines.get(shardId)
    if (!running || running.incarnation !== incarnation) return
    this.#machines.delete(shardId)
    if (stopped) {
      // Commands proposed here may still be committed by the other replicas: their outcome
      // is unknown, not a failure of the state machine (which an apply batch still in flight
      // to the dropped machine would report).
      const gone = `the replica of shard ${shardId} on this host stopped before its outcome`
      this.#proposals.rejectShard(shardId, new ZongziError('ERR_OUTCOME_UNKNOWN', gone))
    }
    await running.sm.close?.()
  }

  /**
   * dispatch runs a state machine call from the engine. It never throws: every outcome goes
   * back to the engine, and a failure stops only the replica concerned.
   */
  private dispatch(c: NativeCall): void {
    if (c.kind === 'update') {
      this.#update(c.token, unpack(c))
      return
    }
    const fail = (e: unknown) => this.#native.complete(c.token, message(e))
    try {
      const sm = this.#machine(c.shardId as number, c.incarnation as number)
      if (!sm) return void fail(new Error(`no state machine for shard ${c.shardId}`))
      if (c.kind === 'save') {
        const ws = createWriteStream(c.path as string)
        sm.saveSnapshot(ws)
          .then(async () => {
            if (!ws.writableEnded) ws.end()
            await finished(ws)
            this.#native.complete(c.token)
          })
          .catch((e) => {
            ws.destroy()
            fail(e)
          })
      } else {
        sm.recoverFromSnapshot(createReadStream(c.path as string), c.index as number)
          .then(() => this.#native.complete(c.token))
          .catch(fail)
      }
    } catch (e) {
      fail(e)
    }
  }

  /**
   * #update applies one batch of many shards. Synchronous state machines are applied and
   * answered within this call; an asynchronous one makes the rest wait for it, so that
   * every shard still sees its entries in order.
   */
  #update(token: number, shards: UpdateItem[]): void {
    const out = new Outcomes()
    const failed = new Set<number>()
    const fail = (shardId: number, e: unknown) => {
      failed.add(shardId)
      out.fail(message(e))
    }
    const record = (shardId: number, n: number, r: unknown) => {
      try {
        out.ok(r, n)
      } catch (e) {
        fail(shardId, e)
      }
    }
    const step = (from: number): void => {
      for (let i = from; i < shards.length; i++) {
        const { shardId, incarnation, entries } = shards[i]
        const sm = this.#machine(shardId, incarnation)
        if (!sm || failed.has(shardId)) {
          out.fail(
            sm ? 'an earlier batch of this shard failed' : `no state machine for shard ${shardId}`,
          )
          continue
        }
        let r: unknown
        try {
          r = sm.update(entries)
        } catch (e) {
          fail(shardId, e)
          continue
        }
        if (r instanceof Promise) {
          const next = i + 1
          r.then(
            (v) => {
              record(shardId, entries.length, v)
              step(next)
            },
            (e) => {
              fail(shardId, e)
              step(next)
            },
          )
          return
        }
        record(shardId, entries.length, r)
      }
      try {
        const p = out.pack()
        this.#native.completeUpdate(token, p.counts, p.errors, p.values, p.lengths, p.data)
      } catch {
        // The host closed meanwhile; the engine already gave up on this call.
      }
    }
    step(0)
  }
}
