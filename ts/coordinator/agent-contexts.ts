// The agent's context builders: each part the agent runs (bus handlers, host controller,
// registry leader, drain, bootstrap, shard clients) gets a small context of its own, made
// here from what the agent knows, instead of the agent itself.
import type { Host } from '../binding/host'
import type { StateMachineFactory } from '../binding/state-machine'
import type { BusClient } from '../bus/client'
import type { BusServer } from '../bus/server'
import type { AgentCallOptions, AgentOptions, AgentStatus } from './agent-options'
import type { ZongziError } from '../binding/errors'
import type { BootstrapContext } from './bootstrap'
import type { HostHealth } from './client/health'
import type { ClientContext } from './client/client-context'
import type { DrainContext } from './control/drain'
import type { AdminAgent } from '../ops/admin'
import type { HostController, HostControllerContext } from './control/host-controller'
import type { Logger } from './control/logger'
import type { RegistryLeader, RegistryLeaderContext } from './control/registry-leader'
import type { ReadinessContext } from './control/shard-readiness'
import type { HandlerContext } from './handlers'
import type { AgentOps } from '../ops/agent-ops'
import type { MetricsHost } from '../ops/engine-metrics'
import type { OpsContext } from '../ops/agent-ops'
import { drainHost, undrainHost } from './control/drain'
import type { Command } from './registry/records'
import type { Registry } from './registry/registry'
import type { RegistryAccess } from './registry-access'
import type { AnyShardType } from './shard-type'
import type { ShardsContext } from './shards'

/**
 * AgentParts are what a started agent runs: the engine host, the bus client and server, the
 * access to the registry, the host controller and the registry leader's round.
 */
export interface AgentParts {
  host: Host
  bus: BusClient
  server: BusServer
  registry: RegistryAccess
  hostController: HostController
  leader: RegistryLeader
}

/** AgentInside is what the context builders read of an agent (see AgentCore). */
export interface AgentInside {
  readonly clusterName: string
  readonly peers: readonly string[]
  readonly options: AgentOptions
  readonly timeoutMs: number
  readonly log: Logger
  /** This host's id: read when a context is made, or on each use where it is a getter. */
  readonly hostId: string
  readonly apiAddress: string
  readonly types: ReadonlyMap<string, StateMachineFactory>
  /** The ShardTypes this agent was given, by name. */
  readonly shardTypes: Map<string, AnyShardType>
  /** The local replica of the registry (shard 0's state machine). */
  readonly registry: Registry
  readonly health: HostHealth
  readonly ops: AgentOps
  /** Aborted when the agent stops. */
  readonly signal: AbortSignal
  ready(): boolean
  /** checkReady throws unless the agent is ready. */
  checkReady(): void
  runs(shardId: number): boolean
  /** started returns the agent's parts, or throws ERR_NOT_READY before start. */
  started(): AgentParts
}

/** handlerContext is what the bus handlers of an agent use. */
export function handlerContext(
  a: AgentInside,
  host: Host,
  registry: RegistryAccess,
): HandlerContext {
  return {
    clusterName: a.clusterName,
    get hostId() {
      return a.hostId
    },
    get apiAddress() {
      return a.apiAddress
    },
    timeoutMs: a.timeoutMs,
    tls: a.options.tls !== undefined,
    host,
    ready: () => a.ready(),
    runs: (shardId) => a.runs(shardId),
    registry: () => a.registry.state,
    catchUp: (timeoutMs) => registry.read(() => undefined, timeoutMs),
    propose: (cmd) => registry.propose(cmd),
  }
}

/** shared are the parts the host controller and the registry leader's round both use. */
function shared(a: AgentInside, host: Host, bus: BusClient, registry: RegistryAccess) {
  return {
    hostId: a.hostId,
    timeoutMs: a.timeoutMs,
    log: a.log,
    host,
    bus,
    registry: () => a.registry.state,
    propose: (cmd: Command) => registry.propose(cmd),
  }
}

/** leaderContext is what the registry leader's round uses. */
export function leaderContext(
  a: AgentInside,
  host: Host,
  bus: BusClient,
  registry: RegistryAccess,
): RegistryLeaderContext {
  return {
    ...shared(a, host, bus, registry),
    ready: () => a.ready(),
    passed: (seconds) => a.ops.metrics.pass('registry', seconds),
  }
}

