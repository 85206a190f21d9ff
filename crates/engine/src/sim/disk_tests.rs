//! Tests of `disk.rs`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use raft::eraftpb::Entry;
use raft_engine::{Command, Config, Engine, LogBatch, MessageExt, ReadableSize};

use super::*;

/// Tells raft-engine how to index raft entries.
#[derive(Clone)]
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// Opens an engine on `dir`; a `target_file_size` makes files rotate and purge early.
fn open(dir: &Path, fs: &Arc<VolatileFs>, target_file_size: Option<u64>) -> Engine<VolatileFs> {
    let mut cfg = Config {
        dir: dir.to_str().unwrap().to_owned(),
        ..Config::default()
    };
    if let Some(size) = target_file_size {
        cfg.target_file_size = ReadableSize(size);
        cfg.purge_threshold = ReadableSize(size * 4);
    }
    Engine::open_with_file_system(cfg, fs.clone()).unwrap()
}

/// fresh opens an engine on a new directory and a new crash-modelling file system.
fn fresh() -> (tempfile::TempDir, Arc<VolatileFs>, Engine<VolatileFs>) {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(VolatileFs::new());
    let engine = open(dir.path(), &fs, None);
    (dir, fs, engine)
}

/// crash_and_reopen crashes the machine, drops the engine and opens a new one on what is left.
fn crash_and_reopen(
    engine: Engine<VolatileFs>,
    dir: &Path,
    fs: &Arc<VolatileFs>,
) -> Engine<VolatileFs> {
    fs.crash();
    drop(engine);
    open(dir, fs, None)
}

/// The entry written at `index` of `region` in write round `round`.
fn entry(round: u32, region: u64, index: u64) -> Entry {
    Entry {
        index,
        term: 1,
        data: format!("entry round={round} region={region} index={index}")
            .into_bytes()
            .into(),
        ..Entry::default()
    }
}

/// Appends one entry to `region` in a batch of its own.
fn append(engine: &Engine<VolatileFs>, e: Entry, region: u64, sync: bool) {
    let mut batch = LogBatch::default();
    batch.add_entries::<EntryExt>(region, &[e]).unwrap();
    engine.write(&mut batch, sync).unwrap();
}

/// Reads the entry at `index` of `region` from the log files, if the engine has it.
fn fetch(engine: &Engine<VolatileFs>, region: u64, index: u64) -> Option<Entry> {
    let mut out = Vec::new();
    engine
        .fetch_entries_to::<EntryExt>(region, index, index + 1, None, &mut out)
        .ok()?;
    out.pop()
}

/// Whether some file in `dir` holds `needle` on disk.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|f| {
        let content = std::fs::read(f.unwrap().path()).unwrap();
        content.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn synced_batch_survives_crash() {
    let (dir, fs, engine) = fresh();
    append(&engine, entry(0, 1, 1), 1, true);
    let engine = crash_and_reopen(engine, dir.path(), &fs);
    assert_eq!(fetch(&engine, 1, 1), Some(entry(0, 1, 1)));
}

#[test]
fn unsynced_batch_is_lost_on_crash() {
    let (dir, fs, engine) = fresh();
    append(&engine, entry(0, 1, 1), 1, true);
    append(&engine, entry(0, 1, 2), 1, false);
    let engine = crash_and_reopen(engine, dir.path(), &fs);
    assert_eq!(fetch(&engine, 1, 1), Some(entry(0, 1, 1)));
    assert_eq!(engine.last_index(1), Some(1));
    assert_eq!(fetch(&engine, 1, 2), None);
}

#[test]
fn unsynced_batch_is_readable_before_crash() {
    let (dir, fs, engine) = fresh();
    let e = entry(0, 1, 1);
    append(&engine, e.clone(), 1, false);
    // The entry is read back from the log file, through the overlay: it is not on disk.
    assert_eq!(fetch(&engine, 1, 1), Some(e.clone()));
    assert!(!on_disk(dir.path(), &e.data));

    // A clean shutdown syncs the active file.
    drop(engine);
    assert!(on_disk(dir.path(), &e.data));
    let engine = open(dir.path(), &fs, None);
    assert_eq!(fetch(&engine, 1, 1), Some(e));
}

