// The events an Agent emits, by name, with what each listener receives.
import type { HostEvent } from '../binding/host'
import type { AgentStatus } from './agent-options'
import type { CircuitState } from './client/health'
import type { Move } from './control/rebalance'
import type { MembershipChange } from './registry/events'
import type { RegistryState } from './registry/state'

/**
 * AgentEvents maps each event of an Agent to its listener's arguments: `agent.on('hostDown',
 * ({ hostId }) => …)` is typed by it.
 */
export interface AgentEvents {
  /** The agent's status changed (see AgentStatus). */
  status: [status: AgentStatus]
  /** The engine host reported an event (a leader changed, a replica failed, …). */
  event: [event: HostEvent]
  /** This host's registry snapshot changed. */
  change: [state: RegistryState]
  /** This agent's clients stopped (`open`) or resumed calling a host. */
  circuit: [change: { address: string; state: CircuitState }]
  /** The registry marked a host missing (see `liveness` in AgentOptions). */
  hostDown: [change: { hostId: string }]
  /** The registry marked a missing host active again. */
  hostUp: [change: { hostId: string }]
  /** A replica was added, promoted, demoted or removed on record. */
  membership: [change: MembershipChange]
  /**
   * On the registry leader: a replica of a shard moved from one host to another to even out
   * the spread (see `rebalance` in AgentOptions).
   */
  rebalance: [move: Move]
}
