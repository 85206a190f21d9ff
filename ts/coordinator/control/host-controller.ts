// HostController: on every host, makes the engine run the replicas the registry assigns to
// this host — start (bootstrap, join or restart), promote, and stop and delete what the
// registry no longer wants.
import { ZongziError } from '../../binding/errors'
import type { Host } from '../../binding/host'
import type { StateMachineFactory } from '../../binding/state-machine'
import type { BusClient } from '../../bus/client'
import type { Logger } from './logger'
import type { Accepted, Command, ReplicaRecord, ShardRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'
import { repairOf } from './membership-repair'
import { replicaOn, shardsChangedOn } from './changes'
import { apiAddresses } from './membership-ops'
import { ShardWork } from './shard-work'
import { firstOf } from '../client/retry'

/** HostControllerContext is what the host controller uses of the agent. */
export interface HostControllerContext {
  readonly hostId: string
  readonly timeoutMs: number
  readonly log: Logger
  readonly host: Pick<
    Host,
    | 'raftAddress'
    | 'storedReplicas'
    | 'startReplica'
    | 'stopReplica'
    | 'removeData'
    | 'readIndex'
    | 'status'
    | 'promote'
    | 'addNonVoting'
    | 'removeReplica'
    | 'transferLeader'
  >
  readonly bus: Pick<BusClient, 'addReplica' | 'removeReplica'>
  /** registry is this host's current registry snapshot. */
  registry(): RegistryState
  /** catchUp brings this host's registry up to date (a linearizable read of shard 0). */
  catchUp(): Promise<void>
  /** factory returns the registered factory of a state machine type. */
  factory(type: string): StateMachineFactory | undefined
  propose(cmd: Command): Promise<Accepted>
  /** passed hears how long each reconciliation took, in seconds (for metrics). */
  passed?(seconds: number): void
}

/**
 * HOST_CONCURRENCY bounds the replicas a host controller works on at once (start, activate,
 * repair, retire). A new shard's activation waits for its first election, so the bound is
 * well above the number of cores: waiting replicas hold a slot, not a thread.
 */
export const HOST_CONCURRENCY = 256

/**
 * FULL_PASS_MS is how often a host controller checks every replica it runs against the
 * registry (membership repair, data left on disk); in between, idle shards cost nothing: a
 * run on the registry state of a run that found nothing to do returns at once.
 */
export const FULL_PASS_MS = 30_000

/**
 * HostController reconciles this host's replicas with the registry. Runs are serialised; a
 * run hands each replica's work to a ShardWork pool and does not wait for it. A run looks at
 * the shards that changed since the last run and those whose work ended; a full pass at all.
 */
export class HostController {
  readonly #agent: HostControllerContext
  /** Shards with a replica this controller started, and whether it is active yet. */
  readonly #running = new Map<number, { replicaId: number; active: boolean }>()
  /** Work under way on shards, in a pool of HOST_CONCURRENCY slots. */
  readonly #work: ShardWork
  /** Per active shard, its record as last checked for repair (see seenKey). */
  readonly #checked = new Map<number, string>()
  #fullPassAt = 0 // when the next full pass is due
  /** The state of the last run, and of the last that handed out no work. */
  #last: RegistryState | undefined
  #quiet: RegistryState | undefined
  /** The shards whose work ended since the last run: a run looks at them again. */
  readonly #ended = new Set<number>()
  #busy: Promise<void> | undefined
  #again = false
  #stopped = false

  constructor(agent: HostControllerContext) {
    this.#agent = agent
    this.#work = new ShardWork(
      HOST_CONCURRENCY,
      (shardId, e) => agent.log.debug({ shardId, error: String(e) }, 'replica not reconciled yet'),
      (shardId) => this.#ended.add(shardId),
    )
  }

  /** runs tells whether an active replica of the shard runs here. */
  runs(shardId: number): boolean {
    return this.#running.get(shardId)?.active ?? false
  }

  /** kick asks for a reconciliation; one runs at a time and another follows if asked meanwhile. */
  kick(): void {
    if (this.#stopped) return
    if (this.#busy) {
      this.#again = true
      return
    }
    this.#busy = (async () => {
      do {
        this.#again = false
        const t0 = performance.now()
        try {
          await this.#reconcile(this.#agent.registry())
          this.#agent.passed?.((performance.now() - t0) / 1000)
        } catch (e) {
          this.#agent.log.warn({ error: String(e) }, 'host controller')
        }
      } while (this.#again && !this.#stopped)
      this.#busy = undefined
    })()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await this.#busy
    // Work waiting for a slot sees #stopped and ends at once.
    await this.#work.settled()
  }

  async #reconcile(s: RegistryState): Promise<void> {
    const now = Date.now()
    const full = now >= this.#fullPassAt || this.#last === undefined
    // Nothing changed since a run that found nothing to do: nothing to look at.
    if (!full && s === this.#quiet) return
    this.#quiet = undefined
    const spawned = this.#work.spawned
    const me = this.#agent.hostId
    // The shards to look at: on a full pass, every one this host has a replica of; else those
    // whose replica here or record changed since the last run, and those whose work ended.
    const look = full ? undefined : shardsChangedOn(this.#last as RegistryState, s, me)
    for (const id of this.#ended) look?.add(id)
    this.#ended.clear()
    this.#last = s
    const mine = new Map<number, ReplicaRecord>()
    if (look) {
      for (const id of look) {
        const r = id === 0 ? undefined : replicaOn(s, id, me)
        if (r) mine.set(id, r)
        else this.#checked.delete(id)
      }
    } else {
      for (const r of s.replicasOn(me)) if (r.shardId !== 0) mine.set(r.shardId, r)
      this.#fullPassAt = now + FULL_PASS_MS
      for (const shardId of this.#checked.keys())
        if (!mine.has(shardId)) this.#checked.delete(shardId)
    }
    // What is on disk, read when a replica is to start (a start looks up its shard in it) or
    // on a full pass.
    const starting = [...mine.keys()].some((id) => !this.#running.has(id) && !this.#work.has(id))
    const stored = new Map<number, number>()
    if (full || starting) {
      for (const x of this.#agent.host.storedReplicas()) stored.set(x.shardId, x.replicaId)
      // First, so that a replica started below never finds an older one's data in its place.
      this.#purge(mine, stored, look)
    }
    for (const r of mine.values()) {
      if (this.#stopped) return
      const shard = s.shards.get(r.shardId)
      if (!shard) continue
      // Work under way: looked at again once it ends.
      if (this.#work.has(r.shardId)) continue
      const running = this.#running.get(r.shardId)
      if (running?.active && r.status !== 'deleting') {
        // An active replica whose shard did not change since it was last checked.
        const key = seenKey(shard)
        if (!full && this.#checked.get(r.shardId) === key) continue
        this.#spawn(r, async () => {
          // Checked once nothing was left to repair: a repair makes one change per run.
          if (await this.#repair(s, r)) this.#checked.set(r.shardId, key)
        })
        continue
      }
      this.#spawn(r, () => {
        if (r.status === 'deleting') return this.#retire(s, r)
        if (!running) return this.#start(s, shard, r, stored.get(r.shardId))
        return this.#activate(r)
      })
    }
    // Replicas running here that the registry no longer lists: stop them and delete their data.
    for (const shardId of look ?? [...this.#running.keys()]) {
      const run = this.#running.get(shardId)
      if (!run || mine.get(shardId)?.id === run.replicaId) continue
      if (this.#work.has(shardId)) continue
      this.#spawn({ shardId, id: run.replicaId }, () => this.#drop(shardId))
    }
    // No work handed out, and none under way (its end may leave more to do): quiet.
    if (this.#work.spawned === spawned && this.#work.size === 0) this.#quiet = s
  }

  /** #spawn hands `work` on the replica's shard to the pool (see ShardWork). */
  #spawn(r: Pick<ReplicaRecord, 'shardId' | 'id'>, work: () => Promise<void>): void {
    this.#work.spawn(r.shardId, async () => {
      if (!this.#stopped) await work()
    })
  }

  /**
   * #purge deletes the data of replicas on disk that the registry no longer lists for this
   * host (of the shards `only` names, when given): those replaced elsewhere while it was
   * down. This host stored a replica only after its registry listed it, and its registry only
   * moves forward, so one it does not list now was deleted.
   */
  #purge(
    mine: ReadonlyMap<number, ReplicaRecord>,
    stored: Map<number, number>,
    only?: ReadonlySet<number>,
  ): void {
    const a = this.#agent
    for (const [shardId, replicaId] of stored) {
      if (shardId === 0 || this.#running.has(shardId) || this.#work.has(shardId)) continue
      // A run that looked at some shards only knows what the registry lists of those.
      if (only && !only.has(shardId)) continue
      if (mine.get(shardId)?.id === replicaId) continue
      try {
        a.host.removeData(shardId)
      } catch (e) {
        // ERR_BUSY: a replica of the shard stopped a moment ago and still finishes its apply
        // work; a later pass deletes the data.
        a.log.debug({ shardId, error: String(e) }, 'data of a replaced replica not deleted yet')
        continue
      }
      stored.delete(shardId)
      a.log.info({ shardId, replicaId }, 'data of a replaced replica deleted')
    }
  }

  /** #start starts the replica: from `stored`, the id of the replica of its shard on disk. */
  async #start(
    s: RegistryState,
    shard: ShardRecord,
    r: ReplicaRecord,
    stored: number | undefined,
  ): Promise<void> {
    const a = this.#agent
    const factory = a.factory(shard.type)
    if (!factory) return // placement only picks hosts that registered the type
    if (stored === r.id) {
      await a.host.startReplica(r.shardId, r.id, { mode: 'restart' }, factory)
    } else if (r.initial) {
      const initial = s.replicasOf(shard.id).filter((x) => x.initial && !x.nonVoting)
      const voters = initial.map((x) => ({
        replicaId: x.id,
        address: s.hosts.get(x.hostId)?.raftAddress ?? '',
      }))
      if (voters.some((v) => !v.address)) return // a host record is not there yet
      await a.host.startReplica(r.shardId, r.id, { mode: 'bootstrap', voters }, factory)
    } else {
      await this.#requestMembership(s, r)
      await a.host.startReplica(r.shardId, r.id, { mode: 'join' }, factory)
    }
    this.#running.set(r.shardId, { replicaId: r.id, active: false })
    a.log.info({ shardId: r.shardId, replicaId: r.id }, 'replica started')
    await this.#activate(r)
  }

  /**
   * #activate marks a started replica active once it has caught up: a read index barrier
   * completes when the replica has applied everything committed before it. If that does not
   * happen yet, a later reconciliation tries again.
   */
  async #activate(r: ReplicaRecord): Promise<void> {
    const a = this.#agent
    await a.host.readIndex(r.shardId, { timeoutMs: a.timeoutMs })
    if (r.status !== 'active') await a.propose({ op: 'replica.update', id: r.id, status: 'active' })
    this.#running.set(r.shardId, { replicaId: r.id, active: true })
  }

  /** #requestMembership asks a host that runs the shard to add this replica to it. */
  async #requestMembership(s: RegistryState, r: ReplicaRecord): Promise<void> {
    const a = this.#agent
    const members = s.replicasOf(r.shardId).filter((x) => x.status === 'active' && x.id !== r.id)
    // Always as non-voting first: a voter that has not caught up (or never starts) would
    // count against the quorum. The registry leader promotes it once it caught up.
    const change = {
      shardId: r.shardId,
      replicaId: r.id,
      raftAddress: a.host.raftAddress,
      nonVoting: true,
    }
    await firstOf(
      apiAddresses(s, members),
      (addr) => a.bus.addReplica(addr, change, { timeoutMs: a.timeoutMs }),
      anyFailure,
      () => new ZongziError('ERR_UNAVAILABLE', `shard ${r.shardId} has no active member yet`),
    )
  }

  /**
   * #repair, where this host's replica leads its shard, brings the shard's Raft membership in
   * line with the registry (see membership-repair.ts), one change per run. A difference seen
   * in this host's view is checked again on an up-to-date one first. It resolves true when
   * there was nothing to repair here.
   */
  async #repair(s: RegistryState, r: ReplicaRecord): Promise<boolean> {
    const a = this.#agent
    const st = await a.host.status(r.shardId)
    if (st.leaderId !== st.replicaId || !repairOf(s, r.shardId, st.membership, r.id)) return true
    await a.catchUp()
    const fix = repairOf(a.registry(), r.shardId, st.membership, r.id)
    if (!fix) return true
    a.log.info({ shardId: r.shardId, ...fix }, 'membership repaired')
    const o = { timeoutMs: a.timeoutMs }
    if (fix.op === 'promote') await a.host.promote(r.shardId, fix.replicaId, o)
    else if (fix.op === 'remove') await a.host.removeReplica(r.shardId, fix.replicaId, o)
    else {
      const rec = a.registry().replicas.get(fix.replicaId)
      const address = (rec && a.registry().hosts.get(rec.hostId)?.raftAddress) ?? ''
      await a.host.addNonVoting(r.shardId, fix.replicaId, address, o)
    }
    return false
  }

  /** #retire takes a replica out of its shard, stops it, deletes its data and its record. */
  async #retire(s: RegistryState, r: ReplicaRecord): Promise<void> {
    const a = this.#agent
    const shard = s.shards.get(r.shardId)
    const others = s.replicasOf(r.shardId).filter((x) => x.id !== r.id && x.status === 'active')
    if (shard?.status !== 'deleting' && others.length > 0) {
      // Only this replica goes: the shard lives on without it, so it must leave the
      // membership first (asked of a member that stays); until that works, nothing is dropped.
      // A leader hands its leadership over first, so that writes under way are not cut off.
      await this.#handOff(r, others)
      await this.#leave(s, r, others)
    }
    await this.#drop(r.shardId)
    await a.propose({ op: 'replica.delete', id: r.id })
  }

  /**
   * #handOff, when this replica leads its shard, hands the leadership to a voter that stays
   * and waits (a little) until it took over; a transfer that does not happen leaves the
   * removal to go on as before.
   */
  async #handOff(r: ReplicaRecord, others: ReplicaRecord[]): Promise<void> {
    const host = this.#agent.host
    const st = await host.status(r.shardId).catch(() => undefined)
    if (!st || st.leaderId !== st.replicaId) return
    const to = others.find((x) => !x.nonVoting && st.membership.voters.includes(x.id))
    if (!to) return
    await host.transferLeader(r.shardId, to.id).catch(() => {})
    for (let i = 0; i < 20 && !this.#stopped; i++) {
      const now = await host.status(r.shardId).catch(() => undefined)
      if (!now || now.leaderId !== now.replicaId) return
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  /** #leave asks a member that stays to take the replica out of the shard's membership. */
  async #leave(s: RegistryState, r: ReplicaRecord, others: ReplicaRecord[]): Promise<void> {
    const a = this.#agent
    const change = { shardId: r.shardId, replicaId: r.id }
    await firstOf(
      apiAddresses(s, others),
      (addr) => a.bus.removeReplica(addr, change, { timeoutMs: a.timeoutMs }),
      anyFailure,
      () =>
        new ZongziError(
          'ERR_UNAVAILABLE',
          `no member of shard ${r.shardId} could remove replica ${r.id}`,
        ),
    )
  }

  async #drop(shardId: number): Promise<void> {
    const a = this.#agent
    this.#running.delete(shardId)
    await a.host.stopReplica(shardId).catch(() => {})
    if (a.host.storedReplicas().some((x) => x.shardId === shardId)) a.host.removeData(shardId)
    a.log.info({ shardId }, 'replica removed')
  }
}

/**
 * seenKey is what of a shard's record tells that it changed: its update index (which moves
 * with its replicas too) and the leader on record.
 */
const seenKey = (sh: ShardRecord) => `${sh.updated}/${sh.leader}/${sh.term}`

/**
 * anyFailure lets a membership change move on to another member after any failure: asking
 * again is safe, because the change is reconciled from the registry until it shows.
 */
const anyFailure = () => true
