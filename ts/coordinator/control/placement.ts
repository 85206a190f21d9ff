// Placement: which hosts a shard's replicas go to.
import type { HostRecord, HostSelector, Placement, ShardRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'

/** ERROR_TAG is the shard tag where placement errors are recorded. */
export const ERROR_TAG = 'placement:error'

/** PlacementError says why a placement cannot be met. */
export class PlacementError extends Error {}

function bad(m: string): never {
  throw new PlacementError(m)
}

/** fields returns an object's fields for checking, or fails with `${what} must be an object`. */
function fields(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object') bad(`${what} must be an object`)
  return v as Record<string, unknown>
}

function checkTags(t: unknown, what: string): void {
  if (t === undefined) return
  if (Array.isArray(t)) bad(`${what} must be an object`)
  for (const [k, v] of Object.entries(fields(t, what)))
    if (!k || typeof v !== 'string') bad(`${what} must map names to strings`)
}

function checkSelector(s: unknown, what: string): void {
  const { count, min, tags } = fields(s, what)
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0 || count > 1000)
    bad(`${what}.count must be an integer from 0 to 1000`)
  if (
    min !== undefined &&
    (!Number.isSafeInteger(min) || (min as number) < 0 || (min as number) > count)
  )
    bad(`${what}.min must be an integer from 0 to count`)
  checkTags(tags, `${what}.tags`)
}

/** validatePlacement checks a placement's shape, throwing a PlacementError. */
export function validatePlacement(p: unknown): asserts p is Placement {
  if (Array.isArray(p)) bad('placement must be an object')
  const o = fields(p, 'placement')
  for (const k of Object.keys(o))
    if (!['members', 'groups', 'vary', 'cover'].includes(k)) bad(`unknown placement field ${k}`)
  if (o.members !== undefined) checkSelector(o.members, 'members')
  if (o.groups !== undefined) {
    for (const [name, s] of Object.entries(fields(o.groups, 'groups')))
      checkSelector(s, `groups.${name}`)
  }
  if (
    o.vary !== undefined &&
    (!Array.isArray(o.vary) || o.vary.some((k: unknown) => typeof k !== 'string' || !k))
  ) {
    bad('vary must be a list of tag names')
  }
  if (o.cover !== undefined) checkTags(fields(o.cover, 'cover').tags, 'cover.tags')
}

const matches = (h: HostRecord, tags: Record<string, string> | undefined) =>
  Object.entries(tags ?? {}).every(([k, v]) => h.tags[k] === v)

/** CAPACITY_TAG is the host tag that weighs how many replicas a host takes (default 1). */
export const CAPACITY_TAG = 'capacity'

/** capacityOf is a host's weight: its `capacity` tag if a positive number, else 1. */
export function capacityOf(h: HostRecord | undefined): number {
  const c = Number(h?.tags[CAPACITY_TAG])
  return Number.isFinite(c) && c > 0 ? c : 1
}

/** The load of each state counted so far (a state never changes). */
const loads = new WeakMap<RegistryState, ReadonlyMap<string, number>>()

/**
 * replicaLoad counts the replicas of user shards (shard 0 aside) each host has: the load
 * placement spreads. It is counted once per state; the caller gets a copy of its own.
 */
export function replicaLoad(state: RegistryState): Map<string, number> {
  let load = loads.get(state)
  if (!load) {
    // From the registry's index of replicas by host: as many steps as hosts, not replicas.
    const counted = new Map<string, number>()
    const registry = new Set<string>()
    for (const r of state.indexes.byShard.get(0)?.values() ?? []) registry.add(r.hostId)
    for (const id of state.hosts.keys()) {
      const n = state.countOn(id) - (registry.has(id) ? 1 : 0)
      if (n > 0) counted.set(id, n)
    }
    loads.set(state, counted)
    load = counted
  }
  return new Map(load)
}

/** Want is one replica the placement asks for. */
export interface Want {
  hostId: string
  nonVoting: boolean
  group: string
}

