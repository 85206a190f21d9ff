// Changes: what a registry change touched, so that controllers reconcile that and not every
// shard. The registry never changes a record in place (a command that changes one writes a
// new object, see writer.ts), and a table no command changed is the same map in the next
// state: a record that is the same object in both states did not change.
import type { HostRecord } from '../registry/records'
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
 * whose value is not the same object in both maps. Nothing when the maps are the same map.
 */
function changed<K, V>(
  before: ReadonlyMap<K, V>,
  after: ReadonlyMap<K, V>,
  on: (was: V | undefined, now: V | undefined) => void,
): void {
  if (before === after) return
  let kept = 0
  for (const [k, v] of after) {
    const was = before.get(k)
    if (was !== undefined) kept++
    if (was !== v) on(was, v)
  }
  // Keys gone: only looked for when some are (fewer kept than there were).
  if (kept === before.size) return
  for (const [k, v] of before) if (!after.has(k)) on(v, undefined)
}

/**
 * touched lists the shards and hosts whose records differ between two states: a walk of the
 * tables that changed, comparing records by identity, and nothing when no table changed.
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
