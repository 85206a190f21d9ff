// HostController: on every host, makes the engine run the replicas the registry assigns to
// this host — start (bootstrap, join or restart), promote, and stop and delete what the
// registry no longer wants.
import { ZongziError } from '../../binding/errors'
import type { Host } from '../../binding/host'
import type { StateMachineFactory } from '../../binding/state-machine'
import type { BusClient } from '../../bus/client'
import type { Logger } from './logger'
import type { Accepted, Command } from '../registry/records'
import type { ReplicaRecord, ShardRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'
import { repairOf } from './membership-repair'
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
  >
  readonly bus: Pick<BusClient, 'addReplica' | 'removeReplica'>
  /** registry is this host's current registry snapshot. */
  registry(): RegistryState
  /** catchUp brings this host's registry up to date (a linearizable read of shard 0). */
  catchUp(): Promise<void>
  /** factory returns the registered factory of a state machine type. */
  factory(type: string): StateMachineFactory | undefined
  propose(cmd: Command): Promise<Accepted>
}

/** HostController reconciles this host's replicas with the registry. Runs are serialised. */
export class HostController {
  readonly #agent: HostControllerContext
  /** Shards with a replica this controller started, and whether it is active yet. */
  readonly #running = new Map<number, { replicaId: number; active: boolean }>()
  #busy: Promise<void> | undefined
  #again = false
  #stopped = false

  constructor(agent: HostControllerContext) {
    this.#agent = agent
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
        try {
          await this.#reconcile(this.#agent.registry())
        } catch (e) {
          this.#agent.log.warn('host controller', { error: String(e) })
        }
      } while (this.#again && !this.#stopped)
      this.#busy = undefined
    })()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await this.#busy
  }

  async #reconcile(s: RegistryState): Promise<void> {
    const me = this.#agent.hostId
    const mine = s.replicasOn(me).filter((r) => r.shardId !== 0)
    // First, so that a replica started below never finds an older one's data in its place.
    this.#purge(mine)
    for (const r of mine) {
      if (this.#stopped) return
      const shard = s.shards.get(r.shardId)
      if (!shard) continue
      try {
        const running = this.#running.get(r.shardId)
        if (r.status === 'deleting') await this.#retire(s, r)
        else if (!running) await this.#start(s, shard, r)
        else if (!running.active) await this.#activate(r)
        else await this.#repair(s, r)
      } catch (e) {
        this.#agent.log.debug('replica not reconciled yet', {
          shardId: r.shardId,
          replicaId: r.id,
          error: String(e),
        })
      }
    }
    // Replicas running here that the registry no longer lists: stop them and delete their data.
    for (const [shardId, run] of this.#running) {
      if (mine.some((r) => r.shardId === shardId && r.id === run.replicaId)) continue
      await this.#drop(shardId)
    }
  }

  /**
   * #purge deletes the data of replicas on disk that the registry no longer lists for this
   * host: those replaced elsewhere while it was down. This host stored a replica only after
   * its registry listed it, and its registry only moves forward, so one it does not list now
   * was deleted.
   */
  #purge(mine: ReplicaRecord[]): void {
    const a = this.#agent
    for (const x of a.host.storedReplicas()) {
      if (x.shardId === 0 || this.#running.has(x.shardId)) continue
      if (mine.some((r) => r.shardId === x.shardId && r.id === x.replicaId)) continue
      a.host.removeData(x.shardId)
      a.log.info('data of a replaced replica deleted', { ...x })
    }
  }

  async #start(s: RegistryState, shard: ShardRecord, r: ReplicaRecord): Promise<void> {
    const a = this.#agent
    const factory = a.factory(shard.type)
    if (!factory) return // placement only picks hosts that registered the type
    const stored = a.host.storedReplicas().find((x) => x.shardId === r.shardId)
    if (stored && stored.replicaId === r.id) {
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
    a.log.info('replica started', { shardId: r.shardId, replicaId: r.id })
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
   * in this host's view is checked again on an up-to-date one first.
   */
  async #repair(s: RegistryState, r: ReplicaRecord): Promise<void> {
    const a = this.#agent
    const st = await a.host.status(r.shardId)
    if (st.leaderId !== st.replicaId || !repairOf(s, r.shardId, st.membership, r.id)) return
    await a.catchUp()
    const fix = repairOf(a.registry(), r.shardId, st.membership, r.id)
    if (!fix) return
    a.log.info('membership repaired', { shardId: r.shardId, ...fix })
    const o = { timeoutMs: a.timeoutMs }
    if (fix.op === 'promote') await a.host.promote(r.shardId, fix.replicaId, o)
    else if (fix.op === 'remove') await a.host.removeReplica(r.shardId, fix.replicaId, o)
    else {
      const rec = a.registry().replicas.get(fix.replicaId)
      const address = (rec && a.registry().hosts.get(rec.hostId)?.raftAddress) ?? ''
      await a.host.addNonVoting(r.shardId, fix.replicaId, address, o)
    }
  }

  /** #retire takes a replica out of its shard, stops it, deletes its data and its record. */
  async #retire(s: RegistryState, r: ReplicaRecord): Promise<void> {
    const a = this.#agent
    const shard = s.shards.get(r.shardId)
    const others = s.replicasOf(r.shardId).filter((x) => x.id !== r.id && x.status === 'active')
    if (shard?.status !== 'deleting' && others.length > 0) {
      // Only this replica goes: the shard lives on without it, so it must leave the
      // membership first (asked of a member that stays); until that works, nothing is dropped.
      await this.#leave(s, r, others)
    }
    await this.#drop(r.shardId)
    await a.propose({ op: 'replica.delete', id: r.id })
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
    a.log.info('replica removed', { shardId })
  }
}

/** apiAddresses lists the bus addresses of the hosts of `replicas` that the registry knows. */
function apiAddresses(s: RegistryState, replicas: ReplicaRecord[]): string[] {
  return replicas.flatMap((m) => {
    const h = s.hosts.get(m.hostId)
    return h ? [h.apiAddress] : []
  })
}

/**
 * anyFailure lets a membership change move on to another member after any failure: asking
 * again is safe, because the change is reconciled from the registry until it shows.
 */
const anyFailure = () => true
