//! A snapshot holds exactly the state after the index it is filed under, so restoring it, on
//! restart or on install at a follower, never applies an entry twice.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::recorder::{snapshot_files, strictly_increasing, Book};
use common::*;

const SHARDS: [u64; 3] = [1, 2, 3];

/// recording opens three hosts whose state machines are recorders fed by a slow batch
/// updater, with a snapshot every 20 entries and a short log behind it.
fn recording(book: &Book) -> Cluster {
    let b = book.clone();
    let tweak: Tweak = Arc::new(move |i, cfg| {
        cfg.snapshot_entries = 20;
        cfg.compaction_overhead = 5;
        cfg.batch_updater = Some(b.updater(i, Duration::from_millis(2)));
    });
    let b = book.clone();
    let c = Cluster::custom(3, tweak, Arc::new(move |shard, i| b.recorder(i, shard)));
    for s in SHARDS {
        c.bootstrap(s, &[0, 1, 2]);
    }
    c
}

/// load sends `per_writer` proposals from each of 12 concurrent writers per shard, through
/// the given hosts in turn.
async fn load(c: &Cluster, hosts: &[usize], per_writer: usize) {
    let mut writes = Vec::new();
    for s in SHARDS {
        for w in 0..12 {
            let h = hosts[w % hosts.len()];
            writes.push(async move {
                for i in 0..per_writer {
                    c.put(h, s, &format!("w{w}"), &i.to_string()).await;
                }
            });
        }
    }
    join_all(writes).await;
}

/// Watch reads every snapshot file of every host while the test runs, and records any that
/// holds an entry beyond its label.
struct Watch {
    stop: Arc<AtomicBool>,
    checked: Arc<AtomicUsize>,
    ahead: Arc<parking_lot::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(dirs: Vec<PathBuf>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let checked = Arc::new(AtomicUsize::new(0));
        let ahead = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (s, n, a) = (stop.clone(), checked.clone(), ahead.clone());
        let thread = std::thread::spawn(move || {
            let mut seen = std::collections::HashSet::new();
            while !s.load(Ordering::Relaxed) {
                for (h, d) in dirs.iter().enumerate() {
                    for shard in SHARDS {
                        for (label, held) in snapshot_files(d, shard) {
                            if !seen.insert((h, shard, label)) {
                                continue;
                            }
                            n.fetch_add(1, Ordering::Relaxed);
                            if let Some(last) = held.last().filter(|&&l| l > label) {
                                a.lock().push(format!(
                                    "host {h} shard {shard}: file {label} holds entry {last}"
                                ));
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Watch {
            stop,
            checked,
            ahead,
            thread: Some(thread),
        }
    }

    /// finish stops watching and asserts that snapshots were seen and none was ahead.
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        let checked = self.checked.load(Ordering::Relaxed);
        assert!(checked > 0, "no snapshot was taken");
        let ahead = self.ahead.lock();
        assert!(
            ahead.is_empty(),
            "{} of {checked} snapshots hold entries beyond their index: {:?}",
            ahead.len(),
            &ahead[..ahead.len().min(5)]
        );
    }
}

/// converge waits until every replica of every shard has applied the same number of
/// entries, then asserts that all applied exactly the same sequence, each entry once.
async fn converge(c: &Cluster, book: &Book) {
    for s in SHARDS {
        // A linearizable read on each host makes it apply everything committed so far.
        for i in 0..c.nodes.len() {
            retry("read", || c.nodes[i].host().read_index(s, T)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all: Vec<Vec<u64>> = (0..c.nodes.len()).map(|i| book.seen(i, s)).collect();
            if all
                .iter()
                .all(|a| a.len() == all[0].len() && a.last() == all[0].last())
            {
                for (i, a) in all.iter().enumerate() {
                    assert!(strictly_increasing(a), "host {i} shard {s} applied twice");
                    assert_eq!(a, &all[0], "host {i} shard {s} differs from host 0");
                }
                break;
            }
            if Instant::now() > deadline {
                for (i, a) in all.iter().enumerate() {
                    assert!(strictly_increasing(a), "host {i} shard {s} applied twice");
                }
                let lens: Vec<usize> = all.iter().map(|a| a.len()).collect();
                panic!("shard {s}: replicas applied different counts {lens:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_under_concurrent_load_hold_exactly_their_index_and_survive_restart() {
    let book = Book::default();
    let mut c = recording(&book);
    let watch = Watch::start(c.nodes.iter().map(|n| n.dir.clone()).collect());
    load(&c, &[0, 1, 2], 40).await;
    converge(&c, &book).await;

    // Every host restarts from its disk: its latest snapshot, then the log after it.
    for i in 0..3 {
        c.stop(i);
    }
    for i in 0..3 {
        c.restart(i);
    }
    load(&c, &[0, 1, 2], 3).await;
    converge(&c, &book).await;
    watch.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_installs_a_snapshot_applies_the_same_sequence_as_the_others() {
    let book = Book::default();
    let mut c = recording(&book);
    let watch = Watch::start(c.nodes.iter().map(|n| n.dir.clone()).collect());
    load(&c, &[0, 1, 2], 5).await;
    c.stop(2);
    // The others move far past what host 2 has, and compact their logs behind it.
    load(&c, &[0, 1], 30).await;
    // From here on, a membership event at host 2 can only come from a snapshot install.
    c.nodes[2].events.lock().clear();
    c.restart(2);
    load(&c, &[0, 1, 2], 3).await;
    converge(&c, &book).await;
    let installed = c.nodes[2]
        .events
        .lock()
        .iter()
        .filter(|e| matches!(e, zongzi_engine::Event::MembershipChanged { .. }))
        .count();
    assert!(installed > 0, "host 2 never installed a snapshot");
    watch.finish();
}
