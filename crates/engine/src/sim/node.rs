//! A simulated host: the engine's step worker, apply code and log store on a file system that
//! loses unsynced writes, driven one call at a time on a thread of its own.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::disk::VolatileFs;
use super::kv::{Kv, Shared};
use super::net::Outbox;
use super::world::SHARDS;
use crate::apply::{Applier, ApplyTask};
use crate::config::{HostConfig, StartMode};
use crate::error::{Error, Result};
use crate::fault::Fault;
use crate::router::{Cmd, Router};
use crate::start;
use crate::state_machine::SharedSm;
use crate::storage::LogStore;
use crate::worker::Worker;

/// Length of a tick, in virtual milliseconds.
pub(crate) const TICK_MS: u64 = 10;
const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 2;
/// Small, so that snapshots are taken, sent and installed often.
const SNAPSHOT_ENTRIES: u64 = 20;
const COMPACTION_OVERHEAD: u64 = 5;
/// A few entries, so that followers often wait for their state machine.
const MAX_APPLYING: u64 = 100;

/// Node is a running host.
pub(crate) struct Node {
    pub(crate) worker: Worker,
    pub(super) applier: Applier,
    pub(super) router: Arc<Router>,
    cmds: Receiver<Cmd>,
    pub(super) applies: Receiver<ApplyTask>,
    pub(super) outbox: Arc<Outbox>,
    pub(crate) sms: HashMap<u64, SharedSm>,
    pub(crate) nonce: u64,
    pub(crate) seq: u64,
    pub(super) apply_due: bool,
}

/// Runner is the thread one incarnation of a host runs on. raft-engine caches the last block
/// it read in a thread-local keyed by file position, not by engine, so hosts sharing a thread
/// (or a host before and after a crash) would read one another's blocks. The engine's own
/// hosts read their logs on threads of their own, so this arises only here. Work is handed
/// over and waited for, so there is only ever one thread running and runs stay repeatable.
pub(super) struct Runner {
    jobs: Sender<Box<dyn FnOnce() + Send>>,
}

impl Runner {
    pub(super) fn spawn() -> Runner {
        let (jobs, rx) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
        std::thread::spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        });
        Runner { jobs }
    }

    /// run runs `f` on the runner's thread and waits for its result.
    pub(super) fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        });
        self.jobs.send(job).expect("the runner thread is gone");
        match rx.recv().expect("the runner thread is gone") {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Node {
    /// start opens a host's log store and starts its replicas: bootstrapped the first time,
    /// from disk afterwards.
    pub(super) fn start(
        h: usize,
        root: &Path,
        fs: &Arc<VolatileFs>,
        incarnation: u64,
        first: bool,
        checks: &Shared,
    ) -> Result<Node> {
        let store = Arc::new(LogStore::open_on(&root.join("log"), true, fs.clone())?);
        let (ctx, cmds) = crossbeam_channel::unbounded();
        let router = Arc::new(Router::new(vec![ctx]));
        let fault = Arc::new(Fault::new(router.clone(), None));
        let outbox = Arc::new(Outbox::default());
        let (atx, applies): (Sender<ApplyTask>, _) = crossbeam_channel::unbounded();
        // Unique per incarnation, as a host's random nonce is per process.
        let nonce = ((h as u64 + 1) << 32) | incarnation;
        let mut worker = Worker::new(
            store.clone(),
            outbox.clone(),
            atx,
            None,
            Duration::from_millis(TICK_MS),
            nonce,
            COMPACTION_OVERHEAD,
            MAX_APPLYING,
            fault,
            Default::default(),
            root.to_path_buf(),
        );
        let mut applier = Applier::new(root.to_path_buf(), router.clone(), SNAPSHOT_ENTRIES, None);
        let mut config = HostConfig::new(1, root);
        config.election_ticks = ELECTION_TICKS;
        config.heartbeat_ticks = HEARTBEAT_TICKS;
        config.max_applying_bytes = MAX_APPLYING;
        let mut sms = HashMap::new();
        for (shard, replicas) in SHARDS {
            let Some(&(id, _)) = replicas.iter().find(|(_, host)| *host == h) else {
                continue;
            };
            let mode = if first {
                let voters = replicas.iter().map(|(r, o)| (*r, format!("host-{o}")));
                StartMode::Bootstrap(voters.collect())
            } else {
                StartMode::Restart
            };
            let storage = start::open_storage(&store, shard, id, &mode, |_, _| Ok(()))?;
            let mut cfg = start::raft_config(&config, id);
            // raft-rs draws election timeouts from its own random source; a range of one
            // keeps runs repeatable, and the simulation's clock jitter breaks ties instead.
            cfg.min_election_tick = ELECTION_TICKS;
            cfg.max_election_tick = ELECTION_TICKS + 1;
            let sm = Kv::new(format!("host {h} shard {shard}"), shard, checks.clone());
            let sm = Box::new(sm);
            let booted = start::boot(&store, root, storage, sm, cfg, incarnation)?;
            applier.drain(booted.open, &applies);
            worker.handle(Cmd::Start(Box::new(booted.replica)));
            sms.insert(shard, booted.sm);
        }
        Ok(Node {
            worker,
            applier,
            router,
            cmds,
            applies,
            outbox,
            sms,
            nonce,
            seq: 1,
            apply_due: false,
        })
    }

    /// settle steps the worker until it has nothing left to do.
    pub(super) fn settle(&mut self, now: Instant) -> Result<()> {
        for _ in 0..256 {
            while let Ok(cmd) = self.cmds.try_recv() {
                if matches!(cmd, Cmd::Shutdown) {
                    return Err(Error::HostFailed("the host shut down".into()));
                }
                self.worker.handle(cmd);
            }
            self.worker.cycle(now)?;
            if self.cmds.is_empty() && !self.worker.busy() {
                return Ok(());
            }
        }
        Err(Error::Raft("the worker did not settle".into()))
    }
}
