// Departures: which hosts are leaving the cluster (so their replicas move elsewhere), and how
// fast the registry leader may change memberships to move them.
import { invalid } from '../../binding/errors'
import type { Command, HostRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'

/** ReplacementOptions say when and how fast the replicas of a failed host are replaced. */
export interface ReplacementOptions {
  /**
   * Milliseconds a host must have been missing before its replicas are replaced on other
   * hosts (default 60,000); 0 never replaces them for a host that is only missing.
   */
  replaceAfterMs?: number
  /** Membership changes the registry leader makes per second across all shards (default 4). */
  changesPerSecond?: number
  /** Voters of the registry (shard 0) to keep: 3 (the default) or 5. */
  registryVoters?: number
  /** Moves shard leadership between hosts to even out how many each leads (default true). */
  balanceLeaders?: boolean
  /**
   * Moves replicas from the fullest hosts to the emptiest when a host joins or the spread
   * drifts past `rebalanceThreshold` (default true); an agent emits `'rebalance'` for each.
   */
  rebalance?: boolean
  /**
   * How far a host's replicas per unit of capacity may drift from the mean before replicas
   * move (default 0.2: above 1.2 times the mean, or below the mean over 1.2).
   */
  rebalanceThreshold?: number
}

/** checkReplacement checks the options (ERR_INVALID_ARGUMENT) and fills in the defaults. */
export function checkReplacement(o: ReplacementOptions = {}): Required<ReplacementOptions> {
  const replaceAfterMs = o.replaceAfterMs ?? 60_000
  const changesPerSecond = o.changesPerSecond ?? 4
  const registryVoters = o.registryVoters ?? 3
  const balanceLeaders = o.balanceLeaders ?? true
  const rebalance = o.rebalance ?? true
  const rebalanceThreshold = o.rebalanceThreshold ?? 0.2
  if (!(Number.isSafeInteger(replaceAfterMs) && replaceAfterMs >= 0))
    throw invalid('replaceAfterMs must be a whole number of milliseconds, 0 or more')
  if (!(Number.isFinite(changesPerSecond) && changesPerSecond > 0))
    throw invalid('changesPerSecond must be positive')
  if (registryVoters !== 3 && registryVoters !== 5) throw invalid('registryVoters must be 3 or 5')
  if (typeof balanceLeaders !== 'boolean') throw invalid('balanceLeaders must be a boolean')
  if (typeof rebalance !== 'boolean') throw invalid('rebalance must be a boolean')
  if (!(Number.isFinite(rebalanceThreshold) && rebalanceThreshold > 0))
    throw invalid('rebalanceThreshold must be positive')
  return {
    replaceAfterMs,
    changesPerSecond,
    registryVoters,
    balanceLeaders,
    rebalance,
    rebalanceThreshold,
  }
}

/**
 * isLeaving tells whether the replicas of a host are to be moved off it at `now`: it is gone,
 * draining, missing and to be replaced at once (`since` 0, see `agent.replaceHost`), or has
 * been missing for `replaceAfterMs` (never, when that is 0). A host without a record yet (a
 * peer that has not written it) is not leaving.
 */
export function isLeaving(h: HostRecord | undefined, now: number, replaceAfterMs: number): boolean {
  if (!h) return false
  if (h.status === 'gone' || h.status === 'draining') return true
  if (h.status !== 'missing' || h.since === undefined) return false
  if (h.since === 0) return true
  return replaceAfterMs > 0 && now - h.since >= replaceAfterMs
}

/**
 * retireEarlier, on a host that lost its data and rejoined under a new id (`self`), proposes
 * its earlier identity at the same bus address gone once the registry leader has it missing.
 * The registry takes that departure from any member, and leaves an identity it still has
 * active alone (see hostPut: any member could claim to have rejoined at an address). It
 * resolves once the proposals settled, at once when there is none to make.
 */
export async function retireEarlier(
  s: RegistryState,
  self: { hostId: string; apiAddress: string },
  propose: (cmd: Command) => Promise<unknown>,
): Promise<void> {
  const earlier = [...s.hosts.values()].filter(
    (h) => h.id !== self.hostId && h.apiAddress === self.apiAddress && h.status === 'missing',
  )
  const gone = (id: string) =>
    propose({ op: 'host.status', id, status: 'gone', now: 0, from: 'missing' })
  await Promise.allSettled(earlier.map((h) => gone(h.id)))
}

/** isAlive tells whether a host can still take part: active, or draining. */
export function isAlive(h: HostRecord | undefined): boolean {
  return h?.status === 'active' || h?.status === 'draining'
}

/**
 * RateLimit hands out membership changes: a bucket of `perSecond` tokens (and at least one),
 * refilled at `perSecond`, so that a large failure turns into a steady stream of changes
 * rather than a storm. Below 1 per second, it holds one change, refilled over 1/perSecond s.
 */
export class RateLimit {
  readonly #perSecond: number
  readonly #size: number
  #tokens: number
  #at: number

  constructor(perSecond: number, now = Date.now()) {
    this.#perSecond = perSecond
    this.#size = Math.max(1, perSecond)
    this.#tokens = this.#size
    this.#at = now
  }

  /** take spends one change if one is left at `now`, and tells whether it did. */
  take(now = Date.now()): boolean {
    const refill = ((now - this.#at) / 1000) * this.#perSecond
    this.#tokens = Math.min(this.#size, this.#tokens + Math.max(0, refill))
    this.#at = now
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }
}
