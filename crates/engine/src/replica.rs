//! A replica as its step worker owns it: the raft-rs node plus the callers waiting on it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use raft::RawNode;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::event::Membership;
use crate::state_machine::ApplyResult;
use crate::storage::ReplicaStorage;

/// ProposalId identifies a proposal across the cluster: the proposing host's nonce and a
/// per-host sequence number. It travels in the entry's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ProposalId {
    pub(crate) nonce: u64,
    pub(crate) seq: u64,
}

impl ProposalId {
    pub(crate) fn encode(self) -> Vec<u8> {
        self.encode_with(None)
    }

    /// encode_with is an entry's context: the id, then the proposal's session if it has one.
    pub(crate) fn encode_with(self, session: Option<crate::session::Session>) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + crate::session::ENCODED_LEN);
        v.extend_from_slice(&self.nonce.to_le_bytes());
        v.extend_from_slice(&self.seq.to_le_bytes());
        if let Some(s) = session {
            s.encode_into(&mut v);
        }
        v
    }

    /// decode reads the id at the start of an entry's context (a session may follow it).
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 16 && b.len() != 16 + crate::session::ENCODED_LEN {
            return None;
        }
        Some(ProposalId {
            nonce: u64::from_le_bytes(b[..8].try_into().ok()?),
            seq: u64::from_le_bytes(b[8..16].try_into().ok()?),
        })
    }
}

/// Completions receives a [`Completion`] for each proposal made with
/// [`crate::Host::propose_tagged`]: one channel can collect the results of many proposals,
/// which lets a caller in another runtime take them in batches.
pub type Completions = tokio::sync::mpsc::UnboundedSender<Completion>;

/// Completion is the outcome of a tagged proposal. It keeps the proposal's place in the
/// host's in-flight limits until it is dropped, so results nobody has taken yet count
/// against the limits too.
pub struct Completion {
    /// The tag the proposal was made with.
    pub tag: u64,
    /// The state machine's result, or why there is none.
    pub result: Result<ApplyResult>,
    _place: Option<Permit>,
}

impl Completion {
    /// unplaced is the outcome of a proposal that never took a place in the limits (one
    /// refused at once).
    pub fn unplaced(tag: u64, result: Result<ApplyResult>) -> Self {
        Completion {
            tag,
            result,
            _place: None,
        }
    }
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("tag", &self.tag)
            .field("result", &self.result)
            .finish()
    }
}

/// AppliedSink is where the result of one proposal goes. One that is dropped unanswered
/// answers `Closed`, so that no caller waits forever. It holds the proposal's place in the
/// in-flight limits until then.
pub(crate) struct AppliedSink(Option<Sink>, Option<Permit>);

/// Permit is one place in the host's and the shard's in-flight counts, given back on drop.
pub(crate) struct Permit {
    host: Arc<AtomicUsize>,
    shard: Arc<AtomicUsize>,
}

