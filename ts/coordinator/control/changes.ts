// Changes: what a registry change touched, so that controllers reconcile that and not every
// shard. The registry never changes a record in place (a command that changes one writes a
// new object, see writer.ts), and a table no command changed is the same map in the next
// state: a record that is the same object in both states did not change.
import type { PMap, PMapKey } from '../registry/pmap'
import type { HostRecord, ReplicaRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'

/** Touched is what changed between two registry states. */
export interface Touched {
  /** Shards whose record, or the record of one of whose replicas, was added, changed or gone. */
  shards: Set<number>
  /** Hosts whose record was added, changed or gone. */
  hosts: Set<string>
}

/**
 * changed calls `on` with the old and new value (either undefined when absent) of every key
 * whose value is not the same object in both maps: the registry's tables skip what the two
 * share, so this costs about the changes. Nothing when the maps are the same map.
 */
function changed<K extends PMapKey, V>(
  before: PMap<K, V>,
  after: PMap<K, V>,
  on: (was: V | undefined, now: V | undefined) => void,
): void {
  if (before === after) return
  for (const k of after.changes(before)) on(before.get(k), after.get(k))
}

/**
 * touched lists the shards and hosts whose records differ between two states, comparing
 * records by identity, and nothing when no table changed.
 */
export function touched(before: RegistryState, after: RegistryState): Touched {
  const out: Touched = { shards: new Set(), hosts: new Set() }
  changed(before.shards, after.shards, (was, now) => out.shards.add((now ?? was)?.id ?? 0))
  changed(before.replicas, after.replicas, (was, now) => {
    if (was) out.shards.add(was.shardId)
    if (now) out.shards.add(now.shardId)
  })
  changed(before.hosts, after.hosts, (was, now) => out.hosts.add((now ?? was)?.id ?? ''))
  return out
}

/**
 * placesAnew tells whether a host's record changed in what placement reads of it (it came or
 * went, or its status, tags or types changed), not only in when it was last updated.
 */
export function placesAnew(a: HostRecord | undefined, b: HostRecord | undefined): boolean {
  if (!a || !b) return a !== b
  return (
    a.status !== b.status ||
    a.since !== b.since ||
    a.shardTypes.join() !== b.shardTypes.join() ||
    JSON.stringify(Object.entries(a.tags).sort()) !== JSON.stringify(Object.entries(b.tags).sort())
  )
}

/**
 * SHARD_FULL_PASS_MS is how often the shard controller looks at every shard even when nothing
 * told it to: a safety net under the changes it follows.
 */
export const SHARD_FULL_PASS_MS = 30_000

/**
 * Dirty keeps the shards a controller has to look at: those a registry change touched since
 * its last run, those it could not finish (tried again next run), and every shard on a full
 * pass — the first run, every SHARD_FULL_PASS_MS, and whenever a host changed in what
 * placement reads of it (see placesAnew) or in what the controller makes of it (`hostKey`,
 * which may change with time alone), since such a change can touch any shard.
 */
export class Dirty {
  #seen: RegistryState | undefined
  readonly #shards = new Set<number>()
  #hostKeys = ''
  #fullAt = 0
  /** Whether the last `take` was a full pass. */
  full = false

  /**
   * take returns the shards to look at in `s` (every one on a full pass), and forgets them:
   * `again` puts back those not finished.
   */
  take(s: RegistryState, hostKey: (h: string) => string, now = Date.now()): Iterable<number> {
    const keys = [...s.hosts.keys()].map((id) => `${id}:${hostKey(id)}`).join()
    let full = !this.#seen || now >= this.#fullAt || keys !== this.#hostKeys
    if (!full && this.#seen && this.#seen !== s) {
      const t = touched(this.#seen, s)
      const before = this.#seen.hosts
      for (const id of t.hosts) if (placesAnew(before.get(id), s.hosts.get(id))) full = true
      for (const id of t.shards) this.#shards.add(id)
    }
    this.#seen = s
    this.#hostKeys = keys
    this.full = full
    if (full) {
      this.#fullAt = now + SHARD_FULL_PASS_MS
      this.#shards.clear()
      return [...s.shards.keys()]
    }
    const out = [...this.#shards]
    this.#shards.clear()
    return out
  }

  /** again marks a shard to look at on the next run. */
  again(shardId: number): void {
    this.#shards.add(shardId)
  }

  /** pending tells whether a shard is marked for the next run. */
  get pending(): number {
    return this.#shards.size
  }
}

/**
 * shardsChangedOn lists the shards whose record, or whose replica on host `me`, differs
 * between `before` and `s`: what a host's controller looks at after a registry change.
 */
export function shardsChangedOn(before: RegistryState, s: RegistryState, me: string) {
  const out = new Set<number>()
  for (const id of s.replicasChangedOn(before, me)) {
    const r = s.replicas.get(id) ?? before.replicas.get(id)
    if (r) out.add(r.shardId)
  }
  changed(before.shards, s.shards, (was, now) => out.add((now ?? was)?.id ?? 0))
  return out
}

/** replicaOn is the replica a host has of a shard in a state, if any. */
export function replicaOn(s: RegistryState, shardId: number, hostId: string) {
  for (const r of s.indexes.byShard.get(shardId)?.values() ?? []) if (r.hostId === hostId) return r
  return undefined as ReplicaRecord | undefined
}
