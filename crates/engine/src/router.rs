//! Commands and their routing: everything that reaches a step worker is a [`Cmd`], sent
//! through the [`Router`] to the worker that owns the shard. Host, transport and apply
//! threads depend on this module; it depends on none of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
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
        /// The message's place in the host's inbox (none for messages made inside the host).
        _place: Option<InboxPlace>,
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
    /// The apply lag of the worker's replicas, for the host's metrics.
    Lag {
        reply: oneshot::Sender<crate::metrics::HistogramSnapshot>,
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
            Cmd::Shutdown | Cmd::Lag { .. } => None,
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

/// MAX_INBOX_BYTES is the most the Raft messages received by a host and not yet stepped
/// may take; past it more are dropped on arrival, as a full network buffer would.
const MAX_INBOX_BYTES: usize = 256 << 20;

/// InboxPlace is a received message's share of the host's inbox, given back on drop.
pub(crate) struct InboxPlace(Arc<AtomicUsize>, usize);

impl Drop for InboxPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// Router sends commands to the worker that owns a shard.
pub(crate) struct Router {
    workers: Vec<Sender<Cmd>>,
    /// Bytes of received Raft messages waiting for their worker.
    inbox: Arc<AtomicUsize>,
}

impl Router {
    pub(crate) fn new(workers: Vec<Sender<Cmd>>) -> Self {
        Router {
            workers,
            inbox: Default::default(),
        }
    }

    /// deliver routes a Raft message received from a peer, unless the host's inbox is full
    /// (then it is dropped and false returned).
    pub(crate) fn deliver(&self, shard: u64, msg: Message) -> bool {
        let size = protobuf::Message::compute_size(&msg) as usize;
        if self.inbox.fetch_add(size, Ordering::AcqRel) + size > MAX_INBOX_BYTES {
            self.inbox.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        let place = Some(InboxPlace(self.inbox.clone(), size));
        self.send(
            shard,
            Cmd::Raft {
                shard,
                msg,
                _place: place,
            },
        );
        true
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

    /// workers is the number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.workers.len()
    }

    /// send_to sends a worker-wide command to worker `i`.
    pub(crate) fn send_to(&self, i: usize, cmd: Cmd) {
        let _ = self.workers[i].send(cmd);
    }

    /// queued is the number of commands waiting for the workers.
    pub(crate) fn queued(&self) -> usize {
        self.workers.iter().map(|w| w.len()).sum()
    }

    /// inbox_bytes is the size of the received Raft messages waiting for their worker.
    pub(crate) fn inbox_bytes(&self) -> usize {
        self.inbox.load(Ordering::Relaxed)
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
    /// Bytes the replica has handed to its state machine and not applied.
    pub(crate) applying: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) sm: SharedSm,
    /// Proposals of this shard waiting for their result on this host.
    pub(crate) in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

/// Running is the set of replicas running on a host, shared with the workers so that a
/// replica that stops by itself (removed from its shard, or failed) leaves it too.
pub(crate) type Running = Arc<RwLock<HashMap<u64, LocalReplica>>>;

/// Closing lists the (shard, incarnation) pairs that have stopped but whose apply thread has
/// not yet finished what they were handed: the shard's data may not be removed, nor the
/// shard started again, until then.
#[derive(Clone, Default)]
pub(crate) struct Closing(Arc<parking_lot::Mutex<std::collections::HashSet<(u64, u64)>>>);

impl Closing {
    pub(crate) fn begin(&self, shard: u64, incarnation: u64) {
        self.0.lock().insert((shard, incarnation));
    }

    pub(crate) fn end(&self, shard: u64, incarnation: u64) {
        self.0.lock().remove(&(shard, incarnation));
    }

    /// check refuses, with `Busy`, while an earlier start of `shard` is still closing.
    pub(crate) fn check(&self, shard: u64) -> Result<()> {
        if self.0.lock().iter().any(|(s, _)| *s == shard) {
            return Err(Error::Busy(format!(
                "the previous replica of shard {shard} is still finishing its apply work"
            )));
        }
        Ok(())
    }
}