#[test]
fn writes_through_handles_from_before_crash_are_dropped() {
    let (dir, fs, engine) = fresh();
    append(&engine, entry(0, 1, 1), 1, true);
    fs.crash();
    // The crashed engine goes on writing and syncing into dead handles.
    append(&engine, entry(0, 1, 2), 1, true);
    drop(engine);

    let engine = open(dir.path(), &fs, None);
    assert_eq!(engine.last_index(1), Some(1));
    assert_eq!(fetch(&engine, 1, 1), Some(entry(0, 1, 1)));
    // The reopened engine writes through new, live handles.
    append(&engine, entry(1, 1, 2), 1, true);
    let engine = crash_and_reopen(engine, dir.path(), &fs);
    assert_eq!(fetch(&engine, 1, 2), Some(entry(1, 1, 2)));
}

#[test]
fn failed_sync_panics_and_loses_the_batch() {
    let (dir, fs, engine) = fresh();
    append(&engine, entry(0, 1, 1), 1, true);
    fs.fail_next_sync();
    let write = catch_unwind(AssertUnwindSafe(|| {
        append(&engine, entry(0, 1, 2), 1, true);
    }));
    assert!(
        write.is_err(),
        "a failed sync must panic inside raft-engine"
    );
    drop(engine);

    let engine = open(dir.path(), &fs, None);
    assert_eq!(fetch(&engine, 1, 1), Some(entry(0, 1, 1)));
    assert_eq!(engine.last_index(1), Some(1));
}

#[test]
fn path_operations_of_the_crashed_engine_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let fs = VolatileFs::new();
    let handle = Arc::new(fs.create(&a).unwrap());
    let mut writer = fs.new_writer(handle.clone()).unwrap();
    writer.write_all(b"synced").unwrap();
    handle.sync().unwrap();
    writer.write_all(b" lost").unwrap();
    assert_eq!(handle.file_size().unwrap(), 11);
    fs.crash();
    assert_eq!(handle.file_size().unwrap(), 6);

    // `a` was opened before the crash only: renaming or deleting it is stale.
    fs.rename(&a, &b).unwrap();
    fs.delete(&a).unwrap();
    assert!(a.exists() && !b.exists());

    let handle = Arc::new(fs.open(&a, Permission::ReadOnly).unwrap());
    let mut content = String::new();
    fs.new_reader(handle)
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "synced");
    fs.rename(&a, &b).unwrap();
    assert!(!a.exists() && b.exists());
}

/// Number of append-queue log files in `dir`.
fn log_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|f| f.as_ref().unwrap().path().extension() == Some("raftlog".as_ref()))
        .count()
}

#[test]
fn crashed_engine_does_not_recycle_files_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(VolatileFs::new());
    let engine = open(dir.path(), &fs, Some(4096));
    let mut batch = LogBatch::default();
    batch.put(1, b"k".to_vec(), b"v1".to_vec()).unwrap();
    engine.write(&mut batch, true).unwrap();
    // Fill five files with entries of another region, then drop that region.
    let mut index = 0;
    while log_files(dir.path()) < 5 {
        index += 1;
        append(&engine, entry(0, 2, index), 2, true);
    }
    batch.add_command(2, Command::Clean);
    engine.write(&mut batch, true).unwrap();
    // An unsynced overwrite leaves the older files unreferenced: purging recycles them.
    batch.put(1, b"k".to_vec(), b"v2".to_vec()).unwrap();
    engine.write(&mut batch, false).unwrap();
    engine.purge_expired_files().unwrap();
    assert_eq!(engine.get(1, b"k"), Some(b"v2".to_vec()));
    fs.crash();
    // Dropping renames recycled files, which a crashed machine would not do: the
    // overwrite is lost, so the file holding `v1` must still be there.
    drop(engine);
    assert_eq!(log_files(dir.path()), 5);

    let engine = open(dir.path(), &fs, Some(4096));
    assert_eq!(engine.get(1, b"k"), Some(b"v1".to_vec()));
}

/// A small deterministic random number generator, `SplitMix64`.
struct Rng(u64);

