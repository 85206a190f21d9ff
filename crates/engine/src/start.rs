//! Bringing a replica up: its storage for a start mode, its state machine recovered to a
//! point the log agrees with, and its raft-rs node. The host and the fault simulation both
//! start replicas through here.

use std::path::Path;
use std::sync::Arc;

use raft::RawNode;

use crate::apply::{self, ApplyTask};
use crate::config::{HostConfig, StartMode};
use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::session::Session;
use crate::state_machine::{SharedSm, StateMachine};
use crate::storage::{LogStore, ReplicaStorage};

/// Booted is a replica ready to run: the worker takes `replica`, the apply thread `open`.
pub(crate) struct Booted {
    pub(crate) replica: Replica,
    pub(crate) open: ApplyTask,
    pub(crate) sm: SharedSm,
}

/// open_storage returns the storage of a shard's replica for a start mode: the data on disk,
/// or new records (an empty log to join with, or the bootstrap membership, whose addresses
/// go to `record`).
pub(crate) fn open_storage(
    store: &Arc<LogStore>,
    shard_id: u64,
    replica_id: u64,
    mode: &StartMode,
    mut record: impl FnMut(u64, &str) -> Result<()>,
) -> Result<ReplicaStorage> {
    let stored = store
        .stored_replicas()
        .into_iter()
        .find(|(s, _)| *s == shard_id)
        .map(|(_, r)| r);
    match (mode, stored) {
        (_, Some(r)) if r != replica_id => Err(Error::InvalidArgument(format!(
            "shard {shard_id} has data of replica {r} on this host, not {replica_id}"
        ))),
        (_, Some(_)) => ReplicaStorage::load(store.clone(), shard_id),
        (StartMode::Restart, None) => Err(Error::InvalidArgument(format!(
            "no data of shard {shard_id} on this host to restart from"
        ))),
        (StartMode::Join, None) => {
            ReplicaStorage::create(store.clone(), shard_id, replica_id, None)
        }
        (StartMode::Bootstrap(voters), None) => {
            if voters.is_empty() || !voters.iter().any(|(id, _)| *id == replica_id) {
                return Err(Error::InvalidArgument(
                    "bootstrap voters must include the local replica".into(),
                ));
            }
            if voters.iter().any(|(id, a)| *id == 0 || a.is_empty()) {
                return Err(Error::InvalidArgument(
                    "voter ids and addresses are required".into(),
                ));
            }
            for (id, a) in voters {
                record(*id, a)?;
            }
            let ids = voters.iter().map(|(id, _)| *id).collect();
            ReplicaStorage::create(store.clone(), shard_id, replica_id, Some(ids))
        }
    }
}

/// raft_config is the raft-rs configuration of a replica on a host (`applied` is set when
/// the replica boots).
pub(crate) fn raft_config(config: &HostConfig, replica_id: u64) -> raft::Config {
    raft::Config {
        id: replica_id,
        election_tick: config.election_ticks,
        heartbeat_tick: config.heartbeat_ticks,
        max_size_per_msg: 1 << 20,
        max_uncommitted_size: config.max_uncommitted_bytes,
        max_committed_size_per_ready: config.max_applying_bytes,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    }
}

/// boot opens the state machine, brings it to the latest snapshot if it is behind it, and
/// builds the raft-rs node to run from the index the state machine has applied. The session
/// table comes from the same snapshot, brought up to `applied` from the log when a persistent
/// state machine reopens past it.
pub(crate) fn boot(
    store: &LogStore,
    root: &Path,
    mut storage: ReplicaStorage,
    mut sm: Box<dyn StateMachine>,
    mut cfg: raft::Config,
    incarnation: u64,
    logs: Option<&Arc<crate::log::Logs>>,
) -> Result<Booted> {
    let shard_id = storage.shard();
    let mut applied = sm.open().map_err(|e| Error::StateMachine(e.0))?;
    let snap = storage.snapshot_metadata().clone();
    let sm: SharedSm = Arc::new(parking_lot::RwLock::new(sm));
    let mut sessions;
    if applied < snap.index {
        sessions = apply::recover_from_file(root, shard_id, snap.index, &sm)?;
        applied = snap.index;
    } else {
        sessions = apply::sessions_of_file(root, shard_id, snap.index)?;
    }
    let last = raft::Storage::last_index(&storage).unwrap_or(0);
    if applied > last.max(snap.index) {
        // The state machine claims entries this host's log never held durably (the log
        // was written without fsync, or the state machine's store belongs elsewhere).
        return Err(Error::StateMachine(format!(
            "shard {shard_id}: the state machine reports index {applied} applied, \
             but the log ends at {last}"
        )));
    }
    if applied > storage.hard_state().commit {
        // The state machine only applies committed entries, so the commit index we
        // persist lazily may lag behind it; raise it before raft-rs checks.
        let mut batch = raft_engine::LogBatch::default();
        storage.set_commit(&mut batch, applied)?;
        store.write(&mut batch)?;
    }
    if applied > snap.index {
        let ctx = raft::GetEntriesContext::empty(false);
        let entries = raft::Storage::entries(&storage, snap.index + 1, applied + 1, None, ctx)
            .map_err(|e| Error::Storage(e.to_string()))?;
        for e in entries {
            if let Some(s) = Session::of_context(&e.context) {
                sessions.replay(e.index, s);
            }
        }
    }
    let applied_term = raft::Storage::term(&storage, applied).unwrap_or(0);
    // Membership changes after `applied` are replayed from the log, onto the membership
    // as it stood at `applied` (not the latest, which already holds them).
    storage.start_at(applied);
    cfg.applied = applied;
    let replica_id = cfg.id;
    let logger = match logs {
        Some(l) => l.raft(shard_id, replica_id),
        None => slog::Logger::root(slog::Discard, slog::o!()),
    };
    let node = RawNode::new(&cfg, storage, &logger).map_err(|e| Error::Raft(e.to_string()))?;
    let open = ApplyTask::Open {
        shard: shard_id,
        incarnation,
        sm: sm.clone(),
        applied,
        applied_term,
        snapshot_index: snap.index,
        sessions,
    };
    Ok(Booted {
        replica: Replica::new(shard_id, replica_id, node, applied, incarnation),
        open,
        sm,
    })
}
