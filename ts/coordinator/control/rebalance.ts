// Rebalancing: which replicas move from the fullest hosts to the emptiest, when a host joins
// or the spread drifts. A move is carried out by the shard controller through the steps of a
// replacement (add non-voting, catch up, promote, remove the old one).
import type { HostRecord, ShardRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'
import { capacityOf, place, PlacementError } from './placement'

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
