//! Host: the public face of the engine. One per process normally; several may share a
//! process (tests, benchmarks) as long as their directories and ports differ.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::apply::{Applier, ApplyTask};
use crate::config::{HostConfig, LinkFilter, StartMode};
use crate::error::{Error, Result};
use crate::fault::{panic_message, Fault};
use crate::log::Level;
use crate::network::Network;
use crate::router::{Closing, Cmd, LocalReplica, Router, Running};
use crate::snapshot;
use crate::start;
use crate::state_machine::{ApplyResult, StateMachine};
use crate::storage::LogStore;
use crate::transport::Transport;
use crate::worker::Worker;

/// Proposal is a pending proposal: `committed` resolves with the entry's index once a quorum
/// has it, `applied` with the state machine's result once the local replica applied it.
#[derive(Debug)]
pub struct Proposal {
    /// Resolves when the entry is committed.
    pub committed: oneshot::Receiver<Result<u64>>,
    /// Resolves when the entry is applied locally.
    pub applied: oneshot::Receiver<Result<ApplyResult>>,
}

/// Host runs replicas of many shards over one log store, one transport and a fixed set of
/// step and apply threads.
pub struct Host {
    pub(crate) config: HostConfig,
    pub(crate) addr: String,
    pub(crate) store: Arc<LogStore>,
    pub(crate) router: Arc<Router>,
    pub(crate) transport: Arc<Transport>,
    pub(crate) applies: RwLock<Vec<crossbeam_channel::Sender<ApplyTask>>>,
    pub(crate) runtime: Mutex<Option<Runtime>>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) replicas: Running,
    /// Shards whose replica is being started.
    pub(crate) starting: Mutex<std::collections::HashSet<u64>>,
    pub(crate) nonce: u64,
    pub(crate) seq: AtomicU64,
    pub(crate) closed: AtomicBool,
    pub(crate) fault: Arc<Fault>,
    /// Proposals and reads waiting for their result on this host.
    pub(crate) in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes all replicas have handed to their state machines and not applied.
    pub(crate) applying: Arc<AtomicU64>,
    /// Stopped replicas whose apply work is not finished.
    pub(crate) closing: Closing,
    /// Replicas that have quiesced.
    pub(crate) quiesced: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) logs: Option<Arc<crate::log::Logs>>,
}

fn random_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}

