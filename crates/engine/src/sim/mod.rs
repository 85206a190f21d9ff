//! A deterministic fault simulation of the engine.
//!
//! Three hosts run two shards with the engine's own step workers, apply code and raft-engine
//! log store, on one thread and in virtual time. Each seed chooses its hosts' setup
//! ([`node::Setup`]): one or two step workers sharing the log store, state machines applied
//! through a batch updater (as the Node binding does) or one by one, and state machines in
//! memory or persistent (their state, applied index included, in a file on the simulated disk,
//! synced after every update or every third). Snapshot files live on the simulated disk too.
//! Two of the four clients write in client sessions (registering, now and then ending a
//! session, and sending a write whose outcome is unknown again as the same series).
//!
//! A seeded scheduler drops, delays, duplicates, reorders and misdirects messages, cuts links
//! (both ways or one way), pauses hosts, moves leadership, crashes hosts (losing every write
//! they had not synced, see [`disk`]), fails a sync (the host crashes mid-write), crashes a
//! host at an engine failpoint in the middle of a step (after a membership change went to the
//! apply thread, which then runs at once; after a snapshot file was saved but not recorded;
//! see `node::Node::hook`), stops and starts single replicas ([`replicas`]) and changes
//! membership: demote, promote, and replace a voter ([`membership`]); then it lets the cluster
//! heal. Step workers and apply threads of a host take turns on one thread, so the simulation
//! never has two writers in one raft-engine write group at once. Invariants:
//!
//! - at most one leader per term (checked after every step);
//! - every replica applies the same entry at each index, and never one twice (checked as
//!   entries are applied, so committed entries never change);
//! - a session's series applies at one index at most;
//! - a state machine is handed nothing once its incarnation has stopped, and a batch
//!   updater's items name the incarnation that runs;
//! - every acknowledged write is in the log at the index it was acknowledged with;
//! - all members converge once faults stop: same applied index and the same digest of what
//!   their state machines applied (so the same session verdicts);
//! - the clients' history of reads and writes is linearizable ([`linearizability`]).
//!
//! `SIM_SEEDS=N` runs seeds 1..=N (300 by default); `SIM_SEED=S` replays one seed. Every
//! choice comes from the seed, so a failing seed fails the same way again.

pub(crate) mod disk;
mod faults;
mod kv;
mod linearizability;
mod membership;
mod net;
mod node;
mod replicas;
mod rng;
mod wire;
mod workload;
mod world;

use workload::Workload;
use world::{Event, World, HOSTS, SHARDS};

/// Faults are injected for this long, in virtual milliseconds.
const FAULT_MS: u64 = 3_000;
/// Clients act until this long after the faults stop.
const CLIENT_MS: u64 = 1_000;
/// The run ends this long after the faults stop.
const SETTLE_MS: u64 = 3_000;
const CLIENTS: usize = 4;
const DEFAULT_SEEDS: u64 = 300;

/// Outcome is what one seed's run found.
#[derive(Debug, PartialEq)]
struct Outcome {
    violations: Vec<String>,
    ops: u64,
    ok: u64,
    unknown: u64,
    faults: world::Faults,
    retries: u64,
    registrations: u64,
    /// The history, to compare two runs of a seed.
    history: Vec<linearizability::Call>,
}

/// run plays one seed and checks its invariants.
fn run(seed: u64) -> Outcome {
    let load = Workload::new(CLIENTS, FAULT_MS + CLIENT_MS);
    let mut w = match World::new(seed, FAULT_MS, load) {
        Ok(w) => w,
        Err(e) => {
            return Outcome {
                violations: vec![format!("the cluster did not start: {e}")],
                ops: 0,
                ok: 0,
                unknown: 0,
                faults: Default::default(),
                retries: 0,
                registrations: 0,
                history: Vec::new(),
            }
        }
    };
    for c in 0..CLIENTS {
        w.at(c as u64, Event::Client(c));
    }
    while let Some(ev) = w.next(FAULT_MS) {
        w.dispatch(ev);
        w.poll();
    }
    w.heal_all();
    while let Some(ev) = w.next(FAULT_MS + SETTLE_MS) {
        w.dispatch(ev);
        w.poll();
    }
    w.final_reads();
    w.finish();
    let mut violations = std::mem::take(&mut w.checks.lock().violations);
    violations.extend(converged(&w));
    violations.extend(acknowledged(&w));
    if let Err(e) = linearizability::check(&w.load.history) {
        violations.push(e);
    }
    Outcome {
        violations,
        ops: w.load.history.len() as u64,
        ok: w.load.ok,
        unknown: w.load.unknown,
        faults: w.faults,
        retries: w.load.retries,
        registrations: w.load.registrations,
        history: std::mem::take(&mut w.load.history),
    }
}

