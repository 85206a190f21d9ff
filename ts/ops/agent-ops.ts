// AgentOps: what an agent offers its operators — its status, its registry change stream
// (here and over the bus), the membership counts of its metrics, and its HTTP server.
import type * as grpc from '@grpc/grpc-js'
import type { Registry as Metrics } from 'prom-client'

import { invalid, type ZongziError } from '../binding/errors'
import type { TlsFiles } from '../binding/host'
import type { BusHandlers } from '../bus/server'
import type { Logger } from '../coordinator/control/logger'
import type { RegistryChange } from '../coordinator/registry/changes'
import type { Registry } from '../coordinator/registry/registry'
import { type AdminAgent, runAdmin } from './admin'
import { busMetrics } from './bus-metrics'
import { type MetricsHost, registerEngineMetrics } from './engine-metrics'
import { type Check, OpsServer } from './http'
import { AgentMetrics } from './metrics'
import { type ClusterStatus, clusterStatus, RECENT } from './status'

export type { Registry } from 'prom-client'
export type { ClusterStatus } from './status'
export type { RegistryChange } from '../coordinator/registry/changes'

/** ChangesOptions say where a change stream starts and what ends it. */
export interface ChangesOptions {
  /**
   * The registry index to follow from: the stream yields the changes applied after it. By
   * default, the index this host's registry is at when `changes` is called (new changes
   * only). An index older than the host keeps changes for fails with ERR_INVALID_ARGUMENT.
   */
  since?: number
  /** Ends the stream (it returns) when aborted. The agent's stop ends it too. */
  signal?: AbortSignal
}

/** OpsContext is what the operations part reads of its agent. */
export interface OpsContext {
  readonly clusterName: string
  readonly hostId: string
  readonly registry: Registry
  readonly log: Logger
  /** Aborted when the agent stops. */
  readonly signal: AbortSignal
  /** lag tells how far this host's replica of a shard is behind its commit, if it runs one. */
  lag(shardId: number): Promise<number | undefined>
  /** The agent's HTTP address (none: no HTTP server) and TLS files (HTTPS, as the bus). */
  readonly httpAddress?: string
  readonly tls?: TlsFiles
  /** life is the agent's status, and failure why it failed. */
  life(): 'new' | 'starting' | 'ready' | 'failed' | 'stopping' | 'stopped'
  readonly failure?: ZongziError
  /** catchUp resolves once this host applied what shard 0 committed before the call. */
  catchUp(timeoutMs: number): Promise<void>
  /** engine is the engine host, once started (its `metrics()` snapshot, where it has one). */
  engine(): MetricsHost | undefined
  /** drain drains this host (or ends its drain), as agent.drain() and agent.undrain() do. */
  drain(undrain: boolean, timeoutMs: number): Promise<void>
  /** agent is the agent's API, with which this host performs the bus's admin actions. */
  readonly agent: AdminAgent
}

/** isMembership tells whether a change changed a replica (the status's recent changes). */
const isMembership = (c: RegistryChange) => c.changes.some((x) => x.kind === 'replica')

/** AgentOps serves an agent's status and change stream, and counts membership changes. */
export class AgentOps {
  /** The agent's series, in the registry of `AgentOptions.metrics` or one of its own. */
  readonly metrics: AgentMetrics
  readonly #ctx: OpsContext
  readonly #unsubscribe: () => void
  #http: OpsServer | undefined
  /** The bound HTTP address, once listening. */
  httpAddress = ''

  constructor(ctx: OpsContext, metrics?: Metrics) {
    this.#ctx = ctx
    this.metrics = new AgentMetrics(() => ctx.registry.state, metrics)
    registerEngineMetrics(this.metrics.registry, () => ctx.engine())
    this.#unsubscribe = ctx.registry.history.subscribe((c) => this.#count(c))
  }

