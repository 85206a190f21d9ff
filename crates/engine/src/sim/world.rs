//! The simulated cluster: hosts made of the engine's own step worker, apply code and log
//! store (raft-engine on a file system that loses unsynced writes on a crash), an event queue
//! in virtual time, and the network between them, which drops, delays, duplicates, reorders
//! and misdirects messages, and can be cut.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use raft::eraftpb::{Message, MessageType};
use raft::StateRole;

use super::disk::VolatileFs;
use super::kv::{Kv, Shared};
use super::net::Outbox;
use super::rng::Rng;
use super::workload::Workload;
use crate::apply::{Applier, ApplyTask};
use crate::config::{HostConfig, StartMode};
use crate::error::{Error, Result};
use crate::fault::{panic_message, Fault};
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

/// Hosts in the simulated cluster.
pub(crate) const HOSTS: usize = 3;

/// SHARDS places each shard's replicas as (replica id, host). Replica ids repeat across
/// shards on different hosts, so a message that reaches the wrong host finds a replica of
/// its shard there.
pub(crate) const SHARDS: [(u64, [(u64, usize); 3]); 2] =
    [(1, [(1, 0), (2, 1), (3, 2)]), (2, [(1, 1), (2, 2), (3, 0)])];

/// Per mille chances of what the network does to one message.
const DROP: u64 = 20;
const DUPLICATE: u64 = 20;
const MISDIRECT: u64 = 5;
const SLOW: u64 = 30;

/// Event is something that happens at a virtual time.
pub(crate) enum Event {
    /// A host's clock ticks.
    Tick(usize),
    /// A host's apply thread runs what is queued for it.
    Apply(usize),
    /// A message arrives (a snapshot message brings its file's bytes).
    Deliver {
        from: usize,
        to: usize,
        shard: u64,
        msg: Box<Message>,
        snapshot: Option<Vec<u8>>,
    },
    /// A host learns how sending a snapshot went.
    SnapshotStatus {
        host: usize,
        shard: u64,
        to: u64,
        ok: bool,
    },
    /// A crashed host starts again from its disk.
    Restart(usize),
    /// The scheduler injects a fault.
    Fault,
    /// Cut links are mended.
    Heal(Vec<(usize, usize)>),
    /// A client acts.
    Client(usize),
}

impl Event {
    /// host is the host that takes the event in, for those a paused host would queue.
    fn host(&self) -> Option<usize> {
        match self {
            Event::Apply(h) => Some(*h),
            Event::Deliver { to, .. } => Some(*to),
            Event::SnapshotStatus { host, .. } => Some(*host),
            _ => None,
        }
    }
}

/// Node is a running host.
pub(crate) struct Node {
    pub(crate) worker: Worker,
    applier: Applier,
    router: Arc<Router>,
    cmds: Receiver<Cmd>,
    applies: Receiver<ApplyTask>,
    outbox: Arc<Outbox>,
    pub(crate) sms: HashMap<u64, SharedSm>,
    pub(crate) nonce: u64,
    pub(crate) seq: u64,
    apply_due: bool,
}

/// Slot is a host's place in the cluster, with or without a running node.
pub(crate) struct Slot {
    root: PathBuf,
    fs: Arc<VolatileFs>,
    pub(crate) node: Option<Node>,
    /// The thread this incarnation of the host runs on.
    runner: Runner,
    incarnation: u64,
    pub(crate) paused_until: u64,
    /// The next sync on this host fails (an injected disk failure, which crashes it).
    armed: bool,
}

/// Counts of what the scheduler did.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Faults {
    pub(crate) crashes: u64,
    pub(crate) sync_failures: u64,
    pub(crate) partitions: u64,
    pub(crate) pauses: u64,
    pub(crate) transfers: u64,
    pub(crate) messages: u64,
    pub(crate) misdirected: u64,
    /// Messages a host refused because they were not addressed to its replica.
    pub(crate) refused: u64,
}

