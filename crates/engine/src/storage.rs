//! Log storage: one raft-engine instance per host, and the per-replica view of it that
//! raft-rs reads through the `Storage` trait.

use std::collections::VecDeque;
use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use raft_engine::{Command, Config as EngineConfig, Engine, LogBatch, MessageExt};

use crate::error::{Error, Result};
use crate::fault::{panic_message, Fault};

const KEY_HARD_STATE: &[u8] = b"hs";
const KEY_SNAPSHOT: &[u8] = b"snap";
const KEY_CONFS: &[u8] = b"confs";
const KEY_TRUNCATED: &[u8] = b"trunc";
const KEY_REPLICA: &[u8] = b"replica";
/// Default address of a replica id, for every shard: `addr/` + replica.
const KEY_ADDRESS_PREFIX: &[u8] = b"addr/";
/// Address of one shard's replica: `saddr/` + shard + replica.
const KEY_SHARD_ADDRESS_PREFIX: &[u8] = b"saddr/";
/// Region holding host-level records; shard ids never reach it.
pub(crate) const HOST_REGION: u64 = u64::MAX;

/// Entries kept in memory per replica, so the leader and the apply path rarely read files.
const CACHE_ENTRIES: usize = 4096;
/// Most entries a read of the log reserves room for before it knows how many it returns.
const RESERVE_ENTRIES: usize = 256;

/// EntryExt tells raft-engine how to find the index of a raft-rs entry.
pub(crate) struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;
    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// Fs is the file system under the log store: the operating system's, or, in the fault
/// simulation, one that loses what was not synced when a host crashes.
#[cfg(not(test))]
pub(crate) type Fs = raft_engine::env::DefaultFileSystem;
#[cfg(test)]
pub(crate) type Fs = crate::sim::disk::VolatileFs;

/// LogStore is the host's single raft-engine instance. Every replica's log, hard state and
/// snapshot metadata live in it, keyed by shard id.
///
/// Fail-stop: any write that fails, on any thread, trips the host's [`Fault`] before a
/// write that shared its sync reports success. raft-engine writes concurrent batches as one
/// group, synced by whichever writer leads it; when that sync fails it panics in the leader
/// only, and the others of the group return as if it had worked. So every write waits, after
/// its own, for the writes that were in flight beside it, and then looks at the fault.
pub(crate) struct LogStore {
    engine: Engine<Fs>,
    pub(crate) fsync: bool,
    /// Number of batches written with a sync (raft-engine may merge concurrent ones further).
    pub(crate) synced_writes: std::sync::atomic::AtomicU64,
    fault: std::sync::OnceLock<std::sync::Arc<Fault>>,
    writes: InFlight,
}

/// InFlight tracks the writes under way, so that a write can wait for those beside it.
#[derive(Default)]
struct InFlight {
    state: parking_lot::Mutex<(u64, std::collections::BTreeSet<u64>)>,
    done: parking_lot::Condvar,
}

impl InFlight {
    fn begin(&self) -> u64 {
        let mut st = self.state.lock();
        st.0 += 1;
        let ticket = st.0;
        st.1.insert(ticket);
        ticket
    }

    /// end retires `ticket` and waits until every write in flight at that moment is over.
    fn end(&self, ticket: u64) {
        let mut st = self.state.lock();
        st.1.remove(&ticket);
        self.done.notify_all();
        let beside: Vec<u64> = st.1.iter().copied().collect();
        while beside.iter().any(|t| st.1.contains(t)) {
            self.done.wait(&mut st);
        }
    }
}

impl LogStore {
    pub(crate) fn open(dir: &Path, fsync: bool) -> Result<Self> {
        #[cfg(not(test))]
        let fs = raft_engine::env::DefaultFileSystem;
        #[cfg(test)]
        let fs = Fs::new();
        Self::open_on(dir, fsync, std::sync::Arc::new(fs))
    }

    /// open_on opens the log store on the given file system.
    pub(crate) fn open_on(dir: &Path, fsync: bool, fs: std::sync::Arc<Fs>) -> Result<Self> {
        let cfg = EngineConfig {
            dir: dir.to_string_lossy().into_owned(),
            ..Default::default()
        };
        let engine = Engine::open_with_file_system(cfg, fs)?;
        Ok(LogStore {
            engine,
            fsync,
            synced_writes: Default::default(),
            fault: Default::default(),
            writes: Default::default(),
        })
    }

