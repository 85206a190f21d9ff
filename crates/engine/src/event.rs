//! Events the host reports to its owner.

use std::sync::Arc;

/// Event is a change the host observed. Events are delivered in order per shard from the
/// step workers, so listeners must return quickly and must not call back into the host
/// synchronously in a way that waits for the same worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The shard's leader changed as seen by the local replica. `leader_id` is 0 when unknown.
    LeaderChanged {
        /// Shard id.
        shard_id: u64,
        /// Local replica id.
        replica_id: u64,
        /// Current leader replica id, 0 if none.
        leader_id: u64,
        /// Current term.
        term: u64,
    },
    /// A membership change was applied by the local replica.
    MembershipChanged {
        /// Shard id.
        shard_id: u64,
        /// Local replica id.
        replica_id: u64,
        /// Membership after the change.
        membership: Membership,
    },
    /// The local replica stopped because of an error (state machine or storage).
    ReplicaFailed {
        /// Shard id.
        shard_id: u64,
        /// Local replica id.
        replica_id: u64,
        /// The start of the replica that failed.
        incarnation: u64,
        /// What went wrong.
        error: String,
    },
    /// The local replica was removed from the shard's membership by a committed change.
    ReplicaRemoved {
        /// Shard id.
        shard_id: u64,
        /// Local replica id.
        replica_id: u64,
        /// The start of the replica that was removed.
        incarnation: u64,
    },
    /// The host stopped (fail-stop): its log store failed, or one of its threads panicked.
    HostFailed {
        /// What went wrong.
        error: String,
    },
}

/// Membership is a shard's voter and non-voting sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    /// Voting replica ids, sorted.
    pub voters: Vec<u64>,
    /// Non-voting replica ids, sorted.
    pub non_voters: Vec<u64>,
}

impl Membership {
    pub(crate) fn from_conf_state(cs: &raft::eraftpb::ConfState) -> Self {
        let mut voters = cs.voters.clone();
        let mut non_voters = cs.learners.clone();
        voters.sort_unstable();
        non_voters.sort_unstable();
        Membership { voters, non_voters }
    }
}

/// EventListener receives host events. It is called on engine threads.
pub type EventListener = Arc<dyn Fn(Event) + Send + Sync>;
