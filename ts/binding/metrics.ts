// The engine's metrics as one snapshot object: what `Host.metrics()` returns.

/**
 * Histogram is a histogram at one moment. `counts` has one entry more than `bounds`:
 * `counts[i]` is the number of observations at most `bounds[i]` and above `bounds[i - 1]`
 * (not cumulative), and the last counts those above every bound.
 */
export interface Histogram {
  /** Upper bounds of the buckets, ascending. */
  bounds: number[]
  /** Observations per bucket (see above). */
  counts: number[]
  /** Sum of the observations. */
  sum: number
  /** Number of observations. */
  count: number
}

/** PeerTraffic is the Raft message traffic with one peer host since this host opened. */
export interface PeerTraffic {
  /** The peer's Raft transport address. */
  address: string
  /** Bytes of message frames sent to it. */
  bytesSent: number
  /** Message frames sent to it. */
  framesSent: number
  /** Bytes of message frames received from it. */
  bytesReceived: number
  /** Message frames received from it. */
  framesReceived: number
}

/** QueueDepths is how much waits at each stage of the host at the moment of the snapshot. */
export interface QueueDepths {
  /** Commands waiting for the step workers. */
  stepCommands: number
  /** Tasks waiting for the apply threads. */
  applyTasks: number
  /** Bytes of received Raft messages not yet stepped. */
  inboxBytes: number
  /** Bytes of Raft messages queued for peers and not yet sent. */
  outgoingBytes: number
  /** Proposals and reads waiting for their result on this host. */
  inFlight: number
  /** Bytes of committed entries handed to state machines and not yet applied. */
  applyingBytes: number
}

/**
 * HostMetrics is what a host has counted since it opened (counters only grow), with its
 * queue depths and its replicas' apply lag at the moment it was taken. Nothing in it has a
 * value per shard: apply lag is a histogram over the replicas.
 */
export interface HostMetrics {
  /** Proposals this host accepted from its callers. */
  proposals: number
  /** Proposals and reads refused at once because the host was busy (`ERR_BUSY`). */
  proposalsRefused: number
  /** Entries the local replicas saw committed. */
  entriesCommitted: number
  /** Entries the local state machines applied. */
  entriesApplied: number
  /** Times a local replica learned of a new leader. */
  leaderChanges: number
  /** Snapshots sent to followers. */
  snapshotsSent: number
  /** Bytes of the snapshots sent. */
  snapshotBytesSent: number
  /** Snapshots received from leaders. */
  snapshotsReceived: number
  /** Bytes of the snapshots received. */
  snapshotBytesReceived: number
  /** Received Raft messages refused (not for a local replica, or the inbox full). */
  messagesDropped: number
  /** Log records dropped because the logger's buffer was full (see `HostOptions.logger`). */
  logRecordsDropped: number
  /** Seconds each synced log write took. */
  fsyncSeconds: Histogram
  /** Entries each synced log write carried. */
  entriesPerFsync: Histogram
  /** Over the running replicas: entries committed and not yet applied. */
  applyLag: Histogram
  /** Raft message traffic per peer host, by address. */
  peers: PeerTraffic[]
  /** Queue depths. */
  queues: QueueDepths
  /** Replicas running on this host. */
  replicas: number
  /** Of them, those quiesced (see `HostOptions.quiesce`). */
  quiescedReplicas: number
}
