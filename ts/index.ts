// The public API: everything a user of the package may import, and nothing else.
export { Host } from './binding/host'
export type {
  HostOptions,
  StartOptions,
  ReplicaStatus,
  Membership,
  HostEvent,
  CallOptions,
} from './binding/host'
export { ZongziError } from './binding/errors'
export type { ErrorCode } from './binding/errors'
export type {
  Entry,
  Result,
  StateMachine,
  PersistentStateMachine,
  StateMachineFactory,
} from './binding/state-machine'
export { Agent } from './coordinator/agent'
export type { AgentOptions, AgentStatus, Logger, ShardOptions } from './coordinator/agent'
export { ShardClient } from './coordinator/client'
export type { ClientCallOptions, ShardClientOptions } from './coordinator/client'
export { Registry } from './coordinator/registry'
export { RegistryState } from './coordinator/registry-state'
export type {
  HostRecord,
  ShardRecord,
  ReplicaRecord,
  Command,
  Outcome,
  Placement,
  HostSelector,
} from './coordinator/records'
export { DefaultShardController, ERROR_TAG } from './coordinator/shard-controller'
export type { ShardController } from './coordinator/shard-controller'