impl Host {
    /// open starts a host: opens (or creates) the log store under `config.data_dir`, binds
    /// the transport and starts the worker threads. Replicas found on disk are listed by
    /// [`Host::stored_replicas`] and restarted with [`StartMode::Restart`].
    pub fn open(config: HostConfig) -> Result<Host> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)?;
        let store = Arc::new(LogStore::open(&config.data_dir.join("log"), config.fsync)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("zongzi-net")
            .enable_all()
            .build()?;
        // Bind with std so that a host can be opened from inside another tokio runtime.
        let std_listener = std::net::TcpListener::bind(&config.raft_address)?;
        std_listener.set_nonblocking(true)?;
        let bound = std_listener.local_addr()?.to_string();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let addr = config.advertise_address.clone().unwrap_or(bound);

        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..config.workers {
            let (tx, rx) = crossbeam_channel::unbounded();
            senders.push(tx);
            receivers.push(rx);
        }
        let router = Arc::new(Router::new(senders));
        let metrics: Arc<crate::metrics::Metrics> = Default::default();
        let logs = config
            .log_sink
            .clone()
            .map(|s| crate::log::Logs::new(s, config.log_level));
        if let Some(l) = &logs {
            runtime.spawn(l.clone().run());
        }
        // Every event is logged as well as reported.
        let events = crate::log::logged_events(config.event_listener.clone(), logs.clone());
        let fault = Arc::new(Fault::new(router.clone(), events.clone()));
        store.trip_on(fault.clone());
        let transport = Arc::new(Transport::new(
            config.cluster_id,
            config.max_frame_bytes,
            config.max_snapshot_bytes,
            config.data_dir.clone(),
            addr.clone(),
            store.clone(),
            runtime.handle().clone(),
            router.clone(),
            fault.clone(),
            config.tls.clone(),
            metrics.clone(),
            logs.clone(),
        )?);
        for (shard, replica, a) in store.load_addresses()? {
            transport.set_address(shard, replica, &a);
        }
        transport.serve(listener);

        let running: Running = Default::default();
        let closing = Closing::default();
        let nonce = random_nonce();
        let quiesced: Arc<std::sync::atomic::AtomicUsize> = Default::default();
        let mut threads = Vec::new();
        let mut applies = Vec::new();
        for (i, rx) in receivers.into_iter().enumerate() {
            let (atx, arx) = crossbeam_channel::unbounded();
            let mut applier = Applier::new(
                config.data_dir.clone(),
                router.clone(),
                config.snapshot_entries,
                config.batch_updater.clone(),
            );
            applier.closing = closing.clone();
            applier.metrics = metrics.clone();
            let f = fault.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("zongzi-apply-{i}"))
                    .spawn(move || {
                        let run = std::panic::AssertUnwindSafe(|| applier.run(arx));
                        if let Err(p) = std::panic::catch_unwind(run) {
                            f.trip(format!("apply thread panicked: {}", panic_message(&*p)));
                        }
                    })?,
            );
            let mut worker = Worker::new(
                store.clone(),
                transport.clone(),
                atx.clone(),
                events.clone(),
                Duration::from_millis(config.tick_ms),
                nonce,
                config.compaction_overhead,
                config.max_applying_bytes,
                fault.clone(),
                running.clone(),
                config.data_dir.clone(),
            );
            worker.max_applying_host = config.max_applying_bytes_per_host;
            worker.closing = closing.clone();
            if config.quiesce {
                let election = config.election_ticks as u64;
                worker.quiesce_after = crate::quiesce::IDLE_ELECTIONS * election;
                worker.quiesce_grace = election;
            }
            worker.quiesced = quiesced.clone();
            worker.metrics = metrics.clone();
            applies.push(atx);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("zongzi-step-{i}"))
                    .spawn(move || worker.run(rx))?,
            );
        }
        Ok(Host {
            config,
            addr,
            store,
            router,
            transport,
            applies: RwLock::new(applies),
            runtime: Mutex::new(Some(runtime)),
            threads: Mutex::new(threads),
            replicas: running,
            starting: Mutex::new(Default::default()),
            nonce,
            seq: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            fault,
            in_flight: Default::default(),
            applying: Default::default(),
            closing,
            quiesced,
            metrics,
            logs,
        })
    }

    /// raft_address is the transport address peers use to reach this host.
    pub fn raft_address(&self) -> &str {
        &self.addr
    }

    /// stored_replicas lists (shard id, replica id) of replicas with data on disk.
    pub fn stored_replicas(&self) -> Vec<(u64, u64)> {
        self.store.stored_replicas()
    }

    /// running_shards lists the shards with a replica running on this host.
    pub fn running_shards(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.replicas.read().keys().copied().collect();
        v.sort_unstable();
        v
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if let Some(e) = self.fault.error() {
            return Err(e);
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    pub(crate) fn check_shard(&self, shard: u64) -> Result<()> {
        self.check_open()?;
        if !self.replicas.read().contains_key(&shard) {
            return Err(Error::ShardNotFound(shard));
        }
        Ok(())
    }

    /// set_address records (and persists) where a replica id can be reached, in any shard.
    /// An address known for the shard itself (from a bootstrap, a membership change or the
    /// replica's own messages) takes precedence, so replica ids may repeat across shards.
    pub fn set_address(&self, replica_id: u64, addr: &str) -> Result<()> {
        self.record_address(None, replica_id, addr)
    }

    /// record_address records (and persists) an address for one shard's replica, or a
    /// default for the replica id.
    pub(crate) fn record_address(
        &self,
        shard: Option<u64>,
        replica: u64,
        addr: &str,
    ) -> Result<()> {
        self.check_open()?;
        if replica == 0 || addr.is_empty() {
            return Err(Error::InvalidArgument(
                "replica id and address are required".into(),
            ));
        }
        if self.transport.set_address(shard, replica, addr) {
            self.store.save_address(shard, replica, addr)?;
        }
        Ok(())
    }

    /// set_link_filter installs (or clears) a filter on outgoing messages, to simulate cut
    /// links in tests.
    pub fn set_link_filter(&self, filter: Option<LinkFilter>) {
        self.transport.set_filter(filter);
    }

    /// start_replica starts this host's replica of a shard.
    pub fn start_replica(
        &self,
        shard_id: u64,
        replica_id: u64,
        mode: StartMode,
        sm: Box<dyn StateMachine>,
    ) -> Result<()> {
        let incarnation = self.next_incarnation();
        self.start_replica_as(shard_id, replica_id, mode, sm, incarnation)
    }

    /// next_incarnation returns a number no start of a replica on this host has used.
    pub fn next_incarnation(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// start_replica_as starts this host's replica of a shard as `incarnation`, a number
    /// that no earlier start of the shard on this host used (see [`Host::next_incarnation`]).
    /// Everything of the replica, down to a [`crate::BatchUpdater`]'s items, carries it, so
    /// that nothing meant for one start of a shard reaches the state machine of another. While
    /// an earlier start removed from its shard (or failed) still has entries on their way to
    /// its state machine, it fails with `Busy`.
    pub fn start_replica_as(
        &self,
        shard_id: u64,
        replica_id: u64,
        mode: StartMode,
        sm: Box<dyn StateMachine>,
        incarnation: u64,
    ) -> Result<()> {
        self.check_open()?;
        if replica_id == 0 || incarnation == 0 {
            return Err(Error::InvalidArgument(
                "replica id and incarnation must be positive".into(),
            ));
        }
        // Reserve the shard, then work without holding the running set's lock: opening and
        // recovering a state machine may call into another runtime (a binding) that needs
        // this host meanwhile.
        if self.replicas.read().contains_key(&shard_id) || !self.starting.lock().insert(shard_id) {
            return Err(Error::ShardExists(shard_id));
        }
        let _reserved = Reservation(&self.starting, shard_id);
        // An earlier start removed from its shard (or failed) may still have entries on
        // their way to its state machine, which may share a store with the new one.
        self.closing.check(shard_id)?;
        let storage = start::open_storage(&self.store, shard_id, replica_id, &mode, |id, a| {
            self.record_address(Some(shard_id), id, a)
        })?;
        let cfg = start::raft_config(&self.config, replica_id);
        let mut booted = start::boot(
            &self.store,
            &self.config.data_dir,
            storage,
            sm,
            cfg,
            incarnation,
            self.logs.as_ref(),
        )?;
        let applying = Arc::new(AtomicU64::new(0));
        booted.replica.budget = crate::replica::Applying {
            replica: applying.clone(),
            host: self.applying.clone(),
        };
        let sm = booted.sm.clone();
        let w = self.router.worker_of(shard_id);
        let _ = self.applies.read()[w].send(booted.open);
        self.replicas.write().insert(
            shard_id,
            LocalReplica {
                replica_id,
                incarnation,
                applying,
                sm: sm.clone(),
                in_flight: Default::default(),
            },
        );
        self.router
            .send(shard_id, Cmd::Start(Box::new(booted.replica)));
        crate::log::emit(&self.logs, Level::Info, shard_id, replica_id, || {
            let fields = vec![crate::log::num("incarnation", incarnation)];
            ("replica started".into(), fields)
        });
        Ok(())
    }

    /// stop_replica stops the local replica of a shard, keeping its data. It resolves once
    /// the replica's state machine has finished what was handed to it: after it, nothing of
    /// this incarnation reaches a state machine.
    pub async fn stop_replica(&self, shard_id: u64) -> Result<()> {
        self.check_shard(shard_id)?;
        let (tx, rx) = oneshot::channel();
        self.router.send(
            shard_id,
            Cmd::Stop {
                shard: shard_id,
                done: tx,
            },
        );
        let res = rx.await.unwrap_or(Err(Error::Closed));
        let replica = self
            .replicas
            .write()
            .remove(&shard_id)
            .map(|r| r.replica_id);
        crate::log::emit(
            &self.logs,
            Level::Info,
            shard_id,
            replica.unwrap_or(0),
            || ("replica stopped".into(), Vec::new()),
        );
        res
    }

    /// remove_data deletes all local data of a shard's replica; the replica must be stopped.
    /// While a replica removed from its shard (or failed) still has entries on their way to
    /// its state machine, it fails with `Busy`: try again once they are done.
    pub fn remove_data(&self, shard_id: u64) -> Result<()> {
        self.check_open()?;
        if self.replicas.read().contains_key(&shard_id) {
            return Err(Error::InvalidArgument(format!(
                "shard {shard_id} is running; stop it before removing its data"
            )));
        }
        self.closing.check(shard_id)?;
        self.store.remove(shard_id)?;
        snapshot::remove_all(&self.config.data_dir, shard_id)
    }

    pub(crate) fn deadline(timeout: Duration) -> Instant {
        Instant::now() + timeout
    }

    /// request_snapshot takes a snapshot of the local replica now and compacts the log
    /// behind it; resolves with the snapshot's index.
    pub async fn request_snapshot(&self, shard_id: u64) -> Result<u64> {
        self.check_shard(shard_id)?;
        let (tx, rx) = oneshot::channel();
        let w = self.router.worker_of(shard_id);
        let incarnation = self
            .replicas
            .read()
            .get(&shard_id)
            .map(|r| r.incarnation)
            .ok_or(Error::ShardNotFound(shard_id))?;
        self.applies.read()[w]
            .send(ApplyTask::Snapshot {
                shard: shard_id,
                incarnation,
                reply: Some(tx),
            })
            .map_err(|_| Error::Closed)?;
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// reload_tls reads the transport's TLS files again, so rotated certificates apply to new
    /// connections without a restart. On an error the certificates in use stay.
    pub fn reload_tls(&self) -> Result<()> {
        self.check_open()?;
        self.transport.reload_tls()
    }

    /// dropped_messages returns how many received Raft messages were refused: not addressed
    /// to the local replica of their shard, or arriving while the host's inbox was full.
    pub fn dropped_messages(&self) -> u64 {
        self.transport.dropped()
    }

    /// synced_writes returns how many log batches this host has written with a sync.
    pub fn synced_writes(&self) -> u64 {
        self.store.synced_writes.load(Ordering::Relaxed)
    }

    /// log_records_dropped returns how many log records were dropped because the queue to
    /// the log sink was full.
    pub fn log_records_dropped(&self) -> u64 {
        self.logs.as_ref().map_or(0, |l| l.dropped())
    }

    /// quiesced_replicas returns how many of this host's replicas have quiesced (see
    /// [`HostConfig::quiesce`]).
    pub fn quiesced_replicas(&self) -> usize {
        self.quiesced.load(Ordering::Relaxed)
    }

    /// replica_id returns the id of the local replica of a shard.
    pub fn replica_id(&self, shard_id: u64) -> Result<u64> {
        self.replicas
            .read()
            .get(&shard_id)
            .map(|r| r.replica_id)
            .ok_or(Error::ShardNotFound(shard_id))
    }

    /// close stops every replica and thread; pending calls fail with `Closed`, and every
    /// state machine has been dropped when it returns. Idempotent. The data directory stays
    /// locked until the `Host` itself is dropped.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.router.shutdown();
        let threads: Vec<_> = std::mem::take(&mut *self.threads.lock());
        // Step workers exit on Shutdown; apply threads exit once their senders are gone,
        // which happens when the workers and this host drop them.
        let (step, apply): (Vec<_>, Vec<_>) = threads.into_iter().partition(|t| {
            t.thread()
                .name()
                .is_some_and(|n| n.starts_with("zongzi-step"))
        });
        for t in step {
            let _ = t.join();
        }
        self.replicas.write().clear();
        // With the workers gone, dropping the last senders ends the apply threads, which
        // drop (and so close) every state machine before close returns.
        self.applies.write().clear();
        for t in apply {
            let _ = t.join();
        }
        // What was logged until now reaches the sink before close returns.
        if let Some(l) = &self.logs {
            l.flush();
        }
        if let Some(rt) = self.runtime.lock().take() {
            // Wait (bounded) for the transport's tasks to drop their sockets, so the address
            // can be bound again as soon as close returns. A separate thread, because this
            // may be called from inside another runtime, where blocking shutdown panics.
            let t = std::thread::spawn(move || rt.shutdown_timeout(Duration::from_secs(2)));
            let _ = t.join();
        }
    }
}

/// Reservation releases a shard reserved by `start_replica` when it goes out of scope.
struct Reservation<'a>(&'a Mutex<std::collections::HashSet<u64>>, u64);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.close();
    }
}
