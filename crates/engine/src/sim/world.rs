//! The simulated cluster: its hosts (`node.rs`), an event queue in virtual time, and the
//! dispatch of events to hosts; the network is in `wire.rs`, the faults in `faults.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;
use raft::StateRole;

use super::disk::VolatileFs;
use super::kv::Shared;
use super::node::{Node, Runner, Setup, TICK_MS};
use super::rng::Rng;
use super::wire::SLOW;
use super::workload::Workload;
use crate::config::StartMode;
use crate::error::Result;
use crate::fault::panic_message;
use crate::router::Cmd;
use crate::snapshot::Disk;

/// Hosts in the simulated cluster.
pub(crate) const HOSTS: usize = 3;

/// SHARDS places each shard's replicas as (replica id, host) when the cluster starts.
/// Replica ids repeat across shards on different hosts, so a message that reaches the wrong
/// host finds a replica of its shard there. Membership changes move replicas later.
pub(crate) const SHARDS: [(u64, [(u64, usize); 3]); 2] =
    [(1, [(1, 0), (2, 1), (3, 2)]), (2, [(1, 1), (2, 2), (3, 0)])];

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
    /// A stopped replica of a shard starts again on a host.
    StartReplica(usize, u64),
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
            Event::Apply(h) | Event::StartReplica(h, _) => Some(*h),
            Event::Deliver { to, .. } => Some(*to),
            Event::SnapshotStatus { host, .. } => Some(*host),
            _ => None,
        }
    }
}

/// Slot is a host's place in the cluster, with or without a running node.
pub(crate) struct Slot {
    pub(super) root: PathBuf,
    pub(super) fs: Arc<VolatileFs>,
    pub(crate) node: Option<Node>,
    /// The thread this incarnation of the host runs on.
    pub(super) runner: Runner,
    pub(super) incarnation: u64,
    pub(crate) paused_until: u64,
    /// The next sync on this host fails (an injected disk failure, which crashes it).
    pub(super) armed: bool,
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
    /// Crashes at an engine failpoint, in the middle of a step.
    pub(crate) failpoint_crashes: u64,
    /// Replicas stopped and started again on their own, their host running on.
    pub(crate) replica_restarts: u64,
    /// Membership changes proposed, and those that took effect.
    pub(crate) conf_changes: u64,
    pub(crate) conf_changed: u64,
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
    pub(super) seq: u64,
    pub(crate) hosts: Vec<Slot>,
    pub(super) cut: HashSet<(usize, usize)>,
    pub(crate) checks: Shared,
    pub(crate) faults: Faults,
    /// Faults are injected until then; afterwards the cluster is left to heal.
    pub(crate) fault_end: u64,
    /// The clients and their history.
    pub(crate) load: Workload,
    /// Where each shard's replicas are: (replica id, host), members or on their way in.
    pub(crate) placement: HashMap<u64, Vec<(u64, usize)>>,
    /// What this seed chose about its hosts.
    pub(crate) setup: Setup,
    /// Membership changes under way (see `membership.rs`).
    pub(crate) changes: super::membership::Changes,
    _dir: tempfile::TempDir,
}

impl World {
    /// new starts a cluster whose every choice comes from `seed`, with faults until
    /// `fault_end` and clients acting until `load.stop`.
    pub(crate) fn new(seed: u64, fault_end: u64, load: Workload) -> Result<World> {
        let dir = tempfile::tempdir()?;
        let checks = Shared::default();
        let mut rng = Rng::new(seed);
        // Most runs look like the Node binding's hosts: a batch updater, two workers.
        let setup = Setup {
            workers: 1 + rng.below(4).min(1) as usize,
            batch: rng.below(4) != 0,
            sync_every: [0, 0, 1, 3][rng.below(4) as usize],
            seed,
        };
        let placement: HashMap<u64, Vec<(u64, usize)>> =
            SHARDS.iter().map(|(s, r)| (*s, r.to_vec())).collect();
        let mut hosts = Vec::new();
        for h in 0..HOSTS {
            let root = dir.path().join(format!("host-{h}"));
            std::fs::create_dir_all(&root)?;
            let fs = Arc::new(VolatileFs::new());
            Disk::simulate(&root, fs.clone());
            let runner = Runner::spawn();
            let (r, f, c) = (root.clone(), fs.clone(), checks.clone());
            let placed = placed_on(&placement, h, true);
            let node = runner.run(move || Node::start(h, &r, &f, 1, placed, &c, setup));
            let node = match node {
                Ok(n) => n,
                Err(e) => {
                    for s in hosts.iter().map(|s: &Slot| &s.root) {
                        Disk::forget(s);
                    }
                    Disk::forget(&root);
                    return Err(e);
                }
            };
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
            rng,
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
            placement,
            setup,
            changes: Default::default(),
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
                    self.on_host(h, |n, now| n.on_tick(now));
                }
                let next = TICK_MS + self.rng.below(2);
                self.at(next, Event::Tick(h));
            }
            Event::Apply(h) => {
                if let Some(n) = self.hosts[h].node.as_mut() {
                    n.apply_due = false;
                }
                self.on_host(h, |n, _| n.apply());
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
                self.on_host(host, move |n, _| n.router.send(shard, cmd));
            }
            Event::Restart(h) => self.restart(h),
            Event::StartReplica(h, shard) => self.start_replica(h, shard),
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
        // A crash at a failpoint is no failure of the engine, whatever followed it.
        let hooked = node.crashed.load(std::sync::atomic::Ordering::SeqCst);
        self.hosts[h].node = Some(node);
        // A sync that fails outside raft-engine (a snapshot file, a state machine's file)
        // crashes the machine as well.
        let fired = self.hosts[h].armed && !self.hosts[h].fs.sync_will_fail();
        let failure = match res {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(p) => Some(format!("panic: {}", panic_message(&*p))),
        };
        if hooked {
            self.faults.failpoint_crashes += 1;
            self.crash(h);
            return;
        }
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
        if fired {
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
        let apply = !node.apply_due && node.apply_queued();
        if apply {
            node.apply_due = true;
        }
        {
            let mut checks = self.checks.lock();
            for (shard, r) in node.replicas() {
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

    /// finish counts what the running hosts refused.
    pub(crate) fn finish(&mut self) {
        for s in &self.hosts {
            if let Some(n) = &s.node {
                self.faults.refused += n.outbox.dropped();
            }
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

impl World {
    /// host_of finds the host of a shard's replica.
    pub(crate) fn host_of(&self, shard: u64, replica: u64) -> Option<usize> {
        self.placement
            .get(&shard)?
            .iter()
            .find(|(r, _)| *r == replica)
            .map(|(_, h)| *h)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for s in &self.hosts {
            Disk::forget(&s.root);
        }
    }
}

/// placed_on lists the replicas placed on host `h`, with the mode each starts in when the
/// host has no data of it: the initial voters bootstrap the shard, later members join it.
pub(super) fn placed_on(
    placement: &HashMap<u64, Vec<(u64, usize)>>,
    h: usize,
    first: bool,
) -> Vec<(u64, u64, StartMode)> {
    let mut out = Vec::new();
    for (shard, replicas) in SHARDS {
        let Some(&(id, _)) = placement[&shard].iter().find(|(_, o)| *o == h) else {
            continue;
        };
        let mode = if first {
            let voters = replicas.iter().map(|(r, o)| (*r, format!("host-{o}")));
            StartMode::Bootstrap(voters.collect())
        } else {
            StartMode::Join
        };
        out.push((shard, id, mode));
    }
    out
}
