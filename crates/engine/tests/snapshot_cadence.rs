//! Automatic snapshots come every `snapshot_entries` entries while they are small; a large
//! one is taken again only once the log since has grown to its size, so a state that grows
//! with every entry is not written out whole every `snapshot_entries` entries.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use common::*;
use zongzi_engine::{ApplyResult, SmEntry, SmError, StateMachine};

/// Padded is the test Kv whose snapshots carry `pad` bytes ahead of the map.
struct Padded {
    kv: Kv,
    pad: usize,
}

impl StateMachine for Padded {
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        self.kv.update(entries)
    }
    fn query(&self, q: &[u8]) -> Result<Vec<u8>, SmError> {
        self.kv.query(q)
    }
    fn save_snapshot(&self, w: &mut dyn Write) -> Result<(), SmError> {
        let e = |e: std::io::Error| SmError(e.to_string());
        w.write_all(&(self.pad as u64).to_le_bytes()).map_err(e)?;
        w.write_all(&vec![0u8; self.pad]).map_err(e)?;
        self.kv.save_snapshot(w)
    }
    fn recover_from_snapshot(&mut self, index: u64, r: &mut dyn Read) -> Result<(), SmError> {
        let e = |e: std::io::Error| SmError(e.to_string());
        let mut n = [0u8; 8];
        r.read_exact(&mut n).map_err(e)?;
        let pad = u64::from_le_bytes(n);
        std::io::copy(&mut r.take(pad), &mut std::io::sink()).map_err(e)?;
        self.kv.recover_from_snapshot(index, r)
    }
}

/// latest is the highest index a snapshot file of the shard is filed under (0: none).
fn latest(data_dir: &Path, shard: u64) -> u64 {
    let dir = data_dir.join("snapshots").join(shard.to_string());
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("snap-")?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// padded is a one-host cluster snapshotting every 10 entries, with snapshots padded to `pad`
/// bytes, its shard 1 bootstrapped.
fn padded(pad: usize) -> Cluster {
    let tweak: Tweak = Arc::new(|_, cfg| {
        cfg.snapshot_entries = 10;
        cfg.compaction_overhead = 5;
    });
    let factory: Factory = Arc::new(move |_, _| {
        Box::new(Padded {
            kv: Kv::default(),
            pad,
        })
    });
    let c = Cluster::custom(1, tweak, factory);
    c.bootstrap(1, &[0]);
    c
}

/// write makes `n` writes on shard 1 of host 0, once it leads.
async fn write(c: &Cluster, from: usize, n: usize) {
    c.leader(1).await;
    for i in from..from + n {
        c.put(0, 1, &format!("k{i}"), "v").await;
    }
}

/// written runs 60 writes on a padded cluster and returns the index of its latest snapshot.
async fn written(pad: usize) -> u64 {
    let c = padded(pad);
    write(&c, 0, 60).await;
    latest(&c.nodes[0].dir, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_snapshots_come_every_snapshot_entries() {
    let at = written(0).await;
    assert!(at >= 40, "latest snapshot at {at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_snapshot_waits_for_a_log_of_its_size() {
    // The first snapshot comes after 10 entries; the next would need 2 MiB of log.
    let at = written(2 << 20).await;
    assert!((1..=20).contains(&at), "latest snapshot at {at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_remembers_how_large_the_last_snapshot_was() {
    let mut c = padded(2 << 20);
    write(&c, 0, 30).await;
    let before = latest(&c.nodes[0].dir, 1);
    assert!(before >= 1, "no snapshot before the restart");
    c.restart(0);
    write(&c, 30, 30).await;
    // Starting from a 2 MiB snapshot, 30 small entries are far from a log of its size.
    assert_eq!(latest(&c.nodes[0].dir, 1), before);
}
