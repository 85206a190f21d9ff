// checkStateMachine: a user's state machine run the way Raft runs it, without a cluster.
// Several replicas are fed the same log in batches of different sizes, and between batches
// restarted (replayed from `open()`'s index or their last snapshot), snapshotted and brought
// forward by another replica's snapshot; every entry's result, every replica's state at
// checkpoints (its snapshot and the answers to queries) must agree.
import type { Entry, StateMachineFactory } from '../binding/state-machine'
import { Traps } from './determinism'
import { Random } from './random'
import { ContractError, type Result, type Snapshot, TestReplica } from './replica'
import {
  CheckError,
  type DivergenceKind,
  describeUses,
  firstDifference,
  sameResult,
  show,
  showResult,
} from './report'
import { saveToBuffer } from './streams'

/** FaultRates are the chances, after each batch a replica applies, of each fault. */
export interface FaultRates {
  /** Restart: close, make it again with the factory, replay (default 0.05). */
  restart: number
  /** Save a snapshot, which a later restart of an in-memory one recovers from (default 0.1). */
  save: number
  /** Install the snapshot of a replica further ahead, skipping entries (default 0.05). */
  install: number
  /** Call a persistent state machine's `sync` (default 0.2). */
  sync: number
}

/** CheckOptions describe a check of a state machine. */
export interface CheckOptions {
  /** Makes a replica's state machine; called again at each restart of the replica. */
  factory: StateMachineFactory
  /** Makes the command of entry `index` (from 1); the same seed gives the same log. */
  commands: (random: Random, index: number) => Uint8Array
  /** Queries asked of every replica at each checkpoint; their answers must agree. */
  queries?: (random: Random) => Uint8Array[]
  /** The seed of the log, the batches and the faults (default 1). */
  seed?: number
  /** How many entries the log holds (default 300). */
  entries?: number
  /** How many replicas apply it (default 3). */
  replicas?: number
  /** The largest batch handed to `update` (default 16). */
  maxBatch?: number
  /** Entries between checkpoints, where states are compared (default a tenth of the log). */
  checkEvery?: number
  /** Chances of each fault after a batch. */
  faults?: Partial<FaultRates>
  /** Compare replicas' snapshots byte for byte at checkpoints (default true). */
  compareSnapshots?: boolean
  /** Accept calls of clocks and random sources in `update` that change nothing (default false). */
  allowNondeterminism?: boolean
  /** The shard id handed to the factory (default 1). */
  shardId?: number
}

/** CheckReport says what a check that passed did. */
export interface CheckReport {
  /** The seed it ran with. */
  seed: number
  /** Entries in the log. */
  entries: number
  /** Batches applied, replays included. */
  batches: number
  /** Faults injected, by kind. */
  faults: Record<keyof FaultRates, number>
  /** States compared (replica × checkpoint). */
  comparisons: number
}

const DEFAULT_FAULTS: FaultRates = { restart: 0.05, save: 0.1, install: 0.05, sync: 0.2 }

/** Reference is the first replica's answer at an index, which the others must match. */
interface Reference<T> {
  replicaId: number
  value: T
}

/** State is what a replica holds at a checkpoint: its snapshot and its answers to queries. */
interface State {
  snapshot?: Buffer
  answers: Array<Buffer | undefined>
}

/**
 * checkStateMachine runs a state machine on several replicas fed the same seeded log, with
 * restarts, snapshots and snapshot installs at random points, and resolves with a report if
 * every result and state agrees. Otherwise it rejects with a CheckError whose message names
 * the first entry at which replicas differ, how each got there, and the first difference; a
 * call of `Date.now()`, `Math.random()` or another clock or random source inside `update`
 * is reported even when it changes nothing, unless `allowNondeterminism` is set.
 */
export async function checkStateMachine(o: CheckOptions): Promise<CheckReport> {
  const run = new Check(o)
  try {
    return await run.run()
  } finally {
    await run.closeAll()
  }
}

/** Check is one run of checkStateMachine. */
class Check {
  readonly seed: number
  readonly log: Entry[]
  readonly traps = new Traps()
  readonly faults: FaultRates
  readonly random: Random
  readonly checkEvery: number
  readonly replicas: TestReplica[]
  readonly results = new Map<number, Reference<Result>>()
  readonly states = new Map<number, Reference<State>>()
  readonly report: CheckReport