/// converged checks that every member of every shard is up, has applied as far as the
/// others, and applied the same entries (its state machine's digest matches theirs).
fn converged(w: &World) -> Vec<String> {
    let mut out = Vec::new();
    for h in (0..HOSTS).filter(|h| w.hosts[*h].node.is_none()) {
        out.push(format!("host {h} is down at the end"));
    }
    for (shard, _) in SHARDS {
        let members = w.members(shard);
        if members.is_empty() {
            out.push(format!("shard {shard}: no replica runs at the end"));
            continue;
        }
        let mut applied = Vec::new();
        for (id, h) in members {
            let on = h.and_then(|h| {
                let r = w.hosts[h].node.as_ref()?.replica(shard)?;
                Some((r.applied, w.digest(h, shard).map(|(_, d)| d)))
            });
            applied.push((id, on));
        }
        let first = applied.first().map(|(_, a)| *a);
        if applied
            .iter()
            .any(|(_, a)| a.is_none() || Some(*a) != first)
        {
            out.push(format!(
                "shard {shard}: members did not converge (id, applied, digest of \
                 what the state machine applied): {applied:?}"
            ));
        }
    }
    out
}

/// acknowledged checks that every acknowledged write is where it was acknowledged.
fn acknowledged(w: &World) -> Vec<String> {
    let checks = w.checks.lock();
    w.load
        .acked
        .iter()
        .filter(|(shard, index, data)| checks.entry(*shard, *index) != Some(data))
        .map(|(shard, index, _)| format!("shard {shard}: write acknowledged at {index} lost"))
        .collect()
}

/// seeds are the seeds to run: `SIM_SEED` alone, or 1..=`SIM_SEEDS`.
fn seeds() -> Vec<u64> {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    match var("SIM_SEED") {
        Some(s) => vec![s],
        None => (1..=var("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    }
}

/// quiet_injected_panics keeps the panics of injected sync failures (raft-engine panics when a
/// sync fails) out of the test output; any other panic is reported as before.
pub(crate) fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let text = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied());
            let in_engine = info
                .location()
                .is_some_and(|l| l.file().contains("raft-engine"));
            if !(in_engine && text.is_some_and(|t| t.contains(disk::INJECTED))) {
                previous(info);
            }
        }));
    });
}

#[test]
fn seeded_faults_keep_every_invariant() {
    quiet_injected_panics();
    let seeds = seeds();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = parking_lot::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                let out = run(seed);
                results.lock().push((seed, out));
            });
        }
    });
    let mut results = results.into_inner();
    results.sort_by_key(|(seed, _)| *seed);
    let sum = |f: &dyn Fn(&Outcome) -> u64| results.iter().map(|(_, o)| f(o)).sum::<u64>();
    let failed: Vec<&(u64, Outcome)> = results
        .iter()
        .filter(|(_, o)| !o.violations.is_empty())
        .collect();
    println!(
        "{{\"seeds\":{},\"clean\":{},\"ops\":{},\"ok\":{},\"unknown\":{},\"crashes\":{},\
         \"sync_failures\":{},\"partitions\":{},\"pauses\":{},\"transfers\":{},\
         \"messages\":{},\"misdirected\":{},\"refused\":{},\"replica_restarts\":{},\
         \"conf_changes\":{},\"conf_changed\":{},\"failpoint_crashes\":{},\"retries\":{},\
         \"registrations\":{}}}",
        results.len(),
        results.len() - failed.len(),
        sum(&|o| o.ops),
        sum(&|o| o.ok),
        sum(&|o| o.unknown),
        sum(&|o| o.faults.crashes),
        sum(&|o| o.faults.sync_failures),
        sum(&|o| o.faults.partitions),
        sum(&|o| o.faults.pauses),
        sum(&|o| o.faults.transfers),
        sum(&|o| o.faults.messages),
        sum(&|o| o.faults.misdirected),
        sum(&|o| o.faults.refused),
        sum(&|o| o.faults.replica_restarts),
        sum(&|o| o.faults.conf_changes),
        sum(&|o| o.faults.conf_changed),
        sum(&|o| o.faults.failpoint_crashes),
        sum(&|o| o.retries),
        sum(&|o| o.registrations),
    );
    let report: Vec<String> = failed
        .iter()
        .map(|(seed, o)| {
            format!(
                "seed {seed}: {}\n  replay: SIM_SEED={seed} cargo test --release -p \
                 zongzi-engine --lib sim::",
                o.violations[..o.violations.len().min(3)].join("\n  ")
            )
        })
        .collect();
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn a_seed_replays_the_same_run() {
    quiet_injected_panics();
    let (a, b) = (run(7), run(7));
    assert!(a.ops > 0);
    assert_eq!(a, b);
}