    /// trip_on makes a failed write stop the host through `fault`.
    pub(crate) fn trip_on(&self, fault: std::sync::Arc<Fault>) {
        let _ = self.fault.set(fault);
    }

    /// write persists a batch; with fsync on it returns only after the data is on disk. An
    /// error, or a panic inside raft-engine, trips the host, and after that every write
    /// fails: nothing is acknowledged on the strength of a sync that may not have happened.
    pub(crate) fn write(&self, batch: &mut LogBatch) -> Result<()> {
        self.write_with(batch, true)
    }

    /// write_with writes a batch, synced only if `sync` (and the host syncs): for records
    /// whose loss in a crash is harmless, such as a commit index raised alone.
    pub(crate) fn write_with(&self, batch: &mut LogBatch, sync: bool) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let sync = sync && self.fsync;
        self.check_failed()?;
        let ticket = self.writes.begin();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.engine.write(batch, sync)
        }));
        let res = match res {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(p) => Err(Error::Storage(format!(
                "log write failed: {}",
                panic_message(&*p)
            ))),
        };
        if let (Err(e), Some(f)) = (&res, self.fault.get()) {
            f.trip(e.to_string());
        }
        self.writes.end(ticket);
        res?;
        self.check_failed()?;
        if sync {
            self.synced_writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    fn check_failed(&self) -> Result<()> {
        match self.fault.get().and_then(|f| f.error()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// stored_replicas lists (shard id, replica id) of every replica with data on disk.
    pub(crate) fn stored_replicas(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self
            .engine
            .raft_groups()
            .into_iter()
            .filter_map(|shard| {
                let v = self.engine.get(shard, KEY_REPLICA)?;
                Some((shard, decode_u64(&v)?))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// remove deletes every record of a shard from the log store.
    pub(crate) fn remove(&self, shard: u64) -> Result<()> {
        let mut batch = LogBatch::default();
        batch.add_command(shard, Command::Clean);
        self.write(&mut batch)
    }

    /// save_address records where a replica of `shard` (or, without a shard, a replica id
    /// in every shard) can be reached, so restarts keep the book.
    pub(crate) fn save_address(&self, shard: Option<u64>, replica: u64, addr: &str) -> Result<()> {
        let mut batch = LogBatch::default();
        batch.put(
            HOST_REGION,
            address_key(shard, replica),
            addr.as_bytes().to_vec(),
        )?;
        self.write(&mut batch)
    }

    /// load_addresses returns the saved address book as (shard, replica, address).
    pub(crate) fn load_addresses(&self) -> Result<Vec<(Option<u64>, u64, String)>> {
        let mut out = Vec::new();
        for prefix in [KEY_ADDRESS_PREFIX, KEY_SHARD_ADDRESS_PREFIX] {
            self.engine
                .scan_raw_messages(HOST_REGION, Some(prefix), None, false, |k, v| {
                    if !k.starts_with(prefix) {
                        return false; // past the prefix
                    }
                    out.extend(decode_address(k, v));
                    true
                })?;
        }
        Ok(out)
    }

    /// purge lets raft-engine drop log files that hold only compacted entries.
    pub(crate) fn purge(&self) -> Result<()> {
        self.engine.purge_expired_files()?;
        Ok(())
    }
}

/// address_key is the key of a persisted address: of one shard's replica, or the default
/// for a replica id.
pub(crate) fn address_key(shard: Option<u64>, replica: u64) -> Vec<u8> {
    let mut key = match shard {
        Some(s) => [KEY_SHARD_ADDRESS_PREFIX, &s.to_be_bytes()].concat(),
        None => KEY_ADDRESS_PREFIX.to_vec(),
    };
    key.extend_from_slice(&replica.to_be_bytes());
    key
}

/// decode_address reads a persisted address record back as (shard, replica, address); a
/// record of any other shape is skipped.
pub(crate) fn decode_address(key: &[u8], value: &[u8]) -> Option<(Option<u64>, u64, String)> {
    let id = |b: &[u8]| Some(u64::from_be_bytes(b.try_into().ok()?));
    let addr = String::from_utf8_lossy(value).into_owned();
    if let Some(rest) = key.strip_prefix(KEY_SHARD_ADDRESS_PREFIX) {
        return match rest.len() {
            16 => Some((Some(id(&rest[..8])?), id(&rest[8..])?, addr)),
            _ => None,
        };
    }
    match key.strip_prefix(KEY_ADDRESS_PREFIX)? {
        rest if rest.len() == 8 => Some((None, id(rest)?, addr)),
        _ => None,
    }
}

fn decode_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

fn encode_confs(confs: &[(u64, ConfState)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (index, cs) in confs {
        let b = cs
            .write_to_bytes()
            .map_err(|e| Error::Storage(e.to_string()))?;
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&b);
    }
    Ok(out)
}

fn decode_confs(mut b: &[u8]) -> Result<Vec<(u64, ConfState)>> {
    let corrupt = || Error::Storage("corrupt membership history".into());
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 12 {
            return Err(corrupt());
        }
        let index = decode_u64(b).ok_or_else(corrupt)?;
        let len = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
        let body = b.get(12..12 + len).ok_or_else(corrupt)?;
        let cs = ConfState::parse_from_bytes(body).map_err(|_| corrupt())?;
        out.push((index, cs));
        b = &b[12 + len..];
    }
    Ok(out)
}

/// ReplicaStorage is one replica's log as raft-rs sees it. Writes go into a `LogBatch` the
/// step worker shares among all its replicas; the in-memory view is updated as they are
/// added, which is safe because a failed write stops the host.
pub(crate) struct ReplicaStorage {
    shard: u64,
    store: std::sync::Arc<LogStore>,
    hard_state: HardState,
    snapshot: SnapshotMetadata,
    /// Membership changes applied after the snapshot, in index order.
    confs: Vec<(u64, ConfState)>,
    truncated_index: u64,
    truncated_term: u64,
    last_index: u64,
    cache: VecDeque<Entry>,
    /// Set when raft wanted to send a snapshot that the latest one cannot serve (it
    /// predates the recipient's membership); the worker then asks for a fresh one.
    pub(crate) snapshot_wanted: std::cell::Cell<bool>,
    /// The index the state machine starts from; Raft starts from the membership as it stood
    /// there and replays the changes after it from the log.
    start_applied: u64,
}

impl ReplicaStorage {
    /// create writes the records of a new replica. With `voters` it is bootstrapped at
    /// index 1, term 1 with that membership, so that later members always receive a snapshot
    /// carrying the initial membership; without, it is empty and waits for the leader.
    pub(crate) fn create(
        store: std::sync::Arc<LogStore>,
        shard: u64,
        replica: u64,
        voters: Option<Vec<u64>>,
    ) -> Result<Self> {
        let mut s = ReplicaStorage {
            shard,
            store,
            hard_state: HardState::default(),
            snapshot: SnapshotMetadata::default(),
            confs: Vec::new(),
            truncated_index: 0,
            truncated_term: 0,
            last_index: 0,
            cache: VecDeque::new(),
            snapshot_wanted: Default::default(),
            start_applied: u64::MAX,
        };
        let mut batch = LogBatch::default();
        batch.put(shard, KEY_REPLICA.to_vec(), replica.to_le_bytes().to_vec())?;
        if let Some(voters) = voters {
            let mut meta = SnapshotMetadata {
                index: 1,
                term: 1,
                ..Default::default()
            };
            meta.mut_conf_state().voters = voters;
            s.hard_state.term = 1;
            s.hard_state.commit = 1;
            batch.put_message(shard, KEY_HARD_STATE.to_vec(), &s.hard_state)?;
            s.install_snapshot(&mut batch, meta)?;
        }
        s.store.write(&mut batch)?;
        Ok(s)
    }

    /// load reads a replica's records back after a restart.
    pub(crate) fn load(store: std::sync::Arc<LogStore>, shard: u64) -> Result<Self> {
        let e = &store.engine;
        let hard_state = e
            .get_message::<HardState>(shard, KEY_HARD_STATE)?
            .unwrap_or_default();
        let snapshot = e
            .get_message::<SnapshotMetadata>(shard, KEY_SNAPSHOT)?
            .unwrap_or_default();
        let confs = match e.get(shard, KEY_CONFS) {
            Some(b) => decode_confs(&b)?,
            None => Vec::new(),
        };
        let (truncated_index, truncated_term) = match e.get(shard, KEY_TRUNCATED) {
            Some(b) if b.len() == 16 => (decode_u64(&b).unwrap(), decode_u64(&b[8..]).unwrap()),
            _ => (snapshot.index, snapshot.term),
        };
        let last_index = e
            .last_index(shard)
            .unwrap_or(truncated_index)
            .max(truncated_index);
        Ok(ReplicaStorage {
            shard,
            store: store.clone(),
            hard_state,
            snapshot,
            confs,
            truncated_index,
            truncated_term,
            last_index,
            cache: VecDeque::new(),
            snapshot_wanted: Default::default(),
            start_applied: u64::MAX,
        })
    }

    /// shard is the shard this log belongs to.
    pub(crate) fn shard(&self) -> u64 {
        self.shard
    }

    pub(crate) fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub(crate) fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot
    }

    /// start_at says which applied index the replica starts from (see `start_applied`).
    pub(crate) fn start_at(&mut self, applied: u64) {
        self.start_applied = applied;
    }

    /// conf_state returns the latest membership.
    pub(crate) fn conf_state(&self) -> ConfState {
        match self.confs.last() {
            Some((_, cs)) => cs.clone(),
            None => self.snapshot.get_conf_state().clone(),
        }
    }

    /// conf_state_at returns the membership in force after applying entry `index`.
    pub(crate) fn conf_state_at(&self, index: u64) -> ConfState {
        self.confs
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, cs)| cs.clone())
            .unwrap_or_else(|| self.snapshot.get_conf_state().clone())
    }

    /// append adds entries to the batch, replacing any conflicting suffix.
    pub(crate) fn append(&mut self, batch: &mut LogBatch, entries: &[Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        batch.add_entries::<EntryExt>(self.shard, entries)?;
        while self.cache.back().is_some_and(|e| e.index >= first.index) {
            self.cache.pop_back();
        }
        if self
            .cache
            .back()
            .is_some_and(|e| e.index + 1 != first.index)
        {
            self.cache.clear();
        }
        self.cache.extend(entries.iter().cloned());
        while self.cache.len() > CACHE_ENTRIES {
            self.cache.pop_front();
        }
        self.last_index = entries.last().unwrap().index;
        Ok(())
    }

    pub(crate) fn set_hard_state(&mut self, batch: &mut LogBatch, hs: &HardState) -> Result<()> {
        self.hard_state = hs.clone();
        batch.put_message(self.shard, KEY_HARD_STATE.to_vec(), hs)?;
        Ok(())
    }

    pub(crate) fn set_commit(&mut self, batch: &mut LogBatch, commit: u64) -> Result<()> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(batch, &hs)
    }

    /// record_conf_change stores the membership that results from the change at `index`.
    pub(crate) fn record_conf_change(
        &mut self,
        batch: &mut LogBatch,
        index: u64,
        cs: ConfState,
    ) -> Result<()> {
        if self.confs.last().is_some_and(|(i, _)| *i >= index) || index <= self.snapshot.index {
            return Ok(()); // replayed after a restart; already recorded
        }
        self.confs.push((index, cs));
        batch.put(self.shard, KEY_CONFS.to_vec(), encode_confs(&self.confs)?)?;
        Ok(())
    }

    /// install_snapshot replaces the whole log with a snapshot received from the leader
    /// (or the bootstrap snapshot).
    pub(crate) fn install_snapshot(
        &mut self,
        batch: &mut LogBatch,
        meta: SnapshotMetadata,
    ) -> Result<()> {
        // The log is replaced by the snapshot. If the store holds entries beyond it (a stale
        // tail from an older leader), the whole region is cleaned and the replica's record
        // written again, so that a restart cannot load that tail back; otherwise it is enough
        // to drop the entries up to the snapshot.
        if self
            .store
            .engine
            .last_index(self.shard)
            .is_some_and(|l| l > meta.index)
        {
            let replica = self.store.engine.get(self.shard, KEY_REPLICA);
            batch.add_command(self.shard, Command::Clean);
            if let Some(r) = replica {
                batch.put(self.shard, KEY_REPLICA.to_vec(), r)?;
            }
        } else {
            batch.add_command(
                self.shard,
                Command::Compact {
                    index: meta.index + 1,
                },
            );
        }
        let mut t = meta.index.to_le_bytes().to_vec();
        t.extend_from_slice(&meta.term.to_le_bytes());
        batch.put(self.shard, KEY_TRUNCATED.to_vec(), t)?;
        batch.put(self.shard, KEY_CONFS.to_vec(), Vec::new())?;
        if self.hard_state.commit < meta.index {
            self.hard_state.commit = meta.index;
        }
        if self.hard_state.term < meta.term {
            self.hard_state.term = meta.term;
        }
        batch.put_message(self.shard, KEY_HARD_STATE.to_vec(), &self.hard_state)?;
        batch.put_message(self.shard, KEY_SNAPSHOT.to_vec(), &meta)?;
        self.truncated_index = meta.index;
        self.truncated_term = meta.term;
        self.last_index = meta.index;
        self.cache.clear();
        self.confs.clear();
        self.snapshot = meta;
        Ok(())
    }

    /// compact records a snapshot this replica took at `meta.index` and drops log entries
    /// more than `overhead` entries behind it.
    pub(crate) fn compact(
        &mut self,
        batch: &mut LogBatch,
        meta: SnapshotMetadata,
        overhead: u64,
    ) -> Result<()> {
        if meta.index <= self.snapshot.index {
            return Ok(());
        }
        batch.put_message(self.shard, KEY_SNAPSHOT.to_vec(), &meta)?;
        self.confs.retain(|(i, _)| *i > meta.index);
        batch.put(self.shard, KEY_CONFS.to_vec(), encode_confs(&self.confs)?)?;
        let keep_from = meta.index.saturating_sub(overhead);
        self.snapshot = meta;
        if keep_from > self.truncated_index && keep_from <= self.last_index {
            let term =
                raft::Storage::term(self, keep_from).map_err(|e| Error::Storage(e.to_string()))?;
            batch.add_command(
                self.shard,
                Command::Compact {
                    index: keep_from + 1,
                },
            );
            let mut t = keep_from.to_le_bytes().to_vec();
            t.extend_from_slice(&term.to_le_bytes());
            batch.put(self.shard, KEY_TRUNCATED.to_vec(), t)?;
            self.truncated_index = keep_from;
            self.truncated_term = term;
            while self.cache.front().is_some_and(|e| e.index <= keep_from) {
                self.cache.pop_front();
            }
        }
        Ok(())
    }

    fn cached(&self, index: u64) -> Option<&Entry> {
        let front = self.cache.front()?.index;
        if index < front {
            return None;
        }
        self.cache.get((index - front) as usize)
    }
}

fn store_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

impl raft::Storage for ReplicaStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state_at(self.start_applied),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _ctx: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        // raft-rs asks for whole ranges and lets `max_size` cut them short: reserve what a
        // small answer needs, not the range (a long log would reserve gigabytes).
        let mut out = Vec::with_capacity(((high - low) as usize).min(RESERVE_ENTRIES));
        if self.cached(low).is_some() {
            let mut size = 0u64;
            for i in low..high {
                let Some(e) = self.cached(i) else { break };
                size += protobuf::Message::compute_size(e) as u64;
                if !out.is_empty() && size > max_size {
                    return Ok(out);
                }
                out.push(e.clone());
            }
            if out.len() as u64 == high - low {
                return Ok(out);
            }
            out.clear();
        }
        let limit = usize::try_from(max_size).unwrap_or(usize::MAX);
        self.store
            .engine
            .fetch_entries_to::<EntryExt>(self.shard, low, high, Some(limit), &mut out)
            .map_err(store_err)?;
        if out.is_empty() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated_index {
            return Ok(self.truncated_term);
        }
        if idx < self.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if let Some(e) = self.cached(idx) {
            return Ok(e.term);
        }
        match self.store.engine.get_entry::<EntryExt>(self.shard, idx) {
            Ok(Some(e)) => Ok(e.term),
            Ok(None) => Err(raft::Error::Store(StorageError::Unavailable)),
            Err(e) => Err(store_err(e)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let cs = self.snapshot.get_conf_state();
        let member = cs.voters.contains(&to) || cs.learners.contains(&to);
        if self.snapshot.index < request_index || !member {
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let mut snap = Snapshot::default();
        snap.set_metadata(self.snapshot.clone());
        Ok(snap)
    }
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