  constructor(readonly o: CheckOptions) {
    this.seed = o.seed ?? 1
    const n = o.entries ?? 300
    const commands = new Random(this.seed)
    this.log = Array.from({ length: n }, (_, i) => ({
      index: i + 1,
      data: Buffer.from(o.commands(commands, i + 1)),
    }))
    this.random = new Random(this.seed ^ 0x5eed)
    this.faults = { ...DEFAULT_FAULTS, ...o.faults }
    this.checkEvery = Math.max(1, o.checkEvery ?? Math.ceil(n / 10))
    this.replicas = Array.from({ length: o.replicas ?? 3 }, (_, i) => this.#replica(i + 1))
    this.report = {
      seed: this.seed,
      entries: n,
      batches: 0,
      faults: { restart: 0, save: 0, install: 0, sync: 0 },
      comparisons: 0,
    }
  }

  #replica(replicaId: number): TestReplica {
    const f: StateMachineFactory = this.o.factory
    return new TestReplica(replicaId, this.o.shardId ?? 1, f, this.traps, this.random.fork())
  }

  async run(): Promise<CheckReport> {
    const end = this.log.length
    for (const r of this.replicas) await this.#guard(r, () => r.start())
    for (;;) {
      const behind = this.replicas.filter((r) => r.applied < end)
      if (behind.length === 0) break
      const r = this.random.pick(behind)
      await this.#guard(r, () => this.#step(r))
    }
    if (this.traps.uses.length > 0 && !this.o.allowNondeterminism) {
      const u = this.traps.uses[0]
      this.#fail(
        'nondeterminism',
        u.from,
        [u.replicaId],
        [
          'update() called a clock or random source; replicas agreed this time, but may not:',
          ...describeUses(this.traps.uses),
        ],
      )
    }
    return this.report
  }

  /** #step applies one batch to `r` (stopping at the next checkpoint), then maybe a fault. */
  async #step(r: TestReplica): Promise<void> {
    const next = (Math.floor(r.applied / this.checkEvery) + 1) * this.checkEvery
    const to = Math.min(
      this.log.length,
      next,
      r.applied + 1 + this.random.int(this.o.maxBatch ?? 16),
    )
    const batch = this.log.slice(r.applied, to).map((e) => ({ ...e, data: Buffer.from(e.data) }))
    const results = await r.apply(batch)
    this.report.batches++
    for (let i = 0; i < batch.length; i++) this.#compareResult(r, batch[i].index, results[i])
    if (r.applied % this.checkEvery === 0 || r.applied === this.log.length) {
      await this.#compareState(r)
    }
    await this.#fault(r)
  }

  async #fault(r: TestReplica): Promise<void> {
    const f = this.faults
    if (r.persistent && this.random.chance(f.sync)) {
      await r.sync()
      this.report.faults.sync++
    }
    if (this.random.chance(f.save)) {
      await r.save()
      this.report.faults.save++
    }
    if (this.random.chance(f.install)) {
      const ahead = this.replicas.filter((x) => x.applied > r.applied)
      if (ahead.length > 0) {
        const from = this.random.pick(ahead)
        const s: Snapshot = { index: from.applied, bytes: await saveToBuffer(from.sm) }
        await r.install(s, from.replicaId)
        this.report.faults.install++
      }
    }
    if (this.random.chance(f.restart)) {
      await r.close()
      await r.start()
      this.report.faults.restart++
    }
  }

  #compareResult(r: TestReplica, index: number, result: Result): void {
    const ref = this.results.get(index)
    if (!ref) return void this.results.set(index, { replicaId: r.replicaId, value: result })
    if (sameResult(ref.value, result)) return
    this.#fail(
      'result',
      index,
      [ref.replicaId, r.replicaId],
      [
        `the result of entry ${index} differs:`,
        `  replica ${ref.replicaId}: ${showResult(ref.value)}`,
        `  replica ${r.replicaId}: ${showResult(result)}`,
        `  command of entry ${index}: ${show(this.log[index - 1].data)}`,
      ],
    )
  }

  async #state(r: TestReplica): Promise<State> {
    const snapshot = this.o.compareSnapshots === false ? undefined : await saveToBuffer(r.sm)
    const asked = this.o.queries?.(new Random(this.seed + r.applied)) ?? []
    const answers: Array<Buffer | undefined> = []
    for (const q of asked) {
      const a = await r.sm.query(Buffer.from(q))
      answers.push(a === undefined || a === null ? undefined : Buffer.from(a))
    }
    return { snapshot, answers }
  }

  async #compareState(r: TestReplica): Promise<void> {
    const index = r.applied
    const state = await this.#state(r)
    this.report.comparisons++
    const ref = this.states.get(index)
    if (!ref) return void this.states.set(index, { replicaId: r.replicaId, value: state })
    const a = ref.value
    const pair = [ref.replicaId, r.replicaId]
    const asked = this.o.queries?.(new Random(this.seed + index)) ?? []
    for (let i = 0; i < a.answers.length; i++) {
      const [x, y] = [a.answers[i], state.answers[i]]
      if (x === y || (x && y && x.equals(y))) continue
      const first = await this.#pinpoint(index)
      this.#fail('query', first ?? index, pair, [
        `after entry ${index}, the answer to ${show(Buffer.from(asked[i]))} differs:`,
        `  replica ${pair[0]}: ${show(x)}`,
        `  replica ${pair[1]}: ${show(y)}`,
        ...this.#pinpointed(first, index),
      ])
    }
    if (a.snapshot && state.snapshot && !a.snapshot.equals(state.snapshot)) {
      const first = await this.#pinpoint(index)
      this.#fail('state', first ?? index, pair, [
        `after entry ${index}, the snapshots of replicas ${pair[0]} and ${pair[1]} differ at`,
        `    ${firstDifference(a.snapshot, state.snapshot)}`,
        ...this.#pinpointed(first, index),
      ])
    }
  }

  #pinpointed(first: number | undefined, index: number): string[] {
    if (first === undefined) {
      return [
        `  two fresh replicas fed entries 1–${index} one at a time agree: the difference`,
        '  comes from what happened to a replica (restart, snapshot, install) — see below',
      ]
    }
    return [
      `  two fresh replicas fed the same entries one at a time first differ after entry ${first}`,
      `  (command ${show(this.log[first - 1].data)})`,
    ]
  }

  /**
   * #pinpoint feeds two fresh replicas the log one entry at a time up to `upTo`, comparing
   * their snapshots (or, without them, their answers) after each, and returns the first index
   * after which they differ: where non-determinism enters. Undefined if they agree throughout.
   */
  async #pinpoint(upTo: number): Promise<number | undefined> {
    const n = this.replicas.length
    const pair = [this.#replica(n + 1), this.#replica(n + 2)]
    try {
      for (const p of pair) await p.start()
      for (let i = 0; i < upTo; i++) {
        const states: State[] = []
        const results: Result[] = []
        for (const p of pair) {
          results.push(
            (await p.apply([{ ...this.log[i], data: Buffer.from(this.log[i].data) }]))[0],
          )
          states.push(await this.#state(p))
        }
        const [a, b] = states
        const same =
          sameResult(results[0], results[1]) &&
          (!a.snapshot || !b.snapshot || a.snapshot.equals(b.snapshot)) &&
          a.answers.every((x, j) => {
            const y = b.answers[j]
            return x === y || (x !== undefined && y !== undefined && x.equals(y))
          })
        if (!same) return i + 1
      }
      return undefined
    } catch {
      return undefined
    } finally {
      for (const p of pair) await p.close().catch(() => {})
    }
  }

  /** #guard turns a broken contract (or a throw from the state machine) into a report. */
  async #guard(r: TestReplica, f: () => Promise<void>): Promise<void> {
    try {
      await f()
    } catch (e) {
      if (e instanceof CheckError) throw e
      const what = e instanceof ContractError ? 'broke the contract' : `threw in ${r.calling}`
      const message = e instanceof Error ? e.message : String(e)
      this.#fail(
        'contract',
        r.applied + 1,
        [r.replicaId],
        [`replica ${r.replicaId} ${what}: ${message}`],
      )
    }
  }

  #fail(kind: DivergenceKind, index: number, replicas: number[], lines: string[]): never {
    const involved = [...new Set(replicas)]
    const report = [
      `state machine check failed (seed ${this.seed}, ${this.log.length} entries): ${kind}`,
      ...lines,
      ...involved.map(
        (id) => `  replica ${id}: ${this.replicas[id - 1]?.story() ?? 'a fresh replica'}`,
      ),
      ...(kind !== 'nondeterminism' && this.traps.uses.length > 0
        ? ['calls of clocks and random sources in update():', ...describeUses(this.traps.uses)]
        : []),
      `repeat it with seed: ${this.seed}`,
    ].join('\n')
    throw new CheckError(report, {
      kind,
      seed: this.seed,
      index,
      replicas: involved,
      uses: [...this.traps.uses],
    })
  }

  async closeAll(): Promise<void> {
    for (const r of this.replicas) await r.close().catch(() => {})
  }
}
