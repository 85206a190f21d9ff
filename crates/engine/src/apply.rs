//! The apply thread: hands committed entries to state machines in batches, takes and
//! recovers snapshots, and reports applied indexes back to the step worker.
//!
//! Invariant: a snapshot filed under index `i` holds exactly the state after entry `i`. The
//! state machine is never handed an entry beyond the applied index that a snapshot would be
//! labelled with: all entries of one shard that go out in one call form one batch, finished
//! as a whole, and a snapshot is taken only between batches.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use raft::eraftpb::{Entry, EntryType};
use tokio::sync::oneshot;

use crate::batch::{Group, Prepared};
use crate::error::{Error, Result};
use crate::replica::AppliedSink;
use crate::router::{Closing, Cmd, Router};
use crate::session::{self, Session, Sessions, Verdict};
use crate::snapshot;
use crate::state_machine::{ApplyResult, BatchItem, BatchUpdater, SharedSm, SmEntry, SmError};

/// ApplyTask is work for an apply thread.
pub(crate) enum ApplyTask {
    Open {
        shard: u64,
        /// Tags what the apply thread reports, so a restarted replica of the shard never
        /// takes a report meant for the one before it.
        incarnation: u64,
        sm: SharedSm,
        applied: u64,
        applied_term: u64,
        snapshot_index: u64,
        sessions: Sessions,
    },
    Entries {
        shard: u64,
        incarnation: u64,
        entries: Vec<Entry>,
        waiters: Vec<(u64, AppliedSink)>,
    },
    Recover {
        shard: u64,
        incarnation: u64,
        index: u64,
        term: u64,
    },
    Snapshot {
        shard: u64,
        incarnation: u64,
        reply: Option<oneshot::Sender<Result<u64>>>,
    },
    /// Close ends an incarnation once everything queued for it before has been handled;
    /// `done` hears when it has (a replica stopped by the host waits for it).
    Close {
        shard: u64,
        incarnation: u64,
        done: Option<oneshot::Sender<Result<()>>>,
    },
}

struct Applied {
    incarnation: u64,
    sm: SharedSm,
    /// Index of the last entry finished (results delivered, index reported).
    applied: u64,
    applied_term: u64,
    last_snapshot: u64,
    /// When the next snapshot is due.
    cadence: snapshot::Cadence,
    /// Highest entry index the state machine has been handed; never above `applied` between
    /// batches.
    handed: u64,
    /// The shard's client sessions, as of `checked`.
    sessions: Sessions,
    /// Highest entry index the session table has seen (ahead of `applied` only while a
    /// batch is prepared).
    checked: u64,
}

/// Applier runs on one thread per step worker.
pub(crate) struct Applier {
    pub(crate) root: PathBuf,
    pub(crate) router: Arc<Router>,
    pub(crate) snapshot_entries: u64,
    batcher: Option<Arc<dyn BatchUpdater>>,
    shards: HashMap<u64, Applied>,
    /// Incarnations stopped and not yet closed here (shared with the host).
    pub(crate) closing: Closing,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// Most tasks taken from the queue at once.
const MAX_DRAIN: usize = 1024;

impl Applier {
    pub(crate) fn new(
        root: PathBuf,
        router: Arc<Router>,
        snapshot_entries: u64,
        batcher: Option<Arc<dyn BatchUpdater>>,
    ) -> Self {
        Applier {
            root,
            router,
            snapshot_entries,
            batcher,
            shards: HashMap::new(),
            closing: Closing::default(),
            metrics: Default::default(),
        }
    }

    /// run processes tasks until every sender is dropped.
    pub(crate) fn run(mut self, rx: Receiver<ApplyTask>) {
        while let Ok(first) = rx.recv() {
            self.drain(first, &rx);
        }
    }