/// World is one run of the simulation.
pub(crate) struct World {
    pub(crate) rng: Rng,
    pub(crate) now: u64,
    base: Instant,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Event>,
    seq: u64,
    pub(crate) hosts: Vec<Slot>,
    cut: HashSet<(usize, usize)>,
    pub(crate) checks: Shared,
    pub(crate) faults: Faults,
    /// Faults are injected until then; afterwards the cluster is left to heal.
    pub(crate) fault_end: u64,
    /// The clients and their history.
    pub(crate) load: Workload,
    _dir: tempfile::TempDir,
}

impl World {
    /// new starts a cluster whose every choice comes from `seed`, with faults until
    /// `fault_end` and clients acting until `load.stop`.
    pub(crate) fn new(seed: u64, fault_end: u64, load: Workload) -> Result<World> {
        let dir = tempfile::tempdir()?;
        let checks = Shared::default();
        let mut hosts = Vec::new();
        for h in 0..HOSTS {
            let root = dir.path().join(format!("host-{h}"));
            std::fs::create_dir_all(&root)?;
            let fs = Arc::new(VolatileFs::new());
            let runner = Runner::spawn();
            let (r, f, c) = (root.clone(), fs.clone(), checks.clone());
            let node = runner.run(move || Node::start(h, &r, &f, 1, true, &c))?;
            hosts.push(Slot {
                root,
                fs,
                runner,
                node: Some(node),
                incarnation: 1,
                paused_until: 0,
                armed: false,
            });
        }
        let mut w = World {
            rng: Rng::new(seed),
            now: 0,
            base: Instant::now(),
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            hosts,
            cut: HashSet::new(),
            checks,
            faults: Faults::default(),
            fault_end,
            load,
            _dir: dir,
        };
        for h in 0..HOSTS {
            let phase = w.rng.below(TICK_MS);
            w.at(phase, Event::Tick(h));
        }
        let first = w.rng.between(200, 400);
        w.at(first, Event::Fault);
        Ok(w)
    }

    /// instant is the virtual time as the engine sees it.
    pub(crate) fn instant(&self) -> Instant {
        self.base + Duration::from_millis(self.now)
    }

