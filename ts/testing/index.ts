// zongzi/testing: a test kit for state machines. It runs a state machine the way Raft will —
// several replicas fed the same log, restarts and replays, snapshots taken and installed at
// any point — without a cluster, and reports the first place replicas differ.
export { checkStateMachine } from './check'
export type { CheckOptions, CheckReport, FaultRates } from './check'
export { CheckError } from './report'
export type { DivergenceDetails, DivergenceKind } from './report'
export type { Use } from './determinism'
export { Random } from './random'