    /// drain processes `first` and whatever else is queued, at most `MAX_DRAIN` tasks. With a
    /// batch updater, consecutive entry tasks of all shards go in one call.
    pub(crate) fn drain(&mut self, first: ApplyTask, rx: &Receiver<ApplyTask>) {
        let mut group = Group::default();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(task) = next {
            taken += 1;
            match task {
                ApplyTask::Entries {
                    shard,
                    incarnation,
                    entries,
                    waiters,
                } if self.batcher.is_some() => {
                    if let Some(p) = self.prepare(shard, incarnation, entries, waiters) {
                        group.add(p);
                    }
                }
                other => {
                    self.flush(&mut group);
                    self.handle(other);
                }
            }
            next = if taken < MAX_DRAIN {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        self.flush(&mut group);
    }

    /// flush applies a group of prepared batches with one call to the batch updater.
    fn flush(&mut self, group: &mut Group) {
        if group.items.is_empty() {
            return;
        }
        let Some(batcher) = self.batcher.clone() else {
            return;
        };
        // Only shards with something for their state machine go out (a leader's empty
        // entry, for one, does not).
        let items: Vec<BatchItem> = group
            .items
            .iter()
            .filter(|p| !p.batch.is_empty())
            .map(|p| BatchItem {
                shard: p.shard,
                incarnation: p.incarnation,
                entries: p.batch.as_slice(),
            })
            .collect();
        let mut outcomes = if items.is_empty() {
            Vec::new().into_iter()
        } else {
            batcher.update_batch(&items).into_iter()
        };
        for p in &group.items {
            if let (Some(a), Some(e)) = (self.shards.get_mut(&p.shard), p.batch.last()) {
                a.handed = a.handed.max(e.index);
            }
        }
        for p in group.drain() {
            let shard = p.shard;
            let out = if p.batch.is_empty() {
                Ok(Vec::new())
            } else {
                outcomes.next().unwrap_or_else(|| {
                    Err(SmError("batch updater returned too few outcomes".into()))
                })
            };
            let res = self.finish(p, out);
            self.after(shard, res);
        }
    }

    fn handle(&mut self, task: ApplyTask) {
        match task {
            ApplyTask::Open {
                shard,
                incarnation,
                sm,
                applied,
                applied_term,
                snapshot_index,
                sessions,
            } => {
                self.shards.insert(
                    shard,
                    Applied {
                        incarnation,
                        sm,
                        applied,
                        applied_term,
                        last_snapshot: snapshot_index,
                        cadence: snapshot::Cadence::after(snapshot::size(
                            &self.root,
                            shard,
                            snapshot_index,
                        )),
                        handed: applied,
                        sessions,
                        checked: applied,
                    },
                );
            }
            ApplyTask::Close {
                shard,
                incarnation,
                done,
            } => {
                // A replica started again since has an Open of its own: leave it be.
                if self.current(shard, incarnation).is_some() {
                    self.shards.remove(&shard);
                }
                self.closing.end(shard, incarnation);
                if let Some(done) = done {
                    let _ = done.send(Ok(()));
                }
            }
            ApplyTask::Entries {
                shard,
                incarnation,
                entries,
                waiters,
            } => {
                let res = self.apply(shard, incarnation, entries, waiters);
                self.after(shard, res);
            }
            ApplyTask::Recover {
                shard,
                incarnation,
                index,
                term,
            } => {
                if self.current(shard, incarnation).is_some() {
                    let res = self.recover(shard, index, term);
                    self.after(shard, res);
                }
            }
            ApplyTask::Snapshot {
                shard,
                incarnation,
                reply,
            } => {
                let res = match self.current(shard, incarnation) {
                    None => Err(Error::ShardNotFound(shard)),
                    Some(a) if a.applied == a.last_snapshot => Ok(a.applied),
                    Some(_) => self.save(shard),
                };
                match reply {
                    Some(reply) => {
                        let _ = reply.send(res);
                    }
                    None => self.after(shard, res.map(|_| ())),
                }
            }
        }
    }

    /// current is the shard's open incarnation, if it is `incarnation`: work queued for an
    /// incarnation that has since closed, or been replaced, never reaches another one.
    fn current(&self, shard: u64, incarnation: u64) -> Option<&Applied> {
        self.shards
            .get(&shard)
            .filter(|a| a.incarnation == incarnation)
    }

    /// after reports a state machine failure, which stops the replica.
    fn after(&mut self, shard: u64, res: Result<()>) {
        if let Err(e) = res {
            let Some(a) = self.shards.remove(&shard) else {
                return;
            };
            self.router.send(
                shard,
                Cmd::ApplyFailed {
                    shard,
                    incarnation: a.incarnation,
                    error: e.to_string(),
                },
            );
        }
    }

    fn apply(
        &mut self,
        shard: u64,
        incarnation: u64,
        entries: Vec<Entry>,
        waiters: Vec<(u64, AppliedSink)>,
    ) -> Result<()> {
        let Some(p) = self.prepare(shard, incarnation, entries, waiters) else {
            return Ok(());
        };
        let out = if p.batch.is_empty() {
            Ok(Vec::new())
        } else {
            let sm = self.shards.get(&shard).map(|a| a.sm.clone());
            match sm {
                Some(sm) => sm.write().update(&p.batch),
                None => Err(SmError("replica closed".into())),
            }
        };
        // The state machine has seen the whole batch, whatever it answered.
        if let (Some(a), Some(e)) = (self.shards.get_mut(&shard), p.batch.last()) {
            a.handed = a.handed.max(e.index);
        }
        self.finish(p, out)
    }

    /// prepare selects the entries a state machine has not seen yet. Entries of client
    /// sessions go through the session table first: one whose series already applied is
    /// answered from it instead.
    fn prepare(
        &mut self,
        shard: u64,
        incarnation: u64,
        entries: Vec<Entry>,
        waiters: Vec<(u64, AppliedSink)>,
    ) -> Option<Prepared> {
        let open = self.shards.get_mut(&shard);
        let Some(a) = open.filter(|a| a.incarnation == incarnation) else {
            for (_, w) in waiters {
                w.send(Err(Error::Closed));
            }
            return None;
        };
        let last = entries.last()?;
        let (last_index, last_term) = (last.index, last.term);
        if last_index <= a.applied {
            return None;
        }
        let mut p = Prepared {
            shard,
            incarnation,
            batch: Vec::new(),
            last_index,
            last_term,
            waiters,
            answers: Vec::new(),
            same_as: Vec::new(),
            records: Vec::new(),
        };
        for e in entries {
            if e.index <= a.applied
                || e.get_entry_type() != EntryType::EntryNormal
                || (e.data.is_empty() && e.context.is_empty())
            {
                continue;
            }
            // An entry an earlier task of this batch brought is in the batch already.
            let session = (e.index > a.checked)
                .then(|| Session::of_context(&e.context))
                .flatten();
            a.checked = a.checked.max(e.index);
            if let Some(s) = session {
                match a.sessions.check(e.index, s) {
                    Verdict::Apply => p.records.push((e.index, s.client_id, s.series)),
                    Verdict::Answer(r) => {
                        p.answers.push((e.index, r));
                        continue;
                    }
                    Verdict::SameAs(first) => {
                        p.same_as.push((e.index, first));
                        continue;
                    }
                }
            }
            p.batch.push(SmEntry {
                index: e.index,
                data: e.data.to_vec(),
            });
        }
        Some(p)
    }

    /// finish hands results to waiting proposers and records the applied index.
    fn finish(
        &mut self,
        p: Prepared,
        out: std::result::Result<Vec<ApplyResult>, SmError>,
    ) -> Result<()> {
        let Prepared {
            shard,
            incarnation,
            batch,
            last_index,
            last_term,
            waiters,
            answers,
            same_as,
            records,
        } = p;
        let open = self.shards.get_mut(&shard);
        let Some(a) = open.filter(|a| a.incarnation == incarnation) else {
            for (_, w) in waiters {
                w.send(Err(Error::Closed));
            }
            return Ok(());
        };
        let results = match out {
            Ok(r) if r.len() == batch.len() => r,
            other => {
                let msg = match other {
                    Ok(r) => format!(
                        "update returned {} results for {} entries",
                        r.len(),
                        batch.len()
                    ),
                    Err(e) => e.0,
                };
                for (_, w) in waiters {
                    w.send(Err(Error::StateMachine(msg.clone())));
                }
                return Err(Error::StateMachine(msg));
            }
        };
        let mut by_index: HashMap<u64, Result<ApplyResult>> = batch
            .iter()
            .map(|e| e.index)
            .zip(results.into_iter().map(Ok))
            .collect();
        for (index, client, series) in records {
            let r = by_index.get(&index).and_then(|r| r.as_ref().ok());
            a.sessions.record(client, series, r);
        }
        for (index, first) in same_as {
            let r = match by_index.get(&first) {
                Some(Ok(r)) => Ok(r.clone()),
                _ => Err(Error::OutcomeUnknown(format!(
                    "entry {index} repeats entry {first}, which has no result"
                ))),
            };
            by_index.insert(index, r);
        }
        by_index.extend(answers);
        for (index, w) in waiters {
            let r = by_index.remove(&index).unwrap_or_else(|| {
                Err(Error::OutcomeUnknown(format!(
                    "entry {index} committed without a result"
                )))
            });
            w.send(r);
        }
        crate::metrics::count(&self.metrics.entries_applied, last_index - a.applied);
        a.applied = last_index;
        a.applied_term = last_term;
        debug_assert!(
            a.handed <= a.applied,
            "entry {} handed past {}",
            a.handed,
            a.applied
        );
        self.router.send(
            shard,
            Cmd::Applied {
                shard,
                incarnation: a.incarnation,
                index: last_index,
            },
        );
        for e in &batch {
            a.cadence.applied(e.data.len());
        }
        let since = a.applied - a.last_snapshot;
        if a.cadence.due(since, self.snapshot_entries) {
            self.save(shard)?;
        }
        Ok(())
    }

    /// save writes a snapshot of the state machine at its applied index and tells the
    /// worker, which records it and compacts the log behind it.
    fn save(&mut self, shard: u64) -> Result<u64> {
        let a = self
            .shards
            .get_mut(&shard)
            .ok_or(Error::ShardNotFound(shard))?;
        let (index, term) = (a.applied, a.applied_term);
        // A state machine that has seen entries beyond `index` would write a snapshot ahead
        // of its label, and whoever restores it would apply those entries a second time.
        debug_assert!(
            a.handed <= index,
            "snapshot at {index} after entry {}",
            a.handed
        );
        if a.handed > index {
            return Err(Error::StateMachine(format!(
                "refusing a snapshot labelled {index}: the state machine has applied up to {}",
                a.handed
            )));
        }
        let sm = a.sm.clone();
        let sessions = &a.sessions;
        let bytes = snapshot::write(&self.root, shard, index, |w| {
            session::write_table(w, sessions)?;
            sm.read()
                .save_snapshot(w)
                .map_err(|e| Error::StateMachine(e.0))
        })?;
        a.last_snapshot = index;
        a.cadence.taken(bytes);
        let incarnation = a.incarnation;
        // The file is in place but not yet recorded in the log store.
        crate::failpoint::hit("snapshot-saved");
        self.router.send(
            shard,
            Cmd::SnapshotTaken {
                shard,
                incarnation,
                index,
                term,
            },
        );
        Ok(index)
    }

    fn recover(&mut self, shard: u64, index: u64, term: u64) -> Result<()> {
        let Some(a) = self.shards.get_mut(&shard) else {
            return Ok(());
        };
        a.sessions = recover_from_file(&self.root, shard, index, &a.sm)?;
        a.applied = index;
        a.applied_term = term;
        a.last_snapshot = index;
        a.cadence.taken(snapshot::size(&self.root, shard, index));
        a.handed = index;
        a.checked = index;
        let incarnation = a.incarnation;
        self.router.send(
            shard,
            Cmd::Applied {
                shard,
                incarnation,
                index,
            },
        );
        Ok(())
    }
}

/// recover_from_file loads the snapshot at `index` into the state machine and returns its
/// session table. The bootstrap snapshot (index 1) has no file: it stands for the initial
/// state.
pub(crate) fn recover_from_file(
    root: &std::path::Path,
    shard: u64,
    index: u64,
    sm: &SharedSm,
) -> Result<Sessions> {
    match snapshot::open(root, shard, index) {
        Ok(f) => {
            let mut r = BufReader::with_capacity(1 << 20, f);
            let sessions = session::read_table(&mut r)?;
            sm.write()
                .recover_from_snapshot(index, &mut r)
                .map_err(|e| Error::StateMachine(e.0))?;
            Ok(sessions)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && index <= 1 => Ok(Sessions::new()),
        Err(e) => Err(Error::Io(e)),
    }
}

/// sessions_of_file reads only the session table of the snapshot at `index` (a persistent
/// state machine that reopens past it keeps its own state).
pub(crate) fn sessions_of_file(root: &std::path::Path, shard: u64, index: u64) -> Result<Sessions> {
    match snapshot::open(root, shard, index) {
        Ok(f) => session::read_table(&mut BufReader::new(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && index <= 1 => Ok(Sessions::new()),
        Err(e) => Err(Error::Io(e)),
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
