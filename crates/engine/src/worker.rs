//! The step worker: owns a fixed subset of replicas and drives them through
//! ready → persist (one batch, one sync for all of them) → send → hand to apply → advance.
//! What it does with each command is in `commands`, with committed entries in `committed`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, MessageType};
use raft::SnapshotStatus;
use raft_engine::LogBatch;

use crate::apply::ApplyTask;
use crate::error::{Error, Result};
use crate::event::{Event, EventListener, Membership};
use crate::fault::{panic_message, Fault};
use crate::metrics::{count, HistogramSnapshot, Metrics, APPLY_LAG};
use crate::network::Network;
use crate::quiesce;
use crate::replica::{AppliedSink, ProposalId, ReadsInFlight, Replica, ReplicaStatus};
use crate::router::{Closing, Cmd, Running};
use crate::storage::LogStore;

mod commands;
mod committed;

/// Ticks a read index request may go unanswered before it is sent again.
const READ_RESEND_TICKS: u32 = 3;

/// Worker is one step thread's state.
pub(crate) struct Worker {
    pub(crate) store: Arc<LogStore>,
    pub(crate) transport: Arc<dyn Network>,
    pub(crate) apply: Sender<ApplyTask>,
    pub(crate) events: Option<EventListener>,
    pub(crate) tick: Duration,
    pub(crate) nonce: u64,
    pub(crate) compaction_overhead: u64,
    /// Bytes a follower may have handed to its state machine and not applied.
    pub(crate) max_applying: u64,
    /// Bytes all of the host's replicas may have handed over and not applied.
    pub(crate) max_applying_host: u64,
    pub(crate) fault: Arc<Fault>,
    running: Running,
    pub(crate) replicas: HashMap<u64, Replica>,
    /// Shards with work, in order: a cycle handles them the same way on every run.
    dirty: BTreeSet<u64>,
    batch: LogBatch,
    /// The batch holds records (membership) that must be durable before the next cycle.
    urgent: bool,
    /// The batch holds records that must be synced when written: entries, a snapshot, a term
    /// or a vote. A commit index raised alone needs no sync: Raft keeps it in memory, a
    /// restart learns it again from the leader, and boot raises it to what the state
    /// machine has applied.
    must_sync: bool,
    next_read_ctx: u64,
    compacted: bool,
    /// Snapshots recorded in the batch; older files go once the batch is on disk.
    prune: Vec<(u64, u64)>,
    /// Apply tasks that may start only once the batch is on disk: a received snapshot and
    /// what follows it, and committed membership changes and what follows them. A persistent
    /// state machine must never get ahead of the log it will reopen against.
    after_sync: Vec<ApplyTask>,
    /// Shards with a task in `after_sync`: their later tasks of the cycle queue behind it.
    defer_shards: std::collections::HashSet<u64>,
    /// Incarnations stopped here whose apply work is not finished (shared with the host).
    pub(crate) closing: Closing,
    root: std::path::PathBuf,
    /// Ticks without work after which a leader quiesces its shard (0: never).
    pub(crate) quiesce_after: u64,
    /// Ticks after quiescing during which a heartbeat (sent before the notice) wakes nobody.
    pub(crate) quiesce_grace: u64,
    /// Ticks of this worker so far.
    ticks: u64,
    /// The host's count of quiesced replicas.
    pub(crate) quiesced: Arc<AtomicUsize>,
    pub(crate) metrics: Arc<Metrics>,
    /// Entries in the batch since it was last written.
    batch_entries: usize,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Arc<LogStore>,
        transport: Arc<dyn Network>,
        apply: Sender<ApplyTask>,
        events: Option<EventListener>,
        tick: Duration,
        nonce: u64,
        compaction_overhead: u64,
        max_applying: u64,
        fault: Arc<Fault>,
        running: Running,
        root: std::path::PathBuf,
    ) -> Self {
        Worker {
            store,
            transport,
            apply,
            events,
            tick,
            nonce,
            compaction_overhead,
            max_applying,
            max_applying_host: u64::MAX,
            fault,
            running,
            replicas: HashMap::new(),
            dirty: BTreeSet::new(),
            batch: LogBatch::default(),
            urgent: false,
            must_sync: false,
            next_read_ctx: 1,
            compacted: false,
            prune: Vec::new(),
            after_sync: Vec::new(),
            defer_shards: Default::default(),
            closing: Closing::default(),
            root,
            quiesce_after: 0,
            quiesce_grace: 0,
            ticks: 0,
            quiesced: Default::default(),
            metrics: Default::default(),
            batch_entries: 0,
        }
    }

    /// run is the worker thread: the loop until shutdown, then every replica it still owns
    /// is answered. A storage error or a panic in the loop stops the whole host.
    pub(crate) fn run(mut self, rx: Receiver<Cmd>) {
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_loop(&rx)));
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fault.trip(e.to_string()),
            Err(p) => self
                .fault
                .trip(format!("step worker panicked: {}", panic_message(&*p))),
        }
        let failed = self.fault.error().map(|e| e.to_string());
        for (_, mut r) in self.replicas.drain() {
            match &failed {
                Some(msg) => {
                    let msg = msg.clone();
                    r.fail_all(move || Error::HostFailed(msg.clone()))
                }
                None => r.fail_all(|| Error::Closed),
            }
        }
    }

    /// busy tells whether a replica has work left for the next cycle.
    #[cfg(test)]
    pub(crate) fn busy(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// run_loop steps replicas until shutdown; an error is a storage failure.
    fn run_loop(&mut self, rx: &Receiver<Cmd>) -> Result<()> {
        let mut next_tick = Instant::now() + self.tick;
        let mut next_purge = Instant::now() + Duration::from_secs(10);
        loop {
            let now = Instant::now();
            let wait = if self.dirty.is_empty() {
                next_tick.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match rx.recv_timeout(wait) {
                Ok(Cmd::Shutdown) => break,
                Ok(_) if self.fault.is_failed() => break,
                Ok(cmd) => self.handle(cmd),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let mut shutdown = false;
            for _ in 0..8192 {
                match rx.try_recv() {
                    Ok(Cmd::Shutdown) => {
                        shutdown = true;
                        break;
                    }
                    Ok(cmd) => self.handle(cmd),
                    Err(_) => break,
                }
            }
            // A failed host stops at once, with commands still queued behind the shutdown.
            if shutdown || self.fault.is_failed() {
                break;
            }
            let now = Instant::now();
            if now >= next_tick {
                self.on_tick(now);
                next_tick = now + self.tick;
            }
            self.cycle(now)?;
            if self.compacted && now >= next_purge {
                self.compacted = false;
                next_purge = now + Duration::from_secs(10);
                self.store.purge()?;
            }
        }
        Ok(())
    }

    /// write_batch writes the batch (synced, when the host syncs) and counts it.
    fn write_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let entries = std::mem::take(&mut self.batch_entries);
        let sync = std::mem::take(&mut self.must_sync) || self.urgent;
        let start = Instant::now();
        self.store.write_with(&mut self.batch, sync)?;
        if self.store.fsync && sync {
            let m = &self.metrics;
            m.fsync_seconds.observe(start.elapsed().as_secs_f64());
            m.entries_per_fsync.observe(entries as f64);
        }
        Ok(())
    }

    /// apply_lag is the histogram, over this worker's replicas, of the entries each has seen
    /// committed and not yet applied.
    fn apply_lag(&self) -> HistogramSnapshot {
        let lag = self.replicas.values().map(|r| {
            let committed = r.node.raft.raft_log.committed;
            committed.saturating_sub(r.applied) as f64
        });
        HistogramSnapshot::of(APPLY_LAG, lag)
    }

    fn emit(&self, ev: Event) {
        if let Some(l) = &self.events {
            l(ev);
        }
    }

    /// on_tick advances every replica's logical clock by one tick.
    pub(crate) fn on_tick(&mut self, now: Instant) {
        let resend = self.tick * READ_RESEND_TICKS;
        self.ticks += 1;
        for (shard, r) in self.replicas.iter_mut() {
            if quiesce::skip_tick(r, self.ticks, self.quiesce_after, &*self.transport) {
                continue;
            }
            if r.node.tick() {
                self.dirty.insert(*shard);
            }
            r.expire(now);
            // A leader that has not yet committed in its term drops read index requests
            // without an answer (raft-rs); ask again rather than wait out the deadline.
            // Each attempt has a context of its own: raft-rs counts a heartbeat response as
            // confirming every request registered under its context, so a late response to
            // an earlier attempt must not confirm a later one (nor the requests queued before
            // it), or a deposed leader could answer with a stale index.
            if r.node.raft.leader_id != 0 {
                let due: Vec<u64> = r
                    .reads_in_flight
                    .iter()
                    .filter(|(_, f)| now.duration_since(f.sent) >= resend)
                    .map(|(seq, _)| *seq)
                    .collect();
                for seq in due {
                    let Some(mut f) = r.reads_in_flight.remove(&seq) else {
                        continue;
                    };
                    let id = ProposalId {
                        nonce: self.nonce,
                        seq: self.next_read_ctx,
                    };
                    self.next_read_ctx += 1;
                    f.ctx = id.encode();
                    f.sent = now;
                    r.node.read_index(f.ctx.clone());
                    r.reads_in_flight.insert(id.seq, f);
                    self.dirty.insert(*shard);
                }
            }
        }
    }

    /// cycle runs one ready/persist/advance round over every replica with work.
    pub(crate) fn cycle(&mut self, now: Instant) -> Result<()> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let dirty = std::mem::take(&mut self.dirty);
        let mut readies = Vec::new();
        for shard in dirty {
            let Some(mut r) = self.replicas.remove(&shard) else {
                continue;
            };
            self.flush_queued(&mut r, now);
            // A follower whose state machine is behind takes no more work (it neither
            // persists nor acknowledges) until an `Applied` report marks it dirty again.
            if r.node.has_ready() && !r.behind(self.max_applying, self.max_applying_host) {
                let rd = self.collect_ready(&mut r)?;
                readies.push(rd);
            }
            self.replicas.insert(shard, r);
        }
        if !self.batch.is_empty() {
            self.write_batch()?;
            self.urgent = false;
        }
        self.release();
        for (shard, mut rd) in readies {
            let Some(mut r) = self.replicas.remove(&shard) else {
                continue;
            };
            self.transport.send(shard, rd.take_persisted_messages());
            let installed =
                Some(rd.snapshot().get_metadata().index).filter(|_| !rd.snapshot().is_empty());
            let mut light = r.node.advance_append(rd);
            if let Some(index) = installed {
                // The log now starts after the snapshot. raft-rs reads the entries after its
                // applied index when a campaign starts (looking for membership changes), and
                // panics if they are gone; the snapshot stands for all of them, so they count
                // as applied now, before the state machine has loaded it.
                r.node.advance_apply_to(index);
            }
            if let Some(commit) = light.commit_index() {
                r.node.mut_store().set_commit(&mut self.batch, commit)?;
            }
            self.transport.send(shard, light.take_messages());
            self.handle_committed(&mut r, light.take_committed_entries(), false)?;
            if r.node.has_ready() && !r.behind(self.max_applying, self.max_applying_host) {
                self.dirty.insert(shard);
            }
            if r.node.store().snapshot_wanted.take() {
                self.hand(ApplyTask::Snapshot {
                    shard,
                    incarnation: r.incarnation,
                    reply: None,
                });
            }
            if r.removed {
                self.closing.begin(shard, r.incarnation);
                self.running.write().remove(&shard);
                r.answer_committed_confs();
                r.fail_all(|| {
                    Error::OutcomeUnknown("the replica was removed from the shard".into())
                });
                self.hand(ApplyTask::Close {
                    shard,
                    incarnation: r.incarnation,
                    done: None,
                });
            } else {
                self.replicas.insert(shard, r);
            }
        }
        if self.urgent || !self.after_sync.is_empty() {
            self.write_batch()?;
            self.urgent = false;
        }
        self.release();
        if self.batch.is_empty() {
            for (shard, index) in self.prune.drain(..) {
                let _ = crate::snapshot::prune_below(&self.root, shard, index);
            }
        }
        Ok(())
    }

    /// flush_queued hands queued proposals and reads to Raft as one message each. While the
    /// shard has no leader they stay queued, until a leader is known or their deadline
    /// passes (then they fail with ERR_NO_LEADER: they were never proposed).
    fn flush_queued(&mut self, r: &mut Replica, now: Instant) {
        let leader = r.node.raft.leader_id;
        if !r.queued.is_empty() && leader != 0 {
            let queued = std::mem::take(&mut r.queued);
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgPropose);
            m.from = r.id;
            let ids: Vec<ProposalId> = queued.iter().map(|(id, _, _)| *id).collect();
            for (id, data, session) in queued {
                m.mut_entries().push(Entry {
                    data: data.into(),
                    context: id.encode_with(session).into(),
                    ..Default::default()
                });
            }
            if let Err(e) = r.node.step(m) {
                let shard = r.shard;
                let msg = map_raft_error(e, shard).to_string();
                for id in ids {
                    if let Some(w) = r.proposals.remove(&id) {
                        w.fail(|| Error::Dropped(msg.clone()));
                    }
                }
            }
        }
        if !r.reads_queued.is_empty() && leader != 0 {
            let reads = std::mem::take(&mut r.reads_queued);
            // The context must be unique across the cluster: the leader ignores a read
            // request whose context is already pending, whoever sent it.
            let ctx = self.next_read_ctx;
            self.next_read_ctx += 1;
            let id = ProposalId {
                nonce: self.nonce,
                seq: ctx,
            };
            let request = id.encode();
            r.node.read_index(request.clone());
            r.reads_in_flight.insert(
                ctx,
                ReadsInFlight {
                    ctx: request,
                    sent: now,
                    waiters: reads,
                },
            );
        }
    }

    /// collect_ready takes a replica's Ready, sends what may go before persisting, and adds
    /// what must be persisted to the shared batch.
    fn collect_ready(&mut self, r: &mut Replica) -> Result<(u64, raft::Ready)> {
        let mut rd = r.node.ready();
        let (leader, term) = (r.node.raft.leader_id, r.node.raft.term);
        if leader != r.leader || term != r.term {
            // Reads and proposals in flight under a known leader may never be answered by
            // the next one; their callers hear so now instead of at their deadline (a write
            // may still commit, so its outcome is unknown).
            if leader != r.leader && r.leader != 0 {
                r.fail_reads_in_flight();
                r.fail_proposals_unknown("leadership changed while the entry was in flight");
            }
            if leader != r.leader && leader != 0 {
                count(&self.metrics.leader_changes, 1);
            }
            r.leader = leader;
            r.term = term;
            self.emit(Event::LeaderChanged {
                shard_id: r.shard,
                replica_id: r.id,
                leader_id: leader,
                term,
            });
        }
        self.transport.send(r.shard, rd.take_messages());
        let installing = !rd.snapshot().is_empty();
        if installing {
            r.fail_proposals_unknown(
                "the replica installed a snapshot that may include this entry",
            );
            let meta = rd.snapshot().get_metadata().clone();
            r.node
                .mut_store()
                .install_snapshot(&mut self.batch, meta.clone())?;
            self.defer_shards.insert(r.shard);
            self.after_sync.push(ApplyTask::Recover {
                shard: r.shard,
                incarnation: r.incarnation,
                index: meta.index,
                term: meta.term,
            });
            self.emit(Event::MembershipChanged {
                shard_id: r.shard,
                replica_id: r.id,
                membership: Membership::from_conf_state(meta.get_conf_state()),
            });
        }
        self.batch_entries += rd.entries().len();
        r.node.mut_store().append(&mut self.batch, rd.entries())?;
        if let Some(hs) = rd.hs() {
            let was = r.node.store().hard_state();
            let (term, vote) = (was.term, was.vote);
            if (hs.term, hs.vote) != (term, vote) {
                self.must_sync = true;
            }
            r.node.mut_store().set_hard_state(&mut self.batch, hs)?;
        }
        if installing || !rd.entries().is_empty() {
            self.must_sync = true;
        }
        for rs in rd.take_read_states() {
            let Some(id) = ProposalId::decode(&rs.request_ctx).filter(|id| id.nonce == self.nonce)
            else {
                continue;
            };
            let Some(f) = r.reads_in_flight.remove(&id.seq) else {
                continue;
            };
            for w in f.waiters {
                if r.applied >= rs.index {
                    let _ = w.reply.send(Ok(rs.index));
                } else {
                    r.reads_ready.push((rs.index, w));
                }
            }
        }
        let committed = rd.take_committed_entries();
        self.handle_committed(r, committed, installing)?;
        Ok((r.shard, rd))
    }
}

/// admissible tells whether a received message may be stepped by a replica. raft-rs trusts
/// that a message is for the replica that steps it: one meant for another replica of the
/// shard (a stale address) would be taken as its own and could commit entries this replica
/// never reconciled. A heartbeat may only commit what the replica holds (raft-rs panics on
/// more); one that claims more comes from a peer that is wrong about this replica's log.
fn admissible(r: &Replica, msg: &Message) -> bool {
    let last = r.node.raft.raft_log.last_index();
    msg.to == r.id
        && !quiesce::local_only(msg.get_msg_type())
        && !(msg.get_msg_type() == MessageType::MsgHeartbeat && msg.commit > last)
}

/// map_raft_error turns a raft-rs error into the engine's error.
pub(crate) fn map_raft_error(e: raft::Error, shard: u64) -> Error {
    match e {
        raft::Error::ProposalDropped => {
            Error::Dropped(format!("proposal dropped by shard {shard}"))
        }
        raft::Error::Store(s) => Error::Storage(s.to_string()),
        other => Error::Raft(other.to_string()),
    }
}
