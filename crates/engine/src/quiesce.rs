//! Quiescence: a shard with nothing to do stops ticking, as Dragonboat's do.
//!
//! A leader that has seen no work (anything but heartbeats) for a few election timeouts, and
//! has nothing in flight, stops ticking and tells its followers with a notice. A follower
//! that hears the notice from the leader of its term stops ticking too: it neither expects
//! heartbeats nor starts an election. The notice is the step worker's own business: it travels
//! as a message of a type that never crosses the wire otherwise and raft-rs never sees it.
//!
//! Any work wakes a replica: a proposal, a read, a membership change, a leader transfer, a
//! snapshot, or a Raft message other than a heartbeat (a heartbeat wakes it too, unless it
//! left before the notice). A woken follower ticks again, so if its leader died meanwhile it
//! times out and campaigns; its pre-vote wakes the other followers, which then time out of the
//! old leader's lease and vote. Safety does not depend on it: Raft's safety holds with any
//! clock, and reads are confirmed by a quorum (no leases).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use raft::eraftpb::{Message, MessageType};
use raft::StateRole;

use crate::network::Network;
use crate::replica::Replica;
use crate::router::Cmd;

/// Election timeouts without work after which a leader quiesces its shard.
pub(crate) const IDLE_ELECTIONS: u64 = 3;

/// What a notice carries in its context, to tell it from anything else.
const NOTICE: &[u8] = b"zongzi.quiesce";

/// Quiet is a replica's idleness.
#[derive(Debug, Default)]
pub(crate) struct Quiet {
    /// Ticks since the replica last had work.
    pub(crate) idle: u64,
    /// The worker tick at which the replica quiesced; none while it ticks.
    since: Option<u64>,
    /// The host's count of quiesced replicas, which this one is in while quiesced.
    pub(crate) count: Arc<AtomicUsize>,
}

impl Quiet {
    /// since is the worker tick at which the replica quiesced, if it has.
    pub(crate) fn since(&self) -> Option<u64> {
        self.since
    }

    /// enter quiesces the replica at worker tick `tick`.
    pub(crate) fn enter(&mut self, tick: u64) {
        if self.since.replace(tick).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// wake records work: the replica ticks again, and its idleness starts over.
    pub(crate) fn wake(&mut self) {
        self.idle = 0;
        if self.since.take().is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        self.wake();
    }
}

/// skip_tick counts a tick of idleness and tells whether the replica skips it: it has
/// quiesced, or quiesces now (a leader idle for `after` ticks, 0 meaning never, that is
/// settled), in which case it sends every peer a notice. It quiesces instead of ticking, so
/// that no heartbeat follows the notices.
pub(crate) fn skip_tick(r: &mut Replica, tick: u64, after: u64, net: &dyn Network) -> bool {
    if r.quiet.since.is_some() {
        return true;
    }
    r.quiet.idle += 1;
    if after == 0 || r.quiet.idle < after || !may_lead_quiet(r) {
        return false;
    }
    r.quiet.enter(tick);
    let (from, term) = (r.id, r.node.raft.term);
    let notices = r
        .node
        .raft
        .prs()
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| *id != from)
        .map(|to| notice(from, to, term))
        .collect();
    net.send(r.shard, notices);
    true
}

/// on_command wakes the replica when a command for it is work, and takes a quiesce notice
/// (quiescing a follower that may): it returns true for a notice, which goes no further.
pub(crate) fn on_command(r: &mut Replica, cmd: &Cmd, tick: u64, grace: u64) -> bool {
    let work = match cmd {
        Cmd::Raft { msg, .. } if is_notice(msg) => {
            if r.quiet.since.is_none() && may_follow_quiet(r, msg) {
                r.quiet.enter(tick);
            }
            return true;
        }
        // A heartbeat is work only to a quiesced replica, and only once those sent before
        // the notice have had time to arrive.
        Cmd::Raft { msg, .. } => {
            msg.to == r.id
                && (is_work(msg.get_msg_type()) || r.quiet.since.is_some_and(|t| tick - t >= grace))
        }
        Cmd::Propose { .. }
        | Cmd::ConfChange { .. }
        | Cmd::ReadIndex { .. }
        | Cmd::TransferLeader { .. }
        | Cmd::Snapshot { .. }
        | Cmd::SnapshotStatus { .. } => true,
        _ => false,
    };
    if work {
        r.quiet.wake();
    }
    false
}

/// notice is the message a leader sends each peer when it quiesces.
pub(crate) fn notice(from: u64, to: u64, term: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgBeat);
    m.from = from;
    m.to = to;
    m.term = term;
    m.context = NOTICE.to_vec().into();
    m
}

/// is_notice tells whether a received message is a quiesce notice.
pub(crate) fn is_notice(m: &Message) -> bool {
    m.get_msg_type() == MessageType::MsgBeat && m.context.as_ref() == NOTICE
}

/// local_only tells whether a message type is one raft-rs makes for itself and never sends:
/// one received from the network is refused.
pub(crate) fn local_only(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::MsgHup
            | MessageType::MsgBeat
            | MessageType::MsgUnreachable
            | MessageType::MsgSnapStatus
            | MessageType::MsgCheckQuorum
    )
}

/// is_work tells whether a received Raft message is work. Heartbeats and their responses are
/// not: a leader sends them while it waits to quiesce.
pub(crate) fn is_work(t: MessageType) -> bool {
    !matches!(
        t,
        MessageType::MsgHeartbeat | MessageType::MsgHeartbeatResponse
    )
}

/// settled tells whether a replica has nothing in flight: nothing of its callers waits on it,
/// no membership change or leader transfer is under way, and its log is committed.
pub(crate) fn settled(r: &Replica) -> bool {
    let raft = &r.node.raft;
    r.queued.is_empty()
        && r.proposals.is_empty()
        && r.expired.is_empty()
        && r.confs.is_empty()
        && r.confs_committed.is_empty()
        && r.reads_queued.is_empty()
        && r.reads_in_flight.is_empty()
        && r.reads_ready.is_empty()
        && raft.lead_transferee.is_none()
        && raft.raft_log.committed == raft.raft_log.last_index()
        && !raft.has_pending_conf()
        && !r.node.has_ready()
}

/// may_lead_quiet tells whether a leader may quiesce its shard now: it has nothing in flight,
/// and every peer that answers has its whole log (one that lags would stay behind).
pub(crate) fn may_lead_quiet(r: &Replica) -> bool {
    let raft = &r.node.raft;
    let last = raft.raft_log.last_index();
    raft.state == StateRole::Leader
        && settled(r)
        && raft
            .prs()
            .iter()
            .all(|(_, p)| p.matched == last || !p.recent_active)
}

/// may_follow_quiet tells whether a follower may quiesce on a notice `m`: it comes from the
/// leader the follower knows, in its term, and the follower has nothing in flight.
pub(crate) fn may_follow_quiet(r: &Replica, m: &Message) -> bool {
    let raft = &r.node.raft;
    m.to == r.id
        && raft.state == StateRole::Follower
        && m.term == raft.term
        && m.from != 0
        && m.from == raft.leader_id
        && settled(r)
}
