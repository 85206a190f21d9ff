// The public API: everything a user of the package may import, and nothing else.
export { Host } from './binding/host'
export {
  createCertificateAuthority,
  createHostCertificate,
  writeHostFiles,
} from './binding/certificates'
export type { Pem } from './binding/certificates'
export type {
  HostOptions,
  TlsFiles,
  StartOptions,
  ReplicaStatus,
  Membership,
  HostEvent,
  CallOptions,
  ProposeOptions,
} from './binding/host'
export type { SessionRef } from './binding/proposals'
export { ZongziError } from './binding/errors'
export type { CallKind, ErrorCode, ErrorOutcome } from './binding/errors'
export type {
  Entry,
  ApplyResult,
  StateMachine,
  PersistentStateMachine,
  StateMachineFactory,
} from './binding/state-machine'
export { Agent } from './coordinator/agent'
export type {
  AgentOptions,
  AgentStatus,
  JoinTokenOptions,
  LivenessOptions,
  ShardOptions,
  WaitForShardOptions,
} from './coordinator/agent'
export type { Logger } from './coordinator/control/logger'
export { ShardClient } from './coordinator/client/shard-client'
export { HostHealth } from './coordinator/client/health'
export type { CircuitState, HostHealthOptions } from './coordinator/client/health'
export type {
  BusCallOptions,
  ClientCallOptions,
  ClientContext,
  RemoteShards,
  ShardClientOptions,
} from './coordinator/client/shard-client'
export { Registry } from './coordinator/registry/registry'
export { RegistryState } from './coordinator/registry/state'
export type {
  HostRecord,
  ShardRecord,
  ReplicaRecord,
  Command,
  Outcome,
  Accepted,
  Placement,
  HostSelector,
} from './coordinator/registry/records'
export { DefaultShardController, ERROR_TAG } from './coordinator/control/shard-controller'
export type { ProposeCommand, ShardController } from './coordinator/control/shard-controller'
