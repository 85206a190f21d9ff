//! Commands and their routing: everything that reaches a step worker is a [`Cmd`], sent
//! through the [`Router`] to the worker that owns the shard. Host, transport and apply
//! threads depend on this module; it depends on none of them.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::RwLock;
use raft::eraftpb::{ConfChange, Message};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::replica::{ConfWaiter, ProposalId, ProposalWaiter, ReadWaiter, Replica, ReplicaStatus};
use crate::state_machine::SharedSm;

/// Cmd is everything a step worker reacts to.
pub(crate) enum Cmd {
    Start(Box<Replica>),
    Stop {
        shard: u64,
        done: oneshot::Sender<Result<()>>,
    },
    Propose {
        shard: u64,
        id: ProposalId,
        data: Vec<u8>,
        /// The client session the proposal belongs to, if any.
        session: Option<crate::session::Session>,
        waiter: ProposalWaiter,
    },
    ConfChange {
        shard: u64,
        id: ProposalId,
        cc: ConfChange,
        waiter: ConfWaiter,
    },
    ReadIndex {
        shard: u64,
        waiter: ReadWaiter,
    },
    Raft {
        shard: u64,
        msg: Message,
    },
    /// A snapshot message and the file received with it (still under a temporary name; none
    /// for the bootstrap snapshot, which has no data).
    Snapshot {
        shard: u64,
        msg: Message,
        file: Option<std::path::PathBuf>,
    },
    Unreachable {
        shard: u64,
        to: u64,
    },
    SnapshotStatus {
        shard: u64,
        to: u64,
        ok: bool,
    },
    /// The apply thread has applied up to `index` (for the replica `incarnation`).
    Applied {
        shard: u64,
        incarnation: u64,
        index: u64,
    },
    SnapshotTaken {
        shard: u64,
        incarnation: u64,
        index: u64,
        term: u64,
    },
    ApplyFailed {
        shard: u64,
        incarnation: u64,
        error: String,
    },
    TransferLeader {
        shard: u64,
        to: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    Status {
        shard: u64,
        reply: oneshot::Sender<Result<ReplicaStatus>>,
    },
    Shutdown,
}

impl Cmd {
    /// shard is the shard the command is for (`None` for a worker-wide command).
    pub(crate) fn shard(&self) -> Option<u64> {
        match self {
            Cmd::Start(r) => Some(r.shard),
            Cmd::Stop { shard, .. }
            | Cmd::Propose { shard, .. }
            | Cmd::ConfChange { shard, .. }
            | Cmd::ReadIndex { shard, .. }
            | Cmd::Raft { shard, .. }
            | Cmd::Snapshot { shard, .. }
            | Cmd::Unreachable { shard, .. }
            | Cmd::SnapshotStatus { shard, .. }
            | Cmd::Applied { shard, .. }
            | Cmd::SnapshotTaken { shard, .. }
            | Cmd::ApplyFailed { shard, .. }
            | Cmd::TransferLeader { shard, .. }
            | Cmd::Status { shard, .. } => Some(*shard),
            Cmd::Shutdown => None,
        }
    }

    /// reject answers a command that has no replica to go to.
    pub(crate) fn reject(self, e: impl Fn() -> Error) {
        match self {
            Cmd::Stop { done, .. } => {
                let _ = done.send(Err(e()));
            }
            Cmd::Propose { waiter, .. } => waiter.fail(e),
            Cmd::ConfChange { waiter, .. } => {
                let _ = waiter.reply.send(Err(e()));
            }
            Cmd::ReadIndex { waiter, .. } => {
                let _ = waiter.reply.send(Err(e()));
            }
            Cmd::TransferLeader { reply, .. } => {
                let _ = reply.send(Err(e()));
            }
            Cmd::Status { reply, .. } => {
                let _ = reply.send(Err(e()));
            }
            Cmd::Snapshot { file: Some(f), .. } => {
                let _ = std::fs::remove_file(f);
            }
            _ => {}
        }
    }
}

/// Router sends commands to the worker that owns a shard.
pub(crate) struct Router {
    workers: Vec<Sender<Cmd>>,
}

impl Router {
    pub(crate) fn new(workers: Vec<Sender<Cmd>>) -> Self {
        Router { workers }
    }

    pub(crate) fn worker_of(&self, shard: u64) -> usize {
        (shard % self.workers.len() as u64) as usize
    }

    /// send delivers a command; if the worker is gone the command is answered with `Closed`.
    pub(crate) fn send(&self, shard: u64, cmd: Cmd) {
        if let Err(e) = self.workers[self.worker_of(shard)].send(cmd) {
            e.into_inner().reject(|| Error::Closed);
        }
    }

    pub(crate) fn shutdown(&self) {
        for w in &self.workers {
            let _ = w.send(Cmd::Shutdown);
        }
    }
}

/// LocalReplica is what the host keeps of a running replica: its id and its state machine.
pub(crate) struct LocalReplica {
    pub(crate) replica_id: u64,
    pub(crate) incarnation: u64,
    pub(crate) sm: SharedSm,
    /// Proposals of this shard waiting for their result on this host.
    pub(crate) in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

/// Running is the set of replicas running on a host, shared with the workers so that a
/// replica that stops by itself (removed from its shard, or failed) leaves it too.
pub(crate) type Running = Arc<RwLock<HashMap<u64, LocalReplica>>>;
