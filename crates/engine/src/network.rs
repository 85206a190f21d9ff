//! Network is what a step worker needs of the transport: sending a replica's messages and
//! keeping the address book. The TCP [`crate::transport::Transport`] implements it, and so
//! does the in-memory network of the fault simulation.

use raft::eraftpb::Message;

/// Network carries Raft messages between the replicas of a shard.
pub(crate) trait Network: Send + Sync {
    /// send queues messages of a shard's replica to their destinations; a message that
    /// cannot go is reported back to Raft (unreachable, or a failed snapshot).
    fn send(&self, shard: u64, msgs: Vec<Message>);
    /// count_dropped counts a received message that no local replica may step.
    fn count_dropped(&self);
    /// set_address records where a replica of `shard` (or, without a shard, a replica id in
    /// any shard) can be reached; it returns whether the book changed.
    fn set_address(&self, shard: Option<u64>, replica: u64, addr: &str) -> bool;
}
