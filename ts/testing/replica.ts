// One replica of a check: a user's state machine, the index it has applied, and what the
// check did to it (restarts, snapshots, installs), kept as a history for reports.
import {
  type ApplyResult,
  type Entry,
  isPersistent,
  type StateMachine,
  type StateMachineFactory,
} from '../binding/state-machine'
import type { Traps } from './determinism'
import type { Random } from './random'
import { chunked, saveToBuffer } from './streams'

/** Result is an entry's result as a caller receives it: data is bytes, empty when absent. */
export interface Result {
  value: number
  data: Buffer
}

/** Snapshot is a state machine's saved state and the index it holds the state after. */
export interface Snapshot {
  index: number
  bytes: Buffer
}

/** ContractError is a state machine breaking its contract (not a divergence between replicas). */
export class ContractError extends Error {}

/** TestReplica runs one replica's state machine as the engine would. */
export class TestReplica {
  sm!: StateMachine
  /** The index of the last entry applied. */
  applied = 0
  /** The index `sync` last made durable (a persistent state machine's). */
  synced = 0
  /** The snapshot the engine would recover an in-memory state machine from after a restart. */
  saved: Snapshot | undefined
  /** What happened to this replica, in order, for reports. */
  readonly history: string[] = []
  /** The state machine's method running now, or last: named when it throws. */
  calling = ''
  #appliedFrom = 1

  constructor(
    readonly replicaId: number,
    readonly shardId: number,
    readonly factory: StateMachineFactory,
    readonly traps: Traps,
    readonly random: Random,
  ) {}

  get persistent(): boolean {
    return isPersistent(this.sm)
  }

  /**
   * start makes the state machine (again): a persistent one opens its store and is replayed
   * from the index `open` returns; an in-memory one recovers from its last saved snapshot.
   */
  async start(): Promise<void> {
    this.#note()
    const first = this.sm === undefined
    this.calling = 'the factory'
    this.sm = this.factory(this.shardId, this.replicaId)
    if (isPersistent(this.sm)) {
      this.calling = 'open()'
      const opened = await this.sm.open()
      if (!Number.isSafeInteger(opened) || opened < 0) {
        throw new ContractError(`open() returned ${opened}, not an index`)
      }
      if (opened > this.applied) {
        throw new ContractError(`open() returned ${opened}; only ${this.applied} were applied`)
      }
      if (opened < this.synced) {
        throw new ContractError(
          `open() returned ${opened}, but sync() had made ${this.synced} durable`,
        )
      }
      if (!first) this.history.push(`restarted: open() returned ${opened}`)
      this.applied = opened
    } else if (this.saved) {
      this.calling = 'recoverFromSnapshot()'
      await this.sm.recoverFromSnapshot(chunked(this.saved.bytes, this.random), this.saved.index)
      this.history.push(`restarted from its snapshot at ${this.saved.index}`)
      this.applied = this.saved.index
    } else {
      if (!first) this.history.push('restarted with no snapshot: replaying from 1')
      this.applied = 0
    }
    this.#appliedFrom = this.applied + 1
  }

  /** apply hands `entries` (the next ones) to `update` and returns their results. */
  async apply(entries: Entry[]): Promise<Result[]> {
    const from = entries[0].index
    const to = entries[entries.length - 1].index
    this.calling = 'update()'
    const results = await this.traps.during(this.replicaId, from, to, () => this.sm.update(entries))
    if (!Array.isArray(results) || results.length !== entries.length) {
      const n = Array.isArray(results) ? results.length : typeof results
      throw new ContractError(
        `update() of entries ${from}–${to} returned ${n} results for ${entries.length} entries`,
      )
    }
    this.applied = to
    return results.map((r: ApplyResult, i) => {
      if (!r || typeof r.value !== 'number') {
        throw new ContractError(`update() returned no { value } for entry ${from + i}`)
      }
      return { value: r.value, data: Buffer.from(r.data ?? []) }
    })
  }

  /** save takes a snapshot now and keeps it for a later restart. */
  async save(): Promise<Snapshot> {
    this.calling = 'saveSnapshot()'
    const snapshot = { index: this.applied, bytes: await saveToBuffer(this.sm) }
    this.saved = snapshot
    this.#note()
    this.history.push(`saved a snapshot at ${snapshot.index}`)
    this.#appliedFrom = this.applied + 1
    return snapshot
  }

  /** install recovers this replica from another's snapshot, as a lagging follower would. */
  async install(s: Snapshot, from: number): Promise<void> {
    this.#note()
    this.calling = 'recoverFromSnapshot()'
    await this.sm.recoverFromSnapshot(chunked(s.bytes, this.random), s.index)
    this.history.push(`installed replica ${from}'s snapshot at ${s.index}`)
    this.applied = s.index
    // The engine keeps the installed snapshot: a restart recovers from it.
    this.saved = s
    // A persistent store must hold the installed state durably: the log before it is gone.
    this.synced = s.index
    this.#appliedFrom = this.applied + 1
  }

  /** sync makes a persistent state machine's applied entries durable. */
  async sync(): Promise<void> {
    if (!isPersistent(this.sm)) return
    this.calling = 'sync()'
    await this.sm.sync()
    this.synced = this.applied
  }

  /** close closes the state machine, as a stopping replica does. */
  async close(): Promise<void> {
    this.calling = 'close()'
    await this.sm?.close?.()
  }

  /** story is the replica's history, applied ranges included, on one line. */
  story(): string {
    this.#note()
    this.#appliedFrom = this.applied + 1
    return this.history.join(' · ') || 'nothing applied'
  }

  /** #note records the entries applied since the last event. */
  #note(): void {
    if (this.applied >= this.#appliedFrom) {
      this.history.push(`applied ${this.#appliedFrom}–${this.applied}`)
    }
  }
}