/**
 * place decides the replicas a shard should have: it keeps replicas that still fit and adds
 * what is missing. Only active hosts that registered the shard's type are used, and missing
 * ones for the replicas they already have until `leaving` says their replicas are to move.
 * Among the hosts that fit, those with the fewest replicas (`load`, by default counted from
 * `state`) per unit of capacity (a host's `capacity` tag, default 1) get the new ones: the
 * host that, with one more, holds the least per unit; equal ones in order of id. A caller
 * placing many shards from one snapshot counts in `load` what it adds, so that they do not all
 * pick the same hosts.
 * It returns the full wanted set, or throws a PlacementError when the hosts cannot satisfy it.
 */
export function place(
  state: RegistryState,
  shard: ShardRecord,
  leaving: (h: HostRecord) => boolean = (h) => h.status !== 'active' && h.status !== 'missing',
  load: ReadonlyMap<string, number> = replicaLoad(state),
): Want[] {
  const p = shard.placement ?? {}
  const current = new Map(state.replicasOf(shard.id).map((r) => [r.hostId, r]))
  // A missing host (down, as far as the registry leader can tell) keeps the replicas it has,
  // and gets no new ones.
  const usable = (h: HostRecord) =>
    !leaving(h) && (h.status === 'active' || (h.status === 'missing' && current.has(h.id)))
  const hosts = [...state.hosts.values()]
    .filter((h) => usable(h) && h.shardTypes.includes(shard.type))
    .sort((a, b) => a.id.localeCompare(b.id))
  const used = new Set<string>()
  const out: Want[] = []
  const vary = p.vary ?? []

  const pick = (
    { count, min = count, tags }: HostSelector,
    nonVoting: boolean,
    group: string,
    spread: boolean,
  ) => {
    const candidates = hosts.filter((h) => !used.has(h.id) && matches(h, tags))
    // Keep hosts that already have a replica of the right kind first, then those with one of
    // the other kind (promoted or demoted, it keeps its data), for stability; then the least
    // loaded.
    const rank = (h: HostRecord) => {
      const r = current.get(h.id)
      return r === undefined ? 2 : r.nonVoting === nonVoting ? 0 : 1
    }
    const n = (h: HostRecord) => ((load.get(h.id) ?? 0) + 1) / capacityOf(h)
    // (Stable: hosts of the same rank and load stay in order of id.)
    candidates.sort((a, b) => rank(a) - rank(b) || n(a) - n(b))
    const chosen: HostRecord[] = []
    const seen = vary.map(() => new Set<string>())
    const fresh = (h: HostRecord) => vary.every((k, i) => !seen[i].has(h.tags[k] ?? ''))
    // First pass: only hosts that add a new value for every vary key; second: anything left.
    for (const strict of spread && vary.length ? [true, false] : [false]) {
      for (const h of candidates) {
        if (chosen.length >= count) break
        if (chosen.includes(h) || (strict && !fresh(h))) continue
        chosen.push(h)
        vary.forEach((k, i) => seen[i].add(h.tags[k] ?? ''))
      }
    }
    if (chosen.length < min) {
      const withTags = tags ? ` with tags ${JSON.stringify(tags)}` : ''
      const wants = min < count ? `at least ${min}` : `${count}`
      throw new PlacementError(
        `${group}: wants ${wants} hosts${withTags} running ${shard.type}, found ${chosen.length}`,
      )
    }
    for (const h of chosen) {
      used.add(h.id)
      out.push({ hostId: h.id, nonVoting, group })
    }
  }

  if (p.members) pick(p.members, false, 'members', true)
  for (const [name, g] of Object.entries(p.groups ?? {})) pick(g, true, `groups.${name}`, true)
  if (p.cover) {
    for (const h of hosts) {
      if (!used.has(h.id) && matches(h, p.cover.tags)) {
        used.add(h.id)
        out.push({ hostId: h.id, nonVoting: true, group: 'cover' })
      }
    }
  }
  return out
}
