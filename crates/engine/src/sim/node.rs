//! A simulated host: the engine's step workers, apply code and log store on a file system that
//! loses unsynced writes, driven one call at a time on a thread of its own.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::disk::VolatileFs;
use super::kv::{Durable, Kv, Shared};
use super::net::Outbox;
use super::rng::Rng;
use crate::apply::{Applier, ApplyTask};
use crate::config::{HostConfig, StartMode};
use crate::error::{Error, Result};
use crate::fault::Fault;
use crate::replica::Replica;
use crate::router::{Cmd, Router};
use crate::start;
use crate::state_machine::{ApplyResult, BatchItem, BatchUpdater, SharedSm, SmError};
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
/// Per mille chances that the machine crashes at a failpoint (see [`Node::hook`]).
const CRASH_AT_MEMBERSHIP: u64 = 150;
const CRASH_AT_SNAPSHOT: u64 = 5;

/// Setup is what a seed chooses about every host of its run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    /// Step workers per host (each with its apply thread), sharing one log store.
    pub(crate) workers: usize,
    /// Whether state machines are applied through a batch updater, as the Node binding does.
    pub(crate) batch: bool,
    /// Whether state machines keep their state on disk, synced every this many updates (0:
    /// in memory).
    pub(crate) sync_every: u64,
    /// The seed of the run, for the choices made inside a step.
    pub(crate) seed: u64,
}

/// Node is a running host.
pub(crate) struct Node {
    pub(crate) workers: Vec<Worker>,
    /// The apply threads, shared with the failpoint hook (see [`Node::hook`]).
    apply: Arc<Mutex<Appliers>>,
    pub(super) router: Arc<Router>,
    cmds: Vec<Receiver<Cmd>>,
    apply_tx: Vec<Sender<ApplyTask>>,
    pub(super) outbox: Arc<Outbox>,
    pub(crate) sms: HashMap<u64, SharedSm>,
    updater: Arc<Updater>,
    store: Arc<LogStore>,
    host: usize,
    root: PathBuf,
    fs: Arc<VolatileFs>,
    checks: Shared,
    setup: Setup,
    /// Starts of replicas on this host so far; with the host's incarnation, the next one.
    starts: u64,
    host_incarnation: u64,
    config: HostConfig,
    pub(crate) nonce: u64,
    pub(crate) seq: u64,
    pub(super) apply_due: bool,
    /// Replicas being stopped (shard, incarnation), and the channel that says when their
    /// apply work is done.
    pub(super) stopping: Vec<(u64, u64, oneshot::Receiver<Result<()>>)>,
    /// Set when the host crashed at a failpoint, in the middle of a step.
    pub(super) crashed: Arc<AtomicBool>,
}

/// Appliers are a host's apply threads and their queues.
struct Appliers {
    appliers: Vec<Applier>,
    queues: Vec<Receiver<ApplyTask>>,
}

impl Appliers {
    /// run runs what is queued for the apply threads.
    fn run(&mut self) {
        for (a, rx) in self.appliers.iter_mut().zip(&self.queues) {
            while let Ok(t) = rx.try_recv() {
                a.drain(t, rx);
            }
        }
    }
}

/// Updater is the host's batch updater: it hands each item to the state machine of the
/// incarnation it names, as the Node binding does, and reports an item for an incarnation
/// whose stop has completed (or that never started) as a violation. A replica removed from
/// its shard stops with no one waiting, so its incarnation stays known.
struct Updater {
    host: usize,
    sms: Mutex<HashMap<(u64, u64), SharedSm>>,
    checks: Shared,
}

