// Rebalancing: which replicas move from the fullest hosts to the emptiest, when a host joins
// or the spread drifts. A move is carried out by the shard controller through the steps of a
// replacement (add non-voting, catch up, promote, remove the old one).
import type { HostRecord, ShardRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'
import type { Logger } from './logger'
import { capacityOf, ERROR_TAG, place, PlacementError, replicaLoad } from './placement'

/** Move is one replica of a shard going from one host to another. */
export interface Move {
  shardId: number
  from: string
  to: string
}

/** RebalanceOptions say when to rebalance and how much at once. */
export interface RebalanceOptions {
  /**
   * How far above (or below) the mean a host's replicas per unit of capacity may drift before
   * replicas move: 0.2 starts moving when a host holds more than 1.2 times the mean or less
   * than the mean over 1.2 (a host that just joined holds none).
   */
  threshold: number
  /** Moves under way at once, at most. */
  maxMoves: number
}

/** Targets are the hosts replicas may move between: active, staying, with a shard type. */
export function targets(s: RegistryState, leaving: (h: HostRecord) => boolean): HostRecord[] {
  return [...s.hosts.values()].filter(
    (h) => h.status === 'active' && !leaving(h) && h.shardTypes.length > 0,
  )
}

/**
 * drifted tells whether the hosts' loads (replicas per unit of capacity) are past the
 * threshold from their mean: one host above mean × (1 + threshold), or below the mean over it.
 */
export function drifted(
  hosts: readonly HostRecord[],
  load: ReadonlyMap<string, number>,
  threshold: number,
): boolean {
  let total = 0
  let capacity = 0
  for (const h of hosts) {
    total += load.get(h.id) ?? 0
    capacity += capacityOf(h)
  }
  if (total === 0) return false
  const mean = total / capacity
  return hosts.some((h) => {
    const u = (load.get(h.id) ?? 0) / capacityOf(h)
    return u > mean * (1 + threshold) || u < mean / (1 + threshold)
  })
}

/**
 * improves tells whether one replica moving from `from` to `to` evens the load out: `to`,
 * with it, still holds less per unit of capacity than `from` did.
 */
function improves(from: HostRecord, to: HostRecord, load: ReadonlyMap<string, number>): boolean {
  return ((load.get(to.id) ?? 0) + 1) / capacityOf(to) < (load.get(from.id) ?? 0) / capacityOf(from)
}

/** CANDIDATES bounds the shards of one host a plan tries to move, so a stuck plan stays cheap. */
const CANDIDATES = 64

/**
 * nextMove picks one replica to move off the fullest host that has one that can go: a shard
 * at rest (`settled`) whose placement, without that host, picks one new host that is emptier
 * by more than the replica. The placement's rules (type, tags, vary) still hold, and `load`
 * (counting moves under way) decides among the hosts they allow. Undefined when none.
 */
export function nextMove(
  s: RegistryState,
  hosts: readonly HostRecord[],
  load: ReadonlyMap<string, number>,
  leaving: (h: HostRecord) => boolean,
  settled: (sh: ShardRecord) => boolean,
): Move | undefined {
  const u = (h: HostRecord) => (load.get(h.id) ?? 0) / capacityOf(h)
  const sorted = [...hosts].sort((a, b) => u(b) - u(a) || a.id.localeCompare(b.id))
  const emptiest = sorted[sorted.length - 1]
  for (const from of sorted) {
    if (!emptiest || !improves(from, emptiest, load)) return undefined
    let tried = 0
    for (const r of s.replicasOn(from.id)) {
      if (r.shardId === 0 || tried >= CANDIDATES) continue
      const sh = s.shards.get(r.shardId)
      if (!sh || !settled(sh)) continue
      tried++
      const move = moveOf(s, sh, from, load, leaving)
      if (move && improves(from, move.to, load)) {
        return { shardId: sh.id, from: from.id, to: move.to.id }
      }
    }
  }
  return undefined
}

/** moveOf places `sh` with `from` leaving: the one new host it picks, if it picks one. */
function moveOf(
  s: RegistryState,
  sh: ShardRecord,
  from: HostRecord,
  load: ReadonlyMap<string, number>,
  leaving: (h: HostRecord) => boolean,
): { to: HostRecord } | undefined {
  const current = new Set(s.replicasOf(sh.id).map((r) => r.hostId))
  try {
    const wants = place(s, sh, (h) => h.id === from.id || leaving(h), load)
    const fresh = wants.filter((w) => !current.has(w.hostId))
    const kept = wants.length - fresh.length
    // Exactly the replica on `from` replaced, the others kept where they are.
    if (fresh.length !== 1 || kept !== current.size - 1) return undefined
    const to = s.hosts.get(fresh[0].hostId)
    return to ? { to } : undefined
  } catch (e) {
    if (e instanceof PlacementError) return undefined
    throw e
  }
}

/**
 * Rebalancer keeps the moves of the default shard controller: it plans them while the spread
 * is past the threshold (and then until no move evens it more), up to `maxMoves` under way, and
 * ends them once the replica is off its old host. The shard controller carries each out by
 * placing its shard as if the old host were leaving (`get`).
 */
export class Rebalancer {
  /** Moves under way, by shard. */
  readonly #moves = new Map<number, Move>()
  /** Rebalancing started (the spread drifted) and goes on until no move evens it more. */
  #rebalancing = false
  /**
   * The spread drifted but no move could even it (placements allow none): not looked for
   * again until the next full pass, so that every change does not pay for a search.
   */
  #stuck = false

  constructor(
    readonly log: Logger,
    readonly threshold: number,
    readonly maxMoves: number,
    readonly onMove: (m: Move) => void,
  ) {}

  /** get is the shard's move under way, if any. */
  get(shardId: number): Move | undefined {
    return this.#moves.get(shardId)
  }

  /** drop forgets the shard's move (given up, or its shard deleted). */
  drop(shardId: number): void {
    this.#moves.delete(shardId)
  }

  /**
   * projected is the replicas per host once the moves under way are done; it ends the moves
   * that are (the replica is off its old host), and those of shards gone.
   */
  projected(s: RegistryState): Map<string, number> {
    const load = replicaLoad(s)
    for (const m of [...this.#moves.values()]) {
      if (!s.shards.has(m.shardId)) {
        this.#moves.delete(m.shardId)
        continue
      }
      const on = new Set(s.replicasOf(m.shardId).map((r) => r.hostId))
      if (!on.has(m.from)) {
        this.#moved(m, on)
        continue
      }
      if (!on.has(m.to)) load.set(m.to, (load.get(m.to) ?? 0) + 1)
      load.set(m.from, (load.get(m.from) ?? 1) - 1)
    }
    return load
  }

  /** #moved ends a move: the replica is off its old host, and on `on`. */
  #moved(m: Move, on: ReadonlySet<string>): void {
    this.#moves.delete(m.shardId)
    const to = on.has(m.to) ? m.to : ([...on].find((h) => h !== m.from) ?? m.to)
    const done = { ...m, to }
    this.log.info({ ...done }, 'rebalance: replica moved')
    this.onMove(done)
  }

  /**
   * plan starts moves and returns their shards, counting them in `load`. It is worked out only
   * when the shard controller runs on a change, or on a full pass (`full`), which also looks
   * again after a search that found nothing: an idle, balanced cluster costs nothing here.
   */
  plan(
    s: RegistryState,
    leaving: (h: HostRecord) => boolean,
    load: Map<string, number>,
    full: boolean,
  ): number[] {
    const hosts = targets(s, leaving)
    if (full) this.#stuck = false
    if (!this.#rebalancing && !this.#stuck && drifted(hosts, load, this.threshold))
      this.#rebalancing = true
    const out: number[] = []
    while (this.#rebalancing && this.#moves.size < this.maxMoves) {
      const settled = (sh: ShardRecord) => !this.#moves.has(sh.id) && atRest(s, sh)
      const m = nextMove(s, hosts, load, leaving, settled)
      if (!m) {
        if (this.#moves.size === 0) {
          this.#stuck = drifted(hosts, load, this.threshold)
          this.#rebalancing = false
        }
        break
      }
      this.#moves.set(m.shardId, m)
      load.set(m.to, (load.get(m.to) ?? 0) + 1)
      load.set(m.from, (load.get(m.from) ?? 1) - 1)
      this.log.info({ ...m }, 'rebalance: moving a replica')
      out.push(m.shardId)
    }
    return out
  }
}

/** atRest tells whether a shard may move: every replica active, no placement error. */
function atRest(s: RegistryState, sh: ShardRecord): boolean {
  if (sh.status === 'deleting' || sh.tags[ERROR_TAG] !== undefined) return false
  const p = sh.placement ?? {}
  if (!p.members && !p.groups) return false
  return s.replicasOf(sh.id).every((r) => r.status === 'active')
}
