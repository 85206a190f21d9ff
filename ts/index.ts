// The public API: everything a user of the package may import, and nothing else. Public is
// what a user runs (Host, Agent, ShardClient, the certificate helpers), what they implement
// (StateMachine, ShardController, Logger) and every type those signatures name, which
// __test__/exports.test.ts checks. The registry's state machine (Registry), the controllers'
// contexts and the bus are machinery: tests import them from their modules.
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
  Histogram,
  HostLogger,
  HostMetrics,
  PeerTraffic,
  QueueDepths,
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
  Watched,
} from './binding/state-machine'
export { shardType } from './coordinator/shard-type'
export type {
  ShardType,
  ShardTypeOptions,
  TypedClientOptions,
  TypedShard,
} from './coordinator/shard-type'
export { bytesCodec, jsonCodec } from './binding/codec'
export type { Codec } from './binding/codec'
export { TypedClient } from './coordinator/client/typed-client'
export { Agent } from './coordinator/agent'
export type {
  AgentCallOptions,
  AgentOptions,
  AgentStatus,
  JoinTokenOptions,
  ShardOptions,
  ShardUpdate,
} from './coordinator/agent-options'
export { DEFAULT_PLACEMENT } from './coordinator/agent-options'
export type { DevOptions } from './coordinator/dev'
export type { AgentEvents } from './coordinator/agent-events'
export type { WaitForShardOptions } from './coordinator/control/shard-readiness'
export type { ShardSpec } from './coordinator/shard-specs'
export type { LivenessOptions } from './coordinator/control/liveness'
export type { ReplacementOptions } from './coordinator/control/departures'
export type { DrainOptions } from './coordinator/control/drain'
export type { HostChange, MembershipChange } from './coordinator/registry/events'
export type { RecordChange, RegistryChange } from './coordinator/registry/changes'
export type { ChangesOptions } from './ops/agent-ops'
export type {
  ClusterStatus,
  HostStatusRow,
  ReplicaStatusRow,
  ShardStatusRow,
} from './ops/status'
export type { LogFields, Logger } from './coordinator/control/logger'
export { ShardClient } from './coordinator/client/shard-client'
export { HostHealth } from './coordinator/client/health'
export type { CircuitState, HostHealthOptions } from './coordinator/client/health'
export type {
  BusCallOptions,
  ClientCallOptions,
  ClientContext,
  RemoteShards,
  ShardClientOptions,
} from './coordinator/client/client-context'
export { RegistryState } from './coordinator/registry/state'
export type { PMap, PMapKey } from './coordinator/registry/pmap'
export type {
  HostRecord,
  ShardRecord,
  ReplicaRecord,
  Command,
  Outcome,
  Accepted,
  Placement,
  HostSelector,
  HostStatus,
  Proposer,
  CommandBody,
} from './coordinator/registry/records'
export type { Access, UsedToken } from './coordinator/registry/state'
export { DefaultShardController, ERROR_TAG } from './coordinator/control/shard-controller'
export type {
  ControllerContext,
  ProposeCommand,
  ShardController,
  ShardControllerOptions,
} from './coordinator/control/shard-controller'
export type { Move } from './coordinator/control/rebalance'
export type { MembershipOps } from './coordinator/control/membership-ops'