impl BatchUpdater for Updater {
    fn update_batch(
        &self,
        batch: &[BatchItem<'_>],
    ) -> Vec<std::result::Result<Vec<ApplyResult>, SmError>> {
        let sms = self.sms.lock();
        let mut out = Vec::with_capacity(batch.len());
        for item in batch {
            match sms.get(&(item.shard, item.incarnation)) {
                Some(sm) => out.push(sm.write().update(item.entries)),
                None => {
                    self.checks.lock().violations.push(format!(
                        "host {} shard {}: a batch item of incarnation {}, which is not running",
                        self.host, item.shard, item.incarnation,
                    ));
                    out.push(Err(SmError("no such incarnation".into())));
                }
            }
        }
        out
    }
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
    /// start opens a host's log store and starts its replicas: those it has data of, and
    /// the others of `placed` (shard, replica, mode when there is no data: bootstrap or join).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        h: usize,
        root: &Path,
        fs: &Arc<VolatileFs>,
        incarnation: u64,
        placed: Vec<(u64, u64, StartMode)>,
        checks: &Shared,
        setup: Setup,
    ) -> Result<Node> {
        let store = Arc::new(LogStore::open_on(&root.join("log"), true, fs.clone())?);
        let (mut ctxs, mut cmds) = (Vec::new(), Vec::new());
        for _ in 0..setup.workers {
            let (tx, rx) = crossbeam_channel::unbounded();
            ctxs.push(tx);
            cmds.push(rx);
        }
        let router = Arc::new(Router::new(ctxs));
        let fault = Arc::new(Fault::new(router.clone(), None));
        let outbox = Arc::new(Outbox::default());
        // Unique per incarnation, as a host's random nonce is per process.
        let nonce = ((h as u64 + 1) << 32) | incarnation;
        let updater = Arc::new(Updater {
            host: h,
            sms: Mutex::new(HashMap::new()),
            checks: checks.clone(),
        });
        let batcher: Option<Arc<dyn BatchUpdater>> = match setup.batch {
            true => Some(updater.clone()),
            false => None,
        };
        let (mut workers, mut appliers, mut applies, mut apply_tx) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..setup.workers {
            let (atx, arx): (Sender<ApplyTask>, _) = crossbeam_channel::unbounded();
            let mut worker = Worker::new(
                store.clone(),
                outbox.clone(),
                atx.clone(),
                None,
                Duration::from_millis(TICK_MS),
                nonce,
                COMPACTION_OVERHEAD,
                MAX_APPLYING,
                fault.clone(),
                Default::default(),
                root.to_path_buf(),
            );
            // Idle shards quiesce, as they do by default on a host.
            worker.quiesce_after = crate::quiesce::IDLE_ELECTIONS * ELECTION_TICKS as u64;
            worker.quiesce_grace = ELECTION_TICKS as u64;
            workers.push(worker);
            let root = root.to_path_buf();
            appliers.push(Applier::new(
                root,
                router.clone(),
                SNAPSHOT_ENTRIES,
                batcher.clone(),
            ));
            applies.push(arx);
            apply_tx.push(atx);
        }
        let mut config = HostConfig::new(1, root);
        config.election_ticks = ELECTION_TICKS;
        config.heartbeat_ticks = HEARTBEAT_TICKS;
        config.max_applying_bytes = MAX_APPLYING;
        let stored = store.stored_replicas();
        let apply = Arc::new(Mutex::new(Appliers {
            appliers,
            queues: applies,
        }));
        let crashed = Arc::new(AtomicBool::new(false));
        let seed = setup.seed ^ ((h as u64) << 40) ^ (incarnation << 48);
        let hook = Node::hook(Rng::new(seed), apply.clone(), fs.clone(), &outbox, &crashed);
        crate::failpoint::set_hook(Some(hook));
        let mut node = Node {
            workers,
            apply,
            router,
            cmds,
            apply_tx,
            outbox,
            sms: HashMap::new(),
            updater,
            store,
            host: h,
            root: root.to_path_buf(),
            fs: fs.clone(),
            checks: checks.clone(),
            setup,
            starts: 0,
            host_incarnation: incarnation,
            config,
            nonce,
            seq: 1,
            apply_due: false,
            stopping: Vec::new(),
            crashed,
        };
        for (shard, id) in &stored {
            node.start_replica(*shard, *id, StartMode::Restart)?;
        }
        for (shard, id, mode) in placed {
            if !stored.iter().any(|(s, _)| *s == shard) {
                node.start_replica(shard, id, mode)?;
            }
        }
        Ok(node)
    }

    /// start_replica starts a replica of `shard` on this host as a new incarnation.
    pub(super) fn start_replica(&mut self, shard: u64, id: u64, mode: StartMode) -> Result<()> {
        self.starts += 1;
        let incarnation = (self.host_incarnation << 16) | self.starts;
        let storage = start::open_storage(&self.store, shard, id, &mode, |_, _| Ok(()))?;
        let mut cfg = start::raft_config(&self.config, id);
        // raft-rs draws election timeouts from its own random source; a range of one
        // keeps runs repeatable, and the simulation's clock jitter breaks ties instead.
        cfg.min_election_tick = ELECTION_TICKS;
        cfg.max_election_tick = ELECTION_TICKS + 1;
        let durable = (self.setup.sync_every > 0).then(|| Durable {
            fs: self.fs.clone(),
            path: sm_file(&self.root, shard),
            sync_every: self.setup.sync_every,
            updates: 0,
        });
        let checks = self.checks.clone();
        let sm = Box::new(Kv::new(self.host, shard, incarnation, checks, durable));
        let booted = start::boot(&self.store, &self.root, storage, sm, cfg, incarnation, None)?;
        let w = self.router.worker_of(shard);
        let _ = self.apply_tx[w].send(booted.open);
        self.updater
            .sms
            .lock()
            .insert((shard, incarnation), booted.sm.clone());
        self.sms.insert(shard, booted.sm);
        self.router
            .send(shard, Cmd::Start(Box::new(booted.replica)));
        Ok(())
    }