/** controllerContext is what the host controller uses. */
export function controllerContext(
  a: AgentInside,
  host: Host,
  bus: BusClient,
  registry: RegistryAccess,
): HostControllerContext {
  return {
    ...shared(a, host, bus, registry),
    factory: (type) => a.types.get(type),
    catchUp: () => registry.read(() => undefined, a.timeoutMs),
    passed: (seconds) => a.ops.metrics.pass('host', seconds),
  }
}

/**
 * drainContext is what a drain, an undrain, a departure and the leader balance use; `o`
 * bounds its registry calls.
 */
export function drainContext(a: AgentInside, o: AgentCallOptions = {}): DrainContext {
  const { host, registry, bus } = a.started()
  return {
    hostId: a.hostId,
    log: a.log,
    host,
    answers: async (hostId, timeoutMs) => {
      const h = a.registry.state.hosts.get(hostId)
      if (!h) return false
      const p = await bus.probe(h.apiAddress, { timeoutMs }).catch(() => undefined)
      return p?.hostId === hostId
    },
    registry: () => a.registry.state,
    read: (fn) => registry.read(fn, o.timeoutMs ?? a.timeoutMs, o.signal),
    propose: (cmd) => registry.propose(cmd, o.timeoutMs, o.signal),
  }
}

/** bootstrapContext is what initialising or joining the cluster uses. */
export function bootstrapContext(
  a: AgentInside,
  host: Host,
  bus: BusClient,
  registry: RegistryAccess,
): BootstrapContext {
  return {
    hostId: a.hostId,
    apiAddress: a.apiAddress,
    peers: a.peers,
    joinToken: a.options.joinToken,
    tags: a.options.tags ?? {},
    timeoutMs: a.timeoutMs,
    log: a.log,
    signal: a.signal,
    host,
    bus,
    registry,
    registryFactory: () => a.registry,
  }
}

/** clientContext is what the agent's shard clients use. */
export function clientContext(a: AgentInside): ClientContext {
  return {
    get hostId() {
      return a.hostId
    },
    timeoutMs: a.timeoutMs,
    // Looked up per call: a client made before start() works once the agent has started.
    get host() {
      return a.started().host
    },
    get bus() {
      return a.started().bus
    },
    registry: () => a.registry.state,
    catchUp: (timeoutMs) => a.started().registry.read(() => undefined, timeoutMs),
    runs: (shardId) => a.runs(shardId),
    health: a.health,
  }
}

/** opsContext is what the agent's operations part (status, changes, metrics) uses. */
export function opsContext(
  a: AgentInside & {
    parts?: AgentParts
    status: AgentStatus
    failure?: ZongziError
    events: AdminAgent
  },
): OpsContext {
  return {
    agent: a.events,
    clusterName: a.clusterName,
    get hostId() {
      return a.hostId
    },
    registry: a.registry,
    log: a.log,
    signal: a.signal,
    httpAddress: a.options.httpAddress,
    tls: a.options.tls,
    life: () => a.status,
    get failure() {
      return a.failure
    },
    catchUp: async (timeoutMs) => {
      await a.started().registry.read(() => undefined, timeoutMs)
    },
    lag: async (shardId) => {
      const st = await a.parts?.host.status(shardId).catch(() => undefined)
      return st ? Math.max(0, st.commit - st.applied) : undefined
    },
    engine: () => a.parts?.host as MetricsHost | undefined,
    drain: (undrain, timeoutMs) =>
      undrain
        ? undrainHost(drainContext(a))
        : drainHost(drainContext(a), { timeoutMs: timeoutMs || undefined }),
  }
}

/** readinessContext is what waiting for a shard uses. */
export function readinessContext(a: AgentInside): ReadinessContext {
  return {
    timeoutMs: a.timeoutMs,
    signal: a.signal,
    registry: () => a.registry.state,
    read: (fn) => a.started().registry.read(fn, a.timeoutMs),
    runs: (shardId) => a.runs(shardId),
  }
}

/** shardsContext is what the calls that create, change and delete shards use. */
export function shardsContext(a: AgentInside): ShardsContext {
  return {
    checkReady: () => a.checkReady(),
    shardTypes: a.shardTypes,
    propose: (cmd, o: AgentCallOptions) => a.started().registry.propose(cmd, o.timeoutMs, o.signal),
    read: (fn, o: AgentCallOptions) =>
      a.started().registry.read(fn, o.timeoutMs ?? a.timeoutMs, o.signal),
  }
}