impl Permit {
    /// acquire takes a place in both counts, or refuses with `Busy` when either is full.
    pub(crate) fn acquire(
        host: &Arc<AtomicUsize>,
        host_limit: usize,
        shard: &Arc<AtomicUsize>,
        shard_limit: usize,
    ) -> Result<Permit> {
        if host.fetch_add(1, Ordering::AcqRel) >= host_limit {
            host.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Busy(format!(
                "{host_limit} proposals are already waiting on this host"
            )));
        }
        if shard.fetch_add(1, Ordering::AcqRel) >= shard_limit {
            shard.fetch_sub(1, Ordering::AcqRel);
            host.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Busy(format!(
                "{shard_limit} proposals are already waiting on this shard"
            )));
        }
        Ok(Permit {
            host: host.clone(),
            shard: shard.clone(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.host.fetch_sub(1, Ordering::AcqRel);
        self.shard.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Sink {
    Oneshot(oneshot::Sender<Result<ApplyResult>>),
    Tagged(u64, Completions),
}

impl AppliedSink {
    pub(crate) fn oneshot(s: oneshot::Sender<Result<ApplyResult>>, p: Option<Permit>) -> Self {
        AppliedSink(Some(Sink::Oneshot(s)), p)
    }

    pub(crate) fn tagged(tag: u64, c: Completions, p: Option<Permit>) -> Self {
        AppliedSink(Some(Sink::Tagged(tag, c)), p)
    }

    /// place holds a place in the in-flight limits with nobody to answer: the place of a
    /// proposal whose caller stopped waiting, kept until its entry is applied.
    pub(crate) fn place(p: Permit) -> Self {
        AppliedSink(None, Some(p))
    }

    pub(crate) fn send(mut self, r: Result<ApplyResult>) {
        self.deliver(r);
    }

    /// answer_early answers the caller now and hands back the proposal's place, which its
    /// entry still takes until it is applied or dropped.
    pub(crate) fn answer_early(mut self, r: Result<ApplyResult>) -> Option<Permit> {
        let place = self.1.take();
        self.deliver(r);
        place
    }

    fn deliver(&mut self, r: Result<ApplyResult>) {
        let place = self.1.take();
        match self.0.take() {
            Some(Sink::Oneshot(s)) => {
                // The place is free before the caller hears, so it can propose again at once.
                drop(place);
                let _ = s.send(r);
            }
            Some(Sink::Tagged(tag, c)) => {
                let _ = c.send(Completion {
                    tag,
                    result: r,
                    _place: place,
                });
            }
            None => {}
        }
    }
}

impl Drop for AppliedSink {
    fn drop(&mut self) {
        self.deliver(Err(Error::Closed));
    }
}

/// ProposalWaiter holds the channels of a local proposal until its entry commits.
pub(crate) struct ProposalWaiter {
    pub(crate) committed: Option<oneshot::Sender<Result<u64>>>,
    pub(crate) applied: Option<AppliedSink>,
    pub(crate) deadline: Instant,
}

impl ProposalWaiter {
    pub(crate) fn fail(self, e: impl Fn() -> Error) {
        if let Some(c) = self.committed {
            let _ = c.send(Err(e()));
        }
        if let Some(a) = self.applied {
            a.send(Err(e()));
        }
    }

    /// time_out answers a proposal that is in Raft with a timeout and keeps its place.
    fn time_out(self) -> Option<Permit> {
        if let Some(c) = self.committed {
            let _ = c.send(Err(Error::Timeout));
        }
        self.applied
            .and_then(|a| a.answer_early(Err(Error::Timeout)))
    }
}

/// ReadWaiter is a linearizable read waiting for its read index and then for apply.
pub(crate) struct ReadWaiter {
    pub(crate) reply: oneshot::Sender<Result<u64>>,
    pub(crate) deadline: Instant,
    /// The read's place in the in-flight limits, given back when it is answered.
    pub(crate) _place: Option<Permit>,
}

/// ConfWaiter is a membership change waiting for its entry to apply.
pub(crate) struct ConfWaiter {
    pub(crate) reply: oneshot::Sender<Result<Membership>>,
    pub(crate) deadline: Instant,
}

/// Replica is one shard's replica inside a step worker.
pub(crate) struct Replica {
    pub(crate) shard: u64,
    pub(crate) id: u64,
    /// Distinguishes this start of the replica from earlier ones of the same shard on this
    /// host; reports of the apply thread carry it.
    pub(crate) incarnation: u64,
    pub(crate) node: RawNode<ReplicaStorage>,
    /// Leader and term last reported, to emit events only on change.
    pub(crate) leader: u64,
    pub(crate) term: u64,
    /// Proposals received since the last step, proposed together as one message.
    pub(crate) queued: Vec<(ProposalId, Vec<u8>, Option<crate::session::Session>)>,
    pub(crate) proposals: HashMap<ProposalId, ProposalWaiter>,
    pub(crate) confs: HashMap<ProposalId, ConfWaiter>,
    /// Membership changes that committed, answered once the replica has applied them, so
    /// that the next change is not refused as overlapping.
    pub(crate) confs_committed: Vec<(u64, ConfWaiter, Result<Membership>)>,
    /// Reads not yet sent to Raft; one read index request serves all of them.
    pub(crate) reads_queued: Vec<ReadWaiter>,
    /// In order, so that re-sending them is the same on every run (the simulation replays).
    pub(crate) reads_in_flight: BTreeMap<u64, ReadsInFlight>,
    /// Reads whose index is known, waiting for the replica to apply that far.
    pub(crate) reads_ready: Vec<(u64, ReadWaiter)>,
    /// Highest index the state machine has applied.
    pub(crate) applied: u64,
    /// Entries handed to the apply thread and not yet applied, as (last index, bytes) per
    /// hand-over; `applying` is their total.
    handed: VecDeque<(u64, u64)>,
    pub(crate) applying: u64,
    /// Set once a committed change removed this replica.
    pub(crate) removed: bool,
    /// The places in the in-flight limits of proposals whose callers timed out while their
    /// entries were in Raft: an entry keeps its place until it is applied, or until a change
    /// of leader may have dropped it.
    pub(crate) expired: HashMap<ProposalId, Permit>,
    /// The host-wide and this replica's counts of bytes handed to the state machine and not
    /// applied (`applying`), for admission.
    pub(crate) budget: Applying,
    /// Whether the replica has work, or has quiesced (see `crate::quiesce`).
    pub(crate) quiet: crate::quiesce::Quiet,
}

/// Applying counts bytes handed to state machines and not yet applied: one replica's, and
/// the host's total, which admission and flow control read.
#[derive(Clone, Default)]
pub(crate) struct Applying {
    pub(crate) replica: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) host: Arc<std::sync::atomic::AtomicU64>,
}

impl Applying {
    fn add(&self, bytes: u64) {
        self.replica.fetch_add(bytes, Ordering::AcqRel);
        self.host.fetch_add(bytes, Ordering::AcqRel);
    }

    fn sub(&self, bytes: u64) {
        self.replica.fetch_sub(bytes, Ordering::AcqRel);
        self.host.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// host_total is the host's count.
    pub(crate) fn host_total(&self) -> u64 {
        self.host.load(Ordering::Acquire)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        // What the replica still had handed over no longer counts against the host.
        self.budget.sub(self.applying);
    }
}

impl Replica {
    pub(crate) fn new(
        shard: u64,
        id: u64,
        node: RawNode<ReplicaStorage>,
        applied: u64,
        incarnation: u64,
    ) -> Self {
        Replica {
            shard,
            id,
            incarnation,
            node,
            leader: 0,
            term: 0,
            queued: Vec::new(),
            proposals: HashMap::new(),
            confs: HashMap::new(),
            confs_committed: Vec::new(),
            reads_queued: Vec::new(),
            reads_in_flight: BTreeMap::new(),
            reads_ready: Vec::new(),
            applied,
            handed: VecDeque::new(),
            applying: 0,
            removed: false,
            expired: HashMap::new(),
            budget: Applying::default(),
            quiet: Default::default(),
        }
    }

    /// on_applied completes reads whose index the state machine has now reached.
    /// hand_over counts entries up to `last` (`bytes` of them) as handed to the apply thread.
    pub(crate) fn hand_over(&mut self, last: u64, bytes: u64) {
        self.handed.push_back((last, bytes));
        self.applying += bytes;
        self.budget.add(bytes);
    }

    /// behind tells whether this replica should take no more work until its state machine
    /// catches up: a follower with more than `limit` bytes handed to it and not applied, or
    /// with any when the host as a whole has more than `host_limit`. A leader carries on, so
    /// that it keeps its followers (it takes no new proposals meanwhile, see `saturated`),
    /// and so does one that has nothing waiting at all, whatever its entries' size.
    pub(crate) fn behind(&self, limit: u64, host_limit: u64) -> bool {
        self.node.raft.state != raft::StateRole::Leader && self.saturated(limit, host_limit)
    }

    /// saturated tells whether the replica's state machine, or the host's, is so far behind
    /// that the replica takes no new proposals.
    pub(crate) fn saturated(&self, limit: u64, host_limit: u64) -> bool {
        self.applying > limit || (self.applying > 0 && self.budget.host_total() > host_limit)
    }

    pub(crate) fn on_applied(&mut self, index: u64) {
        if index <= self.applied {
            return;
        }
        self.applied = index;
        // After a snapshot install raft-rs already counts everything up to it as applied
        // (see the worker); reports of batches from before it must not move that back.
        if index > self.node.raft.raft_log.applied {
            self.node.advance_apply_to(index);
        }
        while let Some(&(last, bytes)) = self.handed.front() {
            if last > index {
                break;
            }
            self.handed.pop_front();
            self.applying -= bytes;
            self.budget.sub(bytes);
        }
        let mut i = 0;
        while i < self.confs_committed.len() {
            if self.confs_committed[i].0 <= index {
                let (_, w, res) = self.confs_committed.swap_remove(i);
                let _ = w.reply.send(res);
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.reads_ready.len() {
            if self.reads_ready[i].0 <= index {
                let (_, w) = self.reads_ready.swap_remove(i);
                let _ = w.reply.send(Ok(index));
            } else {
                i += 1;
            }
        }
    }

    /// expire fails every waiter whose deadline has passed.
    pub(crate) fn expire(&mut self, now: Instant) {
        // Still queued (no leader yet): never proposed, so say so.
        let shard = self.shard;
        let proposals = &mut self.proposals;
        self.queued.retain(|(id, _, _)| match proposals.get(id) {
            Some(w) if w.deadline <= now => {
                if let Some(w) = proposals.remove(id) {
                    w.fail(|| Error::NoLeader(shard));
                }
                false
            }
            Some(_) => true,
            None => false,
        });
        let mut i = 0;
        while i < self.reads_queued.len() {
            if self.reads_queued[i].deadline <= now {
                let w = self.reads_queued.swap_remove(i);
                let _ = w.reply.send(Err(Error::NoLeader(shard)));
            } else {
                i += 1;
            }
        }
        let expired: Vec<ProposalId> = self
            .proposals
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(place) = self
                .proposals
                .remove(&id)
                .and_then(ProposalWaiter::time_out)
            {
                self.expired.insert(id, place);
            }
        }
        let expired: Vec<ProposalId> = self
            .confs
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(w) = self.confs.remove(&id) {
                let _ = w.reply.send(Err(Error::Timeout));
            }
        }
        for f in self.reads_in_flight.values_mut() {
            expire_reads(&mut f.waiters, now);
        }
        self.reads_in_flight.retain(|_, f| !f.waiters.is_empty());
        let mut i = 0;
        while i < self.reads_ready.len() {
            if self.reads_ready[i].1.deadline <= now {
                let (_, w) = self.reads_ready.swap_remove(i);
                let _ = w.reply.send(Err(Error::Timeout));
            } else {
                i += 1;
            }
        }
    }

    /// fail_all answers every waiter with an error; used when the replica stops.
    pub(crate) fn fail_all(&mut self, e: impl Fn() -> Error) {
        self.queued.clear();
        self.expired.clear();
        for (_, w) in self.proposals.drain() {
            w.fail(&e);
        }
        for (_, w) in self.confs.drain() {
            let _ = w.reply.send(Err(e()));
        }
        for (_, w, _) in self.confs_committed.drain(..) {
            let _ = w.reply.send(Err(e()));
        }
        for w in self.reads_queued.drain(..) {
            let _ = w.reply.send(Err(e()));
        }
        for (_, f) in std::mem::take(&mut self.reads_in_flight) {
            for w in f.waiters {
                let _ = w.reply.send(Err(e()));
            }
        }
        for (_, w) in self.reads_ready.drain(..) {
            let _ = w.reply.send(Err(e()));
        }
    }

    /// fail_proposals_unknown answers every proposal and membership change handed to Raft and
    /// not yet committed with "outcome unknown" (`why` says why): after a leader change or a
    /// snapshot install, this replica may never see them commit, though they may have.
    pub(crate) fn fail_proposals_unknown(&mut self, why: &str) {
        // Proposals still queued were never handed to Raft: they stay, to be proposed once
        // a leader is known.
        let queued: std::collections::HashSet<ProposalId> =
            self.queued.iter().map(|(id, _, _)| *id).collect();
        let in_flight: Vec<ProposalId> = self
            .proposals
            .keys()
            .filter(|id| !queued.contains(id))
            .copied()
            .collect();
        for id in in_flight {
            if let Some(w) = self.proposals.remove(&id) {
                w.fail(|| Error::OutcomeUnknown(why.into()));
            }
        }
        self.expired.clear();
        for (_, w) in self.confs.drain() {
            let _ = w.reply.send(Err(Error::OutcomeUnknown(why.into())));
        }
    }

    /// answer_committed_confs answers membership changes that committed, whether or not the
    /// replica applied them yet; used when the replica stops because it was removed.
    pub(crate) fn answer_committed_confs(&mut self) {
        for (_, w, res) in self.confs_committed.drain(..) {
            let _ = w.reply.send(res);
        }
    }

    /// fail_reads_in_flight drops reads whose read index request may never be answered
    /// (after a leader change) so callers can retry.
    pub(crate) fn fail_reads_in_flight(&mut self) {
        for (_, f) in std::mem::take(&mut self.reads_in_flight) {
            for w in f.waiters {
                let _ = w.reply.send(Err(Error::LeaderChanged(self.shard)));
            }
        }
    }
}

/// ReadsInFlight are the reads waiting on one read index request.
pub(crate) struct ReadsInFlight {
    /// The request's context, unique across the cluster.
    pub(crate) ctx: Vec<u8>,
    /// When the request was last handed to Raft.
    pub(crate) sent: Instant,
    pub(crate) waiters: Vec<ReadWaiter>,
}

fn expire_reads(waiters: &mut Vec<ReadWaiter>, now: Instant) {
    let mut i = 0;
    while i < waiters.len() {
        if waiters[i].deadline <= now {
            let w = waiters.swap_remove(i);
            let _ = w.reply.send(Err(Error::Timeout));
        } else {
            i += 1;
        }
    }
}

/// ReplicaStatus is a point-in-time view of a local replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Shard id.
    pub shard_id: u64,
    /// Local replica id.
    pub replica_id: u64,
    /// Leader replica id as known locally, 0 if unknown.
    pub leader_id: u64,
    /// Current term.
    pub term: u64,
    /// Highest committed index known locally.
    pub commit: u64,
    /// Highest index applied to the state machine.
    pub applied: u64,
    /// Bytes of committed entries handed to the state machine and not yet applied.
    pub applying_bytes: u64,
    /// Current membership.
    pub membership: Membership,
    /// Whether the replica has quiesced: its shard was idle, and it neither ticks nor sends
    /// heartbeats until work arrives.
    pub quiesced: bool,
}