    /// at schedules an event `delay` virtual milliseconds from now.
    pub(crate) fn at(&mut self, delay: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((self.now + delay, self.seq)));
        self.events.insert(self.seq, ev);
    }

    /// next takes the next event due no later than `until`, advancing the clock.
    pub(crate) fn next(&mut self, until: u64) -> Option<Event> {
        let Reverse((t, seq)) = *self.queue.peek()?;
        if t > until {
            return None;
        }
        self.queue.pop();
        self.now = t;
        self.events.remove(&seq)
    }

    /// up tells whether a host is running and not paused.
    pub(crate) fn up(&self, h: usize) -> bool {
        self.hosts[h].node.is_some() && self.hosts[h].paused_until <= self.now
    }

    /// dispatch carries out one event; one for a paused host waits until it resumes.
    pub(crate) fn dispatch(&mut self, ev: Event) {
        if let Some(h) = ev.host().filter(|h| self.paused(*h)) {
            self.later(h, ev);
            return;
        }
        match ev {
            Event::Tick(h) => {
                if self.up(h) {
                    self.on_host(h, |n, now| n.worker.on_tick(now));
                }
                let next = TICK_MS + self.rng.below(2);
                self.at(next, Event::Tick(h));
            }
            Event::Apply(h) => {
                if let Some(n) = self.hosts[h].node.as_mut() {
                    n.apply_due = false;
                }
                self.on_host(h, |n, _| {
                    while let Ok(t) = n.applies.try_recv() {
                        n.applier.drain(t, &n.applies);
                    }
                });
            }
            Event::Deliver {
                from,
                to,
                shard,
                msg,
                snapshot,
            } => self.deliver(from, to, shard, *msg, snapshot),
            Event::SnapshotStatus {
                host,
                shard,
                to,
                ok,
            } => {
                let cmd = Cmd::SnapshotStatus { shard, to, ok };
                self.on_host(host, |n, _| n.worker.handle(cmd));
            }
            Event::Restart(h) => self.restart(h),
            Event::Fault => self.inject(),
            Event::Heal(links) => {
                for l in links {
                    self.cut.remove(&l);
                }
            }
            Event::Client(c) => self.client(c),
        }
    }

    /// paused tells whether a host is running but paused.
    fn paused(&self, h: usize) -> bool {
        self.hosts[h].node.is_some() && self.hosts[h].paused_until > self.now
    }

    /// later puts an event for a paused host back until the host resumes.
    fn later(&mut self, h: usize, ev: Event) {
        let delay = self.hosts[h].paused_until - self.now + self.rng.below(3);
        self.at(delay, ev);
    }

    /// on_host runs `f` on a live host, then steps it until it has nothing left to do and
    /// sends what it produced. A panic or error there crashes the host; unless a disk failure
    /// was injected, it is also a violation.
    pub(crate) fn on_host(
        &mut self,
        h: usize,
        f: impl FnOnce(&mut Node, Instant) + Send + 'static,
    ) {
        let now = self.instant();
        let Some(mut node) = self.hosts[h].node.take() else {
            return;
        };
        let (node, res) = self.hosts[h].runner.run(move || {
            let res = catch_unwind(AssertUnwindSafe(|| {
                f(&mut node, now);
                node.settle(now)
            }));
            (node, res)
        });
        self.hosts[h].node = Some(node);
        let failure = match res {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(format!("panic: {}", panic_message(&*p))),
        };
        if let Some(cause) = failure {
            if !self.hosts[h].armed {
                self.checks
                    .lock()
                    .violations
                    .push(format!("host {h} failed at {} ms: {cause}", self.now));
            }
            self.crash(h);
            return;
        }
        self.after_step(h);
    }

    /// after_step sends a host's messages, schedules its apply thread and records leaders.
    fn after_step(&mut self, h: usize) {
        let Some(node) = self.hosts[h].node.as_mut() else {
            return;
        };
        let msgs = node.outbox.take();
        let apply = !node.apply_due && !node.applies.is_empty();
        if apply {
            node.apply_due = true;
        }
        {
            let mut checks = self.checks.lock();
            for (shard, r) in node.worker.replicas.iter() {
                if r.node.raft.state == StateRole::Leader {
                    checks.leader(*shard, r.node.raft.term, r.id);
                }
            }
        }
        if apply {
            // Now and then a state machine is slow.
            let delay = match self.rng.chance(SLOW) {
                true => self.rng.between(20, 150),
                false => self.rng.below(4),
            };
            self.at(delay, Event::Apply(h));
        }
        self.send(h, msgs);
    }

    /// send puts messages on the wire, where they may be lost, late, doubled or misdirected.
    fn send(&mut self, from: usize, msgs: Vec<(u64, Message)>) {
        for (shard, msg) in msgs {
            self.faults.messages += 1;
            let Some(mut to) = host_of(shard, msg.to) else {
                continue;
            };
            if self.rng.chance(MISDIRECT) {
                self.faults.misdirected += 1;
                to = self.rng.below(HOSTS as u64) as usize;
            }
            let mut snapshot = None;
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                let index = msg.get_snapshot().get_metadata().index;
                let file = crate::snapshot::file(&self.hosts[from].root, shard, index);
                match std::fs::read(&file) {
                    Ok(b) => snapshot = Some(b),
                    Err(_) if index <= 1 => {}
                    Err(_) => {
                        self.snapshot_failed(from, shard, msg.to);
                        continue;
                    }
                }
            }
            if self.rng.chance(DROP) {
                if msg.get_msg_type() == MessageType::MsgSnapshot {
                    self.snapshot_failed(from, shard, msg.to);
                }
                continue;
            }
            let mut delay = self.rng.between(1, 12);
            if self.rng.chance(SLOW) {
                delay += self.rng.between(30, 200);
            }
            // Forwarded client requests are not idempotent: a proposal delivered twice is
            // appended twice, and a read request registered twice lets late answers to the
            // first confirm the second. The TCP transport writes every message at most once;
            // applying a retried command once is the job of client sessions.
            let twice = snapshot.is_none()
                && msg.get_msg_type() != MessageType::MsgPropose
                && msg.get_msg_type() != MessageType::MsgReadIndex
                && self.rng.chance(DUPLICATE);
            if twice {
                let later = delay + self.rng.between(0, 30);
                let copy = Event::Deliver {
                    from,
                    to,
                    shard,
                    msg: Box::new(msg.clone()),
                    snapshot: None,
                };
                self.at(later, copy);
            }
            let ev = Event::Deliver {
                from,
                to,
                shard,
                msg: Box::new(msg),
                snapshot,
            };
            self.at(delay, ev);
        }
    }

    fn snapshot_failed(&mut self, host: usize, shard: u64, to: u64) {
        let delay = self.rng.between(1, 10);
        let ev = Event::SnapshotStatus {
            host,
            shard,
            to,
            ok: false,
        };
        self.at(delay, ev);
    }

    /// deliver hands an arriving message to its host, unless the link is cut or the host is
    /// down; a snapshot's file is put in place first, as the transport does.
    fn deliver(
        &mut self,
        from: usize,
        to: usize,
        shard: u64,
        msg: Message,
        snapshot: Option<Vec<u8>>,
    ) {
        let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
        if self.cut.contains(&(from, to)) || self.hosts[to].node.is_none() {
            if is_snapshot {
                self.snapshot_failed(from, shard, msg.to);
            }
            return;
        }
        let mut file = None;
        if let Some(bytes) = snapshot {
            // As the transport does: the file arrives under a temporary name, and the worker
            // puts it in place if Raft takes the snapshot.
            let index = msg.get_snapshot().get_metadata().index;
            let dir = crate::snapshot::dir(&self.hosts[to].root, shard);
            let tmp = dir.join(format!("recv-{index:020}-{}.tmp", self.seq));
            let written = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&tmp, bytes));
            if written.is_err() {
                self.snapshot_failed(from, shard, msg.to);
                return;
            }
            file = Some(tmp);
        }
        if is_snapshot {
            let ev = Event::SnapshotStatus {
                host: from,
                shard,
                to: msg.to,
                ok: true,
            };
            self.at(1, ev);
            let cmd = Cmd::Snapshot { shard, msg, file };
            self.on_host(to, move |n, _| n.worker.handle(cmd));
            return;
        }
        self.on_host(to, move |n, _| n.worker.handle(Cmd::Raft { shard, msg }));
    }

    /// crash stops a host at once: what it did not sync is lost, what it sent stays sent.
    pub(crate) fn crash(&mut self, h: usize) {
        let slot = &mut self.hosts[h];
        slot.fs.crash();
        slot.armed = false;
        let Some(node) = slot.node.take() else {
            return;
        };
        let msgs = node.outbox.take();
        self.faults.refused += node.outbox.dropped();
        drop(node);
        self.faults.crashes += 1;
        self.send(h, msgs);
        let delay = self.rng.between(50, 400);
        self.at(delay, Event::Restart(h));
    }

    /// restart starts a crashed host again from what its disk kept.
    fn restart(&mut self, h: usize) {
        if self.hosts[h].node.is_some() {
            return;
        }
        let slot = &mut self.hosts[h];
        slot.incarnation += 1;
        slot.paused_until = 0;
        slot.runner = Runner::spawn();
        let (root, fs, checks) = (slot.root.clone(), slot.fs.clone(), self.checks.clone());
        let incarnation = slot.incarnation;
        match slot
            .runner
            .run(move || Node::start(h, &root, &fs, incarnation, false, &checks))
        {
            Ok(node) => slot.node = Some(node),
            Err(e) => self.checks.lock().violations.push(format!(
                "host {h} could not restart at {} ms: {e}",
                self.now
            )),
        }
        self.on_host(h, |_, _| {});
    }

    /// inject picks the next fault, while the fault phase lasts.
    fn inject(&mut self) {
        if self.now >= self.fault_end {
            return;
        }
        let all_up = self.hosts.iter().all(|s| s.node.is_some());
        let h = self.rng.below(HOSTS as u64) as usize;
        match self.rng.below(6) {
            0 if all_up => self.crash(h),
            1 if all_up && self.now + 500 < self.fault_end => {
                self.faults.sync_failures += 1;
                self.hosts[h].armed = true;
                self.hosts[h].fs.fail_next_sync();
            }
            2 => {
                self.faults.partitions += 1;
                let mut links = Vec::new();
                for o in (0..HOSTS).filter(|o| *o != h) {
                    links.push((h, o));
                    links.push((o, h));
                }
                self.cut(links);
            }
            3 => {
                self.faults.partitions += 1;
                let o = (h + 1 + self.rng.below(HOSTS as u64 - 1) as usize) % HOSTS;
                self.cut(vec![(h, o)]);
            }
            4 if self.hosts[h].node.is_some() => {
                self.faults.pauses += 1;
                self.hosts[h].paused_until = self.now + self.rng.between(50, 600);
            }
            _ => self.transfer_leader(),
        }
        let next = self.rng.between(100, 400);
        self.at(next, Event::Fault);
    }

    fn cut(&mut self, links: Vec<(usize, usize)>) {
        self.cut.extend(links.iter().copied());
        let heal = self.rng.between(100, 800);
        self.at(heal, Event::Heal(links));
    }

    /// transfer_leader asks a shard's leader to hand over to another replica.
    fn transfer_leader(&mut self) {
        let (shard, replicas) = SHARDS[self.rng.below(SHARDS.len() as u64) as usize];
        let to = replicas[self.rng.below(replicas.len() as u64) as usize].0;
        for h in 0..HOSTS {
            let leads = self.hosts[h].node.as_ref().is_some_and(|n| {
                n.worker
                    .replicas
                    .get(&shard)
                    .is_some_and(|r| r.node.raft.state == StateRole::Leader && r.id != to)
            });
            if leads && self.up(h) {
                self.faults.transfers += 1;
                let (reply, _) = tokio::sync::oneshot::channel();
                let cmd = Cmd::TransferLeader { shard, to, reply };
                self.on_host(h, |n, _| n.worker.handle(cmd));
                return;
            }
        }
    }

    /// finish counts what the running hosts refused.
    pub(crate) fn finish(&mut self) {
        for s in &self.hosts {
            if let Some(n) = &s.node {
                self.faults.refused += n.outbox.dropped();
            }
        }
    }

    /// heal_all mends every link and resumes paused hosts; crashed ones restart on schedule.
    pub(crate) fn heal_all(&mut self) {
        self.cut.clear();
        for s in &mut self.hosts {
            s.paused_until = s.paused_until.min(self.now);
        }
    }

    /// submit hands a client's command to a host: it waits in the host's queue while the
    /// host is paused, as it would in a stopped process.
    pub(crate) fn submit(&mut self, h: usize, shard: u64, cmd: Cmd) {
        let Some(n) = self.hosts[h].node.as_ref() else {
            return;
        };
        n.router.send(shard, cmd);
        if self.up(h) {
            self.on_host(h, |_, _| {});
        }
    }
}

