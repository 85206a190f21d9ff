// AgentMetrics: an agent's Prometheus series (prom-client), in one registry per agent. The
// registry's tables are counted when scraped; the controllers, the bus and the membership
// changes count as they go; the engine's series come from engine-metrics.ts.
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

import { ERROR_TAG } from '../coordinator/control/shard-controller'
import type { RegistryState } from '../coordinator/registry/state'

/** Seconds buckets of the controllers' passes and the bus's calls: 1 ms to 10 s. */
const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

/**
 * AgentMetrics holds an agent's series in `registry` (the agent's own, or the one the user
 * passed in `AgentOptions.metrics`). Every name starts with `zongzi_`; counters end in
 * `_total`, durations in `_seconds`, sizes in `_bytes`. No label takes a shard or replica id,
 * so the series stay as many however many shards there are.
 */
export class AgentMetrics {
  /** The registry the series are in; `registry.metrics()` is the text `/metrics` serves. */
  readonly registry: Registry
  readonly #passes: Counter<'controller'>
  readonly #passSeconds: Histogram<'controller'>
  readonly #membership: Counter<'change'>
  readonly #busCalls: Counter<'method' | 'code'>
  readonly #busSeconds: Histogram<'method'>

  /** AgentMetrics registers its series in `registry`, counting tables of `state()`. */
  constructor(state: () => RegistryState, registry: Registry = new Registry()) {
    this.registry = registry
    const r = [registry]
    const byStatus = <K extends string>(
      name: string,
      help: string,
      rows: (s: RegistryState) => Iterable<{ status: K }>,
      statuses: readonly K[],
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['status'],
        registers: r,
        collect() {
          const n = new Map<string, number>(statuses.map((x) => [x, 0]))
          for (const x of rows(state())) n.set(x.status, (n.get(x.status) ?? 0) + 1)
          for (const [status, v] of n) this.set({ status }, v)
        },
      })
    byStatus('zongzi_hosts', 'Hosts in the registry, by status.', (s) => s.hosts.values(), [
      'active',
      'missing',
      'draining',
      'gone',
    ])
    byStatus(
      'zongzi_shards',
      'Shards in the registry (the registry itself among them), by status.',
      (s) => s.shards.values(),
      ['new', 'active', 'deleting'],
    )
    byStatus(
      'zongzi_replicas',
      'Replicas in the registry, by status.',
      (s) => s.replicas.values(),
      ['new', 'active', 'deleting'],
    )
    new Gauge({
      name: 'zongzi_placement_errors',
      help: `Shards whose placement cannot be met (tagged ${ERROR_TAG}).`,
      registers: r,
      collect() {
        let n = 0
        for (const sh of state().shards.values()) if (sh.tags[ERROR_TAG] !== undefined) n++
        this.set(n)
      },
    })
    new Gauge({
      name: 'zongzi_registry_index',
      help: 'Log index of the registry state this host has applied.',
      registers: r,
      collect() {
        this.set(state().index)
      },
    })
    this.#passes = new Counter({
      name: 'zongzi_controller_passes_total',
      help: 'Passes of the controllers: host (this host) and registry (the registry leader).',
      labelNames: ['controller'],
      registers: r,
    })
    this.#passSeconds = new Histogram({
      name: 'zongzi_controller_pass_seconds',
      help: 'How long a controller pass took.',
      labelNames: ['controller'],
      buckets: SECONDS,
      registers: r,
    })
    this.#membership = new Counter({
      name: 'zongzi_membership_changes_total',
      help: 'Replica changes on record seen by this host: added, promoted, demoted, removed.',
      labelNames: ['change'],
      registers: r,
    })
    this.#busCalls = new Counter({
      name: 'zongzi_bus_calls_total',
      help: 'Bus calls this host served, by method and gRPC status code.',
      labelNames: ['method', 'code'],
      registers: r,
    })
    this.#busSeconds = new Histogram({
      name: 'zongzi_bus_call_seconds',
      help: 'How long the bus calls this host served took, by method.',
      labelNames: ['method'],
      buckets: SECONDS,
      registers: r,
    })
  }

  /** pass counts a controller pass that took `seconds`. */
  pass(controller: 'host' | 'registry', seconds: number): void {
    this.#passes.inc({ controller })
    this.#passSeconds.observe({ controller }, seconds)
  }

  /** timed runs `f` as a controller pass, counted whether it succeeds or fails. */
  async timed<T>(controller: 'host' | 'registry', f: () => Promise<T>): Promise<T> {
    const t0 = performance.now()
    try {
      return await f()
    } finally {
      this.pass(controller, (performance.now() - t0) / 1000)
    }
  }

  /** membership counts a replica change on record. */
  membership(change: string): void {
    this.#membership.inc({ change })
  }

  /** busCall counts a bus call served: its method, its status code's name, and its time. */
  busCall(method: string, code: string, seconds: number): void {
    this.#busCalls.inc({ method, code })
    this.#busSeconds.observe({ method }, seconds)
  }
}
