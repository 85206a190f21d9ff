// zongzi/recipes: what services build first on a coordinator, as state machines with typed
// clients — a KV with versions, compare-and-set, ranges and TTL keys; locks with leases and
// fencing tokens; leader election; optimistic (version-checked) updates — and the clock that
// brings the leader's time into the log for TTLs and leases.
export { LeaderClock, LogTime, tick } from './clock'
export type { ClockContext, LeaderClockOptions, Tick } from './clock'
export { KeepAlive } from './keepalive'
export type { CallOptions, ShardCalls } from './shard'
export { KvStateMachine, MAX_PAGE } from './kv/state-machine'
export { KvClient } from './kv/client'
export type { RangeOptions, SetOptions, Transaction } from './kv/client'
export type {
  KvCommand,
  KvCompare,
  KvOutcome,
  KvPage,
  KvQuery,
  KvRecord,
  KvWrite,
} from './kv/codec'
export { ConflictError, optimisticUpdate } from './kv/optimistic'
export type { Changes, OptimisticOptions, Updated } from './kv/optimistic'
export { LockStateMachine } from './lock/state-machine'
export { Lease, LockClient } from './lock/client'
export type { AcquireOptions, LockClientOptions } from './lock/client'
export type { Holder, LockCommand, LockQuery } from './lock/codec'
export { ElectionStateMachine } from './election/state-machine'
export { ElectionClient, Leadership } from './election/client'
export type { ElectionOptions } from './election/client'
export type {
  Candidate,
  ElectionCommand,
  ElectionQuery,
  Leader,
  Standing,
} from './election/codec'