  /**
   * changes returns the registry's changes after `o.since` as an async iterable (see
   * `Agent.changes`). The starting index is fixed when it is called.
   */
  changes(o: ChangesOptions = {}): AsyncIterable<RegistryChange> {
    if (o === null || typeof o !== 'object') throw invalid('changes options must be an object')
    if (o.since !== undefined && !(Number.isSafeInteger(o.since) && o.since >= 0))
      throw invalid('since must be a registry index (a non-negative integer)')
    const history = this.#ctx.registry.history
    const since = o.since ?? this.#ctx.registry.state.index
    history.after(since) // fails now, not at the first read, when since is too old
    const signal = AbortSignal.any(o.signal ? [this.#ctx.signal, o.signal] : [this.#ctx.signal])
    return history.follow(since, signal)
  }

  /** status is the cluster's status as this host sees it. */
  status(): Promise<ClusterStatus> {
    const c = this.#ctx
    return clusterStatus({
      cluster: c.clusterName,
      hostId: c.hostId,
      state: c.registry.state,
      recent: c.registry.history.latest(RECENT, isMembership),
      changesFrom: c.registry.history.from,
      lag: (shardId) => c.lag(shardId),
    })
  }

  /** handlers adds the bus's operator calls (Status, Changes, Drain, Admin) to the agent's. */
  handlers(agent: BusHandlers): BusHandlers {
    const json = (x: unknown) => Buffer.from(JSON.stringify(x))
    return {
      ...agent,
      status: async () => json(await this.status()),
      changes: (since, signal) => {
        const it = this.changes({ since, signal })
        return (async function* () {
          for await (const c of it) yield json(c)
        })()
      },
      drain: (undrain, timeoutMs) => this.#ctx.drain(undrain, timeoutMs),
      admin: (action, timeoutMs) => runAdmin(this.#ctx.agent, action, timeoutMs),
    }
  }

  /** interceptors are the bus server's: they count the calls it serves. */
  interceptors(): grpc.ServerInterceptor[] {
    return [busMetrics((m, code, s) => this.metrics.busCall(m, code, s))]
  }

  /** listen starts the HTTP server, if the agent has an `httpAddress`. */
  async listen(): Promise<void> {
    const c = this.#ctx
    if (c.httpAddress === undefined) return
    const http = new OpsServer(
      {
        metrics: async () => ({
          text: await this.metrics.registry.metrics(),
          contentType: this.metrics.registry.contentType,
        }),
        status: () => this.status(),
        changes: (o) => this.changes(o),
        healthy: () => this.#healthy(),
        ready: () => this.#ready(),
        member: (fingerprint) =>
          [...c.registry.state.hosts.values()].some(
            (h) =>
              h.status !== 'gone' &&
              (h.certificate === fingerprint || h.nextCertificate === fingerprint),
          ),
      },
      c.tls,
    )
    this.httpAddress = await http.listen(c.httpAddress)
    this.#http = http
  }

  /** reloadTls makes the HTTPS server show the TLS files as they are now. */
  reloadTls(): void {
    this.#http?.reloadTls()
  }

  /** #healthy: the process answers and its engine host has not failed or stopped. */
  #healthy(): Check {
    const life = this.#ctx.life()
    if (life === 'failed') return this.#ctx.failure?.message ?? 'failed'
    return life === 'ready' || life === 'starting' ? true : `agent is ${life}`
  }

  /** #ready: started, registered, and caught up with a shard 0 that answers. */
  async #ready(): Promise<Record<string, Check>> {
    const c = this.#ctx
    const started = c.life() === 'ready' ? true : `agent is ${c.life()}`
    const me = c.registry.state.hosts.get(c.hostId)
    const registered = !me ? 'not in the registry' : me.status === 'gone' ? 'gone' : true
    const registry = await c.catchUp(1_000).then(
      () => true as const,
      (e) => `shard 0 did not answer a linearizable read: ${(e as Error).message}`,
    )
    return { started, registered, registry }
  }

  /** close stops counting and the HTTP server (the agent stops). */
  async close(): Promise<void> {
    this.#unsubscribe()
    await this.#http?.close()
  }

  /** #count counts the membership changes of a registry change in the metrics. */
  #count(c: RegistryChange): void {
    for (const x of c.changes) {
      if (x.kind !== 'replica') continue
      const r = x.record
      if (r === null) this.metrics.membership('removed')
      else if (r.created === c.index) this.metrics.membership('added')
      else if (c.op === 'replica.update' && c.command.nonVoting !== undefined)
        this.metrics.membership(r.nonVoting ? 'demoted' : 'promoted')
    }
  }
}
