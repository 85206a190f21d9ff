//! Error type returned by every fallible engine call.

use std::io;

/// Error is what an engine operation fails with. Each variant has a stable message prefix so
/// that bindings can map it to a stable code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The replica exists but cannot serve the request yet (for example it has not joined).
    #[error("not ready: {0}")]
    NotReady(String),
    /// The operation may or may not have taken effect, and the engine cannot tell which (the
    /// local replica replaced its log with a snapshot that may include it). Retry only if the
    /// command is idempotent or de-duplicated.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The shard currently has no known leader, so the request cannot be routed.
    #[error("no leader for shard {0}")]
    NoLeader(u64),
    /// The operation did not complete before its deadline; it may still take effect.
    #[error("timed out")]
    Timeout,
    /// Raft refused the proposal (a leader transfer in progress, too many uncommitted
    /// bytes, a conflicting membership change); nothing was proposed.
    #[error("dropped: {0}")]
    Dropped(String),
    /// Too many proposals are waiting on this host or shard; nothing was proposed. Retry
    /// after a while.
    #[error("busy: {0}")]
    Busy(String),
    /// A linearizable read lost its read barrier to a leader change; nothing was read.
    /// Reads are always safe to retry.
    #[error("leader changed during the read of shard {0}")]
    LeaderChanged(u64),
    /// This host runs no replica of the shard.
    #[error("shard {0} not found on this host")]
    ShardNotFound(u64),
    /// The shard already has a replica on this host.
    #[error("shard {0} already has a replica on this host")]
    ShardExists(u64),
    /// The payload is larger than the configured limit.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Size of the rejected payload.
        size: usize,
        /// Configured maximum.
        limit: usize,
    },
    /// The host (or the replica) has been closed; no further calls are served.
    #[error("host closed")]
    Closed,
    /// An argument was invalid; the message says which and why.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The log store failed. The host stops (fail-stop) after reporting this.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The host stopped after a failure (a storage error or a panic in one of its threads);
    /// nothing more is served until it is reopened. The message says what failed.
    #[error("host failed: {0}")]
    HostFailed(String),
    /// A proposal of a client session was not applied: the session is not in the shard's
    /// table (never registered, or evicted), or the result of its series is no longer kept.
    /// It never applies; the client must register a new session.
    #[error("session expired: {0}")]
    SessionExpired(String),
    /// The state machine reported an error; its replica is stopped.
    #[error("state machine failure: {0}")]
    StateMachine(String),
    /// A Raft protocol call was refused (for example a conflicting membership change).
    #[error("raft: {0}")]
    Raft(String),
    /// Data in a format version this build does not read (written by a newer build, or one
    /// too old): refused, never misread. The message names the format and the versions this
    /// build reads; see docs/upgrades.md.
    #[error("unsupported version: {0}")]
    UnsupportedVersion(String),
    /// An I/O error outside the log store (snapshot files, sockets).
    #[error("io: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// code returns a stable, machine-readable name for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotReady(_) => "ERR_NOT_READY",
            Error::NoLeader(_) => "ERR_NO_LEADER",
            Error::Timeout => "ERR_TIMEOUT",
            Error::OutcomeUnknown(_) => "ERR_OUTCOME_UNKNOWN",
            Error::Dropped(_) => "ERR_DROPPED",
            Error::Busy(_) => "ERR_BUSY",
            Error::LeaderChanged(_) => "ERR_LEADER_CHANGED",
            Error::ShardNotFound(_) => "ERR_SHARD_NOT_FOUND",
            Error::ShardExists(_) => "ERR_SHARD_EXISTS",
            Error::PayloadTooLarge { .. } => "ERR_PAYLOAD_TOO_LARGE",
            Error::Closed => "ERR_CLOSED",
            Error::InvalidArgument(_) => "ERR_INVALID_ARGUMENT",
            Error::Storage(_) => "ERR_STORAGE",
            Error::HostFailed(_) => "ERR_HOST_FAILED",
            Error::SessionExpired(_) => "ERR_SESSION_EXPIRED",
            Error::StateMachine(_) => "ERR_STATE_MACHINE",
            Error::Raft(_) => "ERR_RAFT",
            Error::UnsupportedVersion(_) => "ERR_UNSUPPORTED_VERSION",
            Error::Io(_) => "ERR_IO",
        }
    }
}

impl From<raft_engine::Error> for Error {
    fn from(e: raft_engine::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

/// Result is the engine's result type.
pub type Result<T> = std::result::Result<T, Error>;