    /// stop_replica asks the worker to stop the replica of `shard`; `stopped` finishes once
    /// its apply work is done.
    pub(super) fn stop_replica(&mut self, shard: u64) {
        let (done, rx) = oneshot::channel();
        let incarnation = self.replica(shard).map_or(0, |r| r.incarnation);
        self.router.send(shard, Cmd::Stop { shard, done });
        self.stopping.push((shard, incarnation, rx));
    }

    /// stopped finishes the stops whose apply work is done, returning their shards.
    pub(super) fn stopped(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        self.stopping
            .retain_mut(|(shard, incarnation, rx)| match rx.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => true,
                _ => {
                    out.push((*shard, *incarnation));
                    false
                }
            });
        for (shard, incarnation) in &out {
            self.sms.remove(shard);
            self.updater.sms.lock().remove(&(*shard, *incarnation));
            self.checks.lock().stopped(self.host, *shard, *incarnation);
        }
        out.into_iter().map(|(shard, _)| shard).collect()
    }

    /// remove_data deletes all local data of a stopped replica of `shard`, as the host does
    /// before a replica of the shard is placed here again.
    pub(super) fn remove_data(&mut self, shard: u64) -> Result<()> {
        self.store.remove(shard)?;
        crate::snapshot::remove_all(&self.root, shard)?;
        // Through the simulated disk, which forgets the file, and on the real one, which
        // may hold it from before a crash (the simulated disk leaves those alone).
        let path = sm_file(&self.root, shard);
        let _ = raft_engine::env::FileSystem::delete(&*self.fs, &path);
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// replica is the running replica of `shard`, on whichever worker owns it.
    pub(crate) fn replica(&self, shard: u64) -> Option<&Replica> {
        self.workers.iter().find_map(|w| w.replicas.get(&shard))
    }

    /// replicas are all running replicas of the host.
    pub(crate) fn replicas(&self) -> impl Iterator<Item = (&u64, &Replica)> {
        self.workers.iter().flat_map(|w| w.replicas.iter())
    }

    /// on_tick ticks every worker.
    pub(super) fn on_tick(&mut self, now: Instant) {
        for w in &mut self.workers {
            w.on_tick(now);
        }
    }

    /// apply runs what is queued for the apply threads.
    pub(super) fn apply(&mut self) {
        self.apply.lock().run();
    }

    /// apply_queued tells whether an apply thread has work waiting.
    pub(super) fn apply_queued(&self) -> bool {
        self.apply.lock().queues.iter().any(|rx| !rx.is_empty())
    }

    /// hook is what the host does at the engine's failpoints, which the simulation reaches
    /// in the middle of a step. Where a membership change has just gone to the apply thread,
    /// the apply threads run at once, as real ones may, and then the machine may crash: a
    /// persistent state machine may have made entries past the change durable, and the
    /// change must be in the log as well. Where a snapshot file was saved but not yet
    /// recorded in the log, the machine may crash too. A crash there sends nothing more.
    fn hook(
        mut rng: Rng,
        apply: Arc<Mutex<Appliers>>,
        fs: Arc<VolatileFs>,
        outbox: &Arc<Outbox>,
        crashed: &Arc<AtomicBool>,
    ) -> Box<dyn FnMut(&str)> {
        let (outbox, crashed) = (outbox.clone(), crashed.clone());
        Box::new(move |name| {
            if crashed.load(Ordering::SeqCst) {
                return;
            }
            let crash = match name {
                "membership-handed" => {
                    // The step worker holds no lock of the apply threads here.
                    if let Some(mut a) = apply.try_lock() {
                        a.run();
                    }
                    rng.chance(CRASH_AT_MEMBERSHIP)
                }
                "snapshot-saved" => rng.chance(CRASH_AT_SNAPSHOT),
                _ => false,
            };
            if crash {
                fs.halt();
                outbox.cut();
                crashed.store(true, Ordering::SeqCst);
            }
        })
    }

    /// settle steps the workers until they have nothing left to do.
    pub(super) fn settle(&mut self, now: Instant) -> Result<()> {
        for _ in 0..256 {
            for (w, cmds) in self.workers.iter_mut().zip(&self.cmds) {
                while let Ok(cmd) = cmds.try_recv() {
                    if matches!(cmd, Cmd::Shutdown) {
                        return Err(Error::HostFailed("the host shut down".into()));
                    }
                    w.handle(cmd);
                }
                w.cycle(now)?;
            }
            let idle = self.cmds.iter().all(|c| c.is_empty());
            if idle && !self.workers.iter().any(|w| w.busy()) {
                return Ok(());
            }
        }
        Err(Error::Raft("the worker did not settle".into()))
    }
}

/// sm_file is where a persistent state machine of `shard` keeps its state.
fn sm_file(root: &Path, shard: u64) -> PathBuf {
    root.join(format!("sm-{shard}"))
}
