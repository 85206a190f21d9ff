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
export type { Logger } from './coordinator/logger'
export { ShardClient } from './coordinator/client'
export { HostHealth } from './coordinator/health'
export type { CircuitState, HostHealthOptions } from './coordinator/health'
export type {
  BusCallOptions,
  ClientCallOptions,
  ClientContext,
  RemoteShards,
  ShardClientOptions,
} from './coordinator/client'
export { Registry } from './coordinator/registry'
export { RegistryState } from './coordinator/registry-state'
export type {
  HostRecord,
  ShardRecord,
  ReplicaRecord,
  Command,
  Outcome,
  Accepted,
  Placement,
  HostSelector,
} from './coordinator/records'
export { DefaultShardController, ERROR_TAG } from './coordinator/shard-controller'
export type { ProposeCommand, ShardController } from './coordinator/shard-controller'