/// Runner is the thread one incarnation of a host runs on. raft-engine caches the last block
/// it read in a thread-local keyed by file position, not by engine, so hosts sharing a thread
/// (or a host before and after a crash) would read one another's blocks. The engine's own
/// hosts read their logs on threads of their own, so this arises only here. Work is handed
/// over and waited for, so there is only ever one thread running and runs stay repeatable.
struct Runner {
    jobs: Sender<Box<dyn FnOnce() + Send>>,
}

impl Runner {
    fn spawn() -> Runner {
        let (jobs, rx) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
        std::thread::spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        });
        Runner { jobs }
    }

    /// run runs `f` on the runner's thread and waits for its result.
    fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
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

/// host_of finds the host of a shard's replica.
pub(crate) fn host_of(shard: u64, replica: u64) -> Option<usize> {
    let (_, replicas) = SHARDS.iter().find(|(s, _)| *s == shard)?;
    replicas
        .iter()
        .find(|(r, _)| *r == replica)
        .map(|(_, h)| *h)
}

impl Node {
    /// start opens a host's log store and starts its replicas: bootstrapped the first time,
    /// from disk afterwards.
    fn start(
        h: usize,
        root: &std::path::Path,
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
            let booted = start::boot(&store, root, storage, Box::new(sm), cfg, incarnation)?;
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
    fn settle(&mut self, now: Instant) -> Result<()> {
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
