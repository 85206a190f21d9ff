//! zongzi-engine: a multi-group Raft host.
//!
//! A [`Host`] runs replicas of many shards (Raft groups) in one process. Each replica is a
//! raft-rs `RawNode`; all replicas share one raft-engine log store, into which every replica
//! that became ready in a step cycle is written with one batch and one sync. Hosts talk over
//! a TCP transport that frames every message bound for a peer into one checksummed frame.
//! Committed entries are applied to a [`StateMachine`] on apply threads, in batches.
#![deny(missing_docs)]

mod apply;
mod batch;
mod config;
mod error;
mod event;
mod failpoint;
mod fault;
mod host;
mod host_metrics;
mod log;
mod membership;
mod metrics;
mod network;
mod proposal;
mod quiesce;
mod replica;
mod router;
mod session;
#[cfg(test)]
mod sim;
mod snapshot;
mod start;
mod state_machine;
mod storage;
mod transport;
mod version;
mod worker;

pub use config::{HostConfig, LinkFilter, StartMode, TlsFiles};
pub use error::{Error, Result};
pub use event::{Event, EventListener, Membership};
pub use host::{Host, Proposal};
pub use log::{Level, LogRecord, LogSink, Value};
pub use metrics::{HistogramSnapshot, MetricsSnapshot, PeerSnapshot, QueueDepths};
pub use replica::ReplicaStatus;
pub use replica::{Completion, Completions};
pub use session::{Session, REGISTER, UNREGISTER};
pub use state_machine::{ApplyResult, BatchItem, BatchUpdater, SmEntry, SmError, StateMachine};
pub use transport::{HEADER_LEN, MAGIC_MESSAGES, MAGIC_SNAPSHOT};
pub use version::{
    OLDEST_SESSION_TABLE_VERSION, OLDEST_TRANSPORT_VERSION, SESSION_TABLE_VERSION,
    TRANSPORT_VERSION,
};
