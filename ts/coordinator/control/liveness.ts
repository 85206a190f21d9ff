// Liveness: whether each other host is up, suspect or down, from bus heartbeats the registry
// leader sends. Only a change between up and down is written to the registry (one write per
// change); every agent then announces it as `hostDown` / `hostUp` (see registry-events.ts).
import { invalid } from '../../binding/errors'
import type { HostRecord } from '../registry/records'
import type { RegistryState } from '../registry/state'

/** LivenessOptions bound how long a silent host stays up, and then suspect. */
export interface LivenessOptions {
  /** Milliseconds without an answer after which a host is suspect (default 2,000). */
  suspectMs?: number
  /** Milliseconds without an answer after which a host is down (default 10,000). */
  downMs?: number
}

/** HostState is what the registry leader thinks of a host. */
export type HostState = 'up' | 'suspect' | 'down'

/** checkLiveness checks the options (ERR_INVALID_ARGUMENT) and fills in the defaults. */
export function checkLiveness(o: LivenessOptions = {}): Required<LivenessOptions> {
  const suspectMs = o.suspectMs ?? 2_000
  const downMs = o.downMs ?? Math.max(10_000, suspectMs)
  if (!(Number.isFinite(suspectMs) && suspectMs > 0))
    throw invalid('liveness.suspectMs must be positive')
  if (!(Number.isFinite(downMs) && downMs >= suspectMs))
    throw invalid('liveness.downMs must be at least suspectMs')
  return { suspectMs, downMs }
}

/**
 * Liveness keeps, on the registry leader, when each other host last answered a heartbeat.
 * A host it has not heard from yet counts from when this leader started watching it, so a new
 * leader gives every host its full time before calling it down.
 */
export class Liveness {
  readonly #o: Required<LivenessOptions>
  readonly #heard = new Map<string, number>()
  /** Hosts that answered this leader at least once (not only counted from when it started). */
  readonly #answered = new Set<string>()
  /** Hosts with a heartbeat in flight. */
  readonly #beating = new Set<string>()

  constructor(o: Required<LivenessOptions>) {
    this.#o = o
  }

  /** heard records an answer from `hostId` at `now`. */
  heard(hostId: string, now: number): void {
    this.#heard.set(hostId, now)
    this.#answered.add(hostId)
  }

  /** state is what `hostId` is at `now`. */
  state(hostId: string, now: number): HostState {
    const last = this.#heard.get(hostId)
    if (last === undefined) {
      this.#heard.set(hostId, now)
      return 'up'
    }
    const silent = now - last
    return silent >= this.#o.downMs ? 'down' : silent >= this.#o.suspectMs ? 'suspect' : 'up'
  }

  /**
   * probe sends every other host of `s` a heartbeat through `send` (a bus Probe), at most one
   * in flight per host, and records the answers of the hosts that answer as themselves.
   */
  probe(
    s: RegistryState,
    self: string,
    send: (address: string) => Promise<{ hostId: string }>,
  ): void {
    for (const h of s.hosts.values()) {
      if (h.id === self || h.status === 'gone' || this.#beating.has(h.id)) continue
      this.#beating.add(h.id)
      send(h.apiAddress)
        .then((p) => {
          if (p.hostId === h.id) this.heard(h.id, Date.now())
        })
        .catch(() => {})
        .finally(() => this.#beating.delete(h.id))
    }
  }

  /** forget drops what it knew (this agent stopped leading the registry). */
  forget(): void {
    this.#heard.clear()
    this.#answered.clear()
  }

  /**
   * changes lists the registry writes the hosts' states call for at `now`: a host on record
   * as active that is down becomes missing, and a missing one that answered lately becomes
   * active (a new leader that has not heard from it yet leaves it missing). This host, the
   * registry leader, is up: on record as missing (an earlier leader lost it), it becomes
   * active, or it would replace its own replicas.
   */
  changes(s: RegistryState, self: string, now: number): Array<Pick<HostRecord, 'id' | 'status'>> {
    const out: Array<Pick<HostRecord, 'id' | 'status'>> = []
    if (s.hosts.get(self)?.status === 'missing') out.push({ id: self, status: 'active' })
    for (const h of s.hosts.values()) {
      if (h.id === self || (h.status !== 'active' && h.status !== 'missing')) continue
      const st = this.state(h.id, now)
      if (h.status === 'active' && st === 'down') out.push({ id: h.id, status: 'missing' })
      if (h.status === 'missing' && st === 'up' && this.#answered.has(h.id))
        out.push({ id: h.id, status: 'active' })
    }
    return out
  }
}