impl Rng {
    /// Returns a number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// One write batch of the random test.
#[derive(Clone, Copy)]
enum Op {
    /// Appends the entry `index` of the region, written in write round `round`.
    Append { region: u64, index: u64, round: u32 },
    /// Compacts the region's entries below `index`.
    Compact { region: u64, index: u64 },
}

/// Number of raft groups written by the random test.
const REGIONS: u64 = 4;

/// The first and last entry index of each region, and each entry's write round, after
/// `ops`.
#[derive(Default)]
struct Model {
    /// (first, last) index of each region that has entries.
    bounds: HashMap<u64, (u64, u64)>,
    /// The write round of each (region, index) written.
    rounds: HashMap<(u64, u64), u32>,
}

impl Model {
    /// Applies one operation.
    fn apply(&mut self, op: Op) {
        match op {
            Op::Append {
                region,
                index,
                round,
            } => {
                let bounds = self.bounds.entry(region).or_insert((index, index));
                bounds.1 = index;
                self.rounds.insert((region, index), round);
            }
            Op::Compact { region, index } => {
                let bounds = self.bounds.get_mut(&region).unwrap();
                bounds.0 = bounds.0.max(index);
            }
        }
    }

    /// The (first, last) index of each region as the engine reports them.
    fn observe(engine: &Engine<VolatileFs>) -> HashMap<u64, (u64, u64)> {
        (1..=REGIONS)
            .filter_map(|r| Some((r, (engine.first_index(r)?, engine.last_index(r)?))))
            .collect()
    }
}

/// Writes batches with random syncs, compactions and purges into files of 4 KiB, crashes
/// at random points (half the time through a failed sync), and checks after each reopening
/// that the engine holds the state after some prefix of the batches that includes every
/// synced one.
#[test]
fn random_crash_keeps_a_prefix_with_every_synced_batch() {
    // Batches written but lost in the crashes, over all runs.
    let mut lost = 0;
    for seed in 1..=4 {
        let mut rng = Rng(seed);
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(VolatileFs::new());
        let mut ops: Vec<Op> = Vec::new();
        let mut model = Model::default();
        for round in 0..4 {
            let engine = open(dir.path(), &fs, Some(4096));
            let crash_after = rng.below(2_000) as usize;
            let fail_sync = rng.below(2) == 0;
            // Number of batches that reached the disk for sure: up to the last sync.
            let mut synced = ops.len();
            for n in 0.. {
                if n == crash_after {
                    if !fail_sync {
                        fs.crash();
                        break;
                    }
                    fs.fail_next_sync();
                }
                let region = 1 + rng.below(REGIONS);
                let last = model.bounds.get(&region).map_or(0, |b| b.1);
                let mut batch = LogBatch::default();
                let (op, sync) = if n % 100 == 99 && last > 40 {
                    let index = last - 20;
                    batch.add_command(region, Command::Compact { index });
                    (Op::Compact { region, index }, true)
                } else {
                    let index = last + 1;
                    let e = entry(round, region, index);
                    batch.add_entries::<EntryExt>(region, &[e]).unwrap();
                    (
                        Op::Append {
                            region,
                            index,
                            round,
                        },
                        rng.below(3) == 0,
                    )
                };
                // After `fail_next_sync`, raft-engine panics at the next sync.
                let write = catch_unwind(AssertUnwindSafe(|| {
                    engine.write(&mut batch, sync).unwrap();
                }));
                if write.is_err() {
                    assert!(fail_sync && n >= crash_after);
                    break;
                }
                ops.push(op);
                model.apply(op);
                if sync {
                    synced = ops.len();
                }
                if matches!(op, Op::Compact { .. }) {
                    let purge = catch_unwind(AssertUnwindSafe(|| {
                        engine.purge_expired_files().unwrap();
                    }));
                    if purge.is_err() {
                        assert!(fail_sync && n >= crash_after);
                        break;
                    }
                }
            }
            drop(engine);

            let engine = open(dir.path(), &fs, Some(4096));
            let seen = Model::observe(&engine);
            // Find the prefix of `ops` the engine recovered.
            let mut prefix = Model::default();
            ops[..synced].iter().for_each(|op| prefix.apply(*op));
            let mut kept = synced;
            while prefix.bounds != seen {
                assert!(
                    kept < ops.len(),
                    "seed {seed} round {round}: lost synced data"
                );
                prefix.apply(ops[kept]);
                kept += 1;
            }
            for (&region, &(first, last)) in &prefix.bounds {
                for index in first..=last {
                    let written = prefix.rounds[&(region, index)];
                    assert_eq!(
                        fetch(&engine, region, index),
                        Some(entry(written, region, index)),
                        "seed {seed} round {round}: region {region} index {index}",
                    );
                }
            }
            lost += ops.len() - kept;
            ops.truncate(kept);
            model = prefix;
        }
    }
    assert!(lost > 0, "no crash lost an unsynced batch");
}
