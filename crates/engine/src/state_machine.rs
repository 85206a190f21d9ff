//! The state machine contract: what the engine applies committed entries to.

use std::io::{Read, Write};
use std::sync::Arc;

use parking_lot::RwLock;

/// SmEntry is one committed entry handed to a state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmEntry {
    /// Raft log index of the entry; strictly increasing across calls.
    pub index: u64,
    /// The proposed bytes.
    pub data: Vec<u8>,
}

/// ApplyResult is the state machine's result for one entry, returned to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApplyResult {
    /// A number the state machine chooses (for example a status or a count).
    pub value: u64,
    /// Bytes the state machine chooses.
    pub data: Vec<u8>,
}

/// SmError is an error raised by state machine code. It stops the replica (fail-stop):
/// a state machine that cannot apply an entry can no longer stay in step with its peers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SmError(pub String);

/// StateMachine is a replicated, deterministic state machine.
///
/// Contract:
/// - Calls come from one apply thread per replica at a time; `query` may run concurrently
///   with `update` from other threads (the engine holds a read lock for `query` and a write
///   lock for the others), so a query sees the state between two batches.
/// - `update` must be deterministic: the same entries in the same order give the same state
///   and results on every replica. It returns exactly one result per entry.
/// - `open` is called once before anything else. An in-memory state machine returns 0; a
///   persistent one opens its own store and returns the index it last applied, and the engine
///   replays only what follows it.
/// - `save_snapshot` writes the whole state; `recover_from_snapshot` replaces the whole state
///   with what a snapshot holds (it does not merge).
/// - Any error stops the replica and is reported as [`crate::Event::ReplicaFailed`].
pub trait StateMachine: Send + Sync + 'static {
    /// open prepares the state machine and returns its last applied index (0 if in-memory).
    fn open(&mut self) -> Result<u64, SmError> {
        Ok(0)
    }
    /// update applies a batch of committed entries in order and returns one result per entry.
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError>;
    /// query answers a read-only query against the current state.
    fn query(&self, query: &[u8]) -> Result<Vec<u8>, SmError>;
    /// sync makes applied state durable (persistent state machines); default does nothing.
    fn sync(&mut self) -> Result<(), SmError> {
        Ok(())
    }
    /// save_snapshot writes the full state to `w`.
    fn save_snapshot(&self, w: &mut dyn Write) -> Result<(), SmError>;
    /// recover_from_snapshot replaces the state with the snapshot read from `r`, which holds
    /// the state after entry `index`: the next entries `update` receives follow it.
    fn recover_from_snapshot(&mut self, index: u64, r: &mut dyn Read) -> Result<(), SmError>;
}

/// BatchUpdater applies committed entries of many shards in one call. When a host is
/// configured with one, the apply threads hand it everything that is ready — many shards,
/// many entries — instead of calling each replica's [`StateMachine::update`]; the replicas'
/// state machines still take and recover snapshots. Bindings use it to cross into another
/// runtime once per batch rather than once per shard.
///
/// Contract: called from apply threads, one call at a time per thread; `batch` lists each
/// shard at most once, with its entries in log order; the answer holds one outcome per item,
/// and an error stops only that shard's replica. A snapshot of a shard is taken only between
/// calls, so it always holds exactly the entries of the calls before it. Each item names the
/// incarnation of the replica it is for: entries of an incarnation go to the state machine
/// it was started with, never to one of a later start of the same shard.
pub trait BatchUpdater: Send + Sync + 'static {
    /// update_batch applies each item's entries to its replica's state machine.
    fn update_batch(&self, batch: &[BatchItem<'_>]) -> Vec<Result<Vec<ApplyResult>, SmError>>;
}

/// BatchItem is one replica's share of a batch update.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// The shard.
    pub shard: u64,
    /// The incarnation of the shard's local replica (see [`crate::Host::start_replica_as`]).
    pub incarnation: u64,
    /// Committed entries in log order.
    pub entries: &'a [SmEntry],
}

/// SharedSm is a state machine shared by the apply thread (updates) and readers (queries).
pub(crate) type SharedSm = Arc<RwLock<Box<dyn StateMachine>>>;
