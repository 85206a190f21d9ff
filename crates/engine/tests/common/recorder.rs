//! Recorder: a state machine that is not idempotent. It keeps the index of every entry it
//! is handed, in order, and its snapshot is that list; an entry applied twice shows up as a
//! repeated index, and a snapshot ahead of its label holds indexes beyond it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use zongzi_engine::{ApplyResult, BatchItem, BatchUpdater, SmEntry, SmError, StateMachine};

/// Seen is the list of indexes one replica has applied.
pub type Seen = Arc<Mutex<Vec<u64>>>;

/// Gate holds a recorder's updates while it is set.
pub type Gate = Arc<AtomicBool>;

/// Book finds the list of every (host, shard) replica, for tests and the batch updater.
#[derive(Clone, Default)]
pub struct Book {
    seen: Arc<Mutex<HashMap<(usize, u64), Seen>>>,
    gates: Arc<Mutex<HashMap<(usize, u64), Gate>>>,
}

impl Book {
    /// cluster opens `n` hosts whose state machines are this book's recorders.
    pub fn cluster(&self, n: usize) -> super::Cluster {
        let b = self.clone();
        super::Cluster::custom(
            n,
            Arc::new(|_, _| {}),
            Arc::new(move |s, i| b.recorder(i, s)),
        )
    }

    /// recorder makes a fresh state machine for shard `shard` on host `host`.
    pub fn recorder(&self, host: usize, shard: u64) -> Box<dyn StateMachine> {
        let (seen, gate) = (Seen::default(), Gate::default());
        self.seen.lock().insert((host, shard), seen.clone());
        self.gates.lock().insert((host, shard), gate.clone());
        Box::new(Recorder { seen, gate })
    }

    /// seen returns a copy of what the replica of `shard` on `host` has applied.
    pub fn seen(&self, host: usize, shard: u64) -> Vec<u64> {
        self.seen
            .lock()
            .get(&(host, shard))
            .map(|s| s.lock().clone())
            .unwrap_or_default()
    }

    /// gate returns the gate of the latest recorder of `shard` on `host`: while it is set,
    /// that recorder's `update` waits (the batch updater does not look at it).
    pub fn gate(&self, host: usize, shard: u64) -> Gate {
        self.gates
            .lock()
            .get(&(host, shard))
            .cloned()
            .unwrap_or_default()
    }

    /// updater is a batch updater for `host` that takes `delay` per call, so that committed
    /// entries pile up in the apply queue and several tasks of a shard go out together.
    pub fn updater(&self, host: usize, delay: Duration) -> Arc<dyn BatchUpdater> {
        Arc::new(Updater {
            book: self.clone(),
            host,
            delay,
        })
    }
}

struct Recorder {
    seen: Seen,
    gate: Gate,
}

fn record(seen: &Seen, entries: &[SmEntry]) -> Vec<ApplyResult> {
    let mut s = seen.lock();
    entries
        .iter()
        .map(|e| {
            s.push(e.index);
            ApplyResult {
                value: s.len() as u64,
                data: Vec::new(),
            }
        })
        .collect()
}

impl StateMachine for Recorder {
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        while self.gate.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(record(&self.seen, entries))
    }

    fn query(&self, _: &[u8]) -> Result<Vec<u8>, SmError> {
        Ok(self.seen.lock().len().to_string().into_bytes())
    }

    fn save_snapshot(&self, w: &mut dyn Write) -> Result<(), SmError> {
        for i in self.seen.lock().iter() {
            w.write_all(&i.to_le_bytes())
                .map_err(|e| SmError(e.to_string()))?;
        }
        Ok(())
    }

    fn recover_from_snapshot(&mut self, _index: u64, r: &mut dyn Read) -> Result<(), SmError> {
        let mut b = Vec::new();
        r.read_to_end(&mut b).map_err(|e| SmError(e.to_string()))?;
        *self.seen.lock() = decode(&b);
        Ok(())
    }
}

struct Updater {
    book: Book,
    host: usize,
    delay: Duration,
}

impl BatchUpdater for Updater {
    fn update_batch(&self, batch: &[BatchItem<'_>]) -> Vec<Result<Vec<ApplyResult>, SmError>> {
        std::thread::sleep(self.delay);
        batch
            .iter()
            .map(|item| {
                let shard = item.shard;
                let seen = self.book.seen.lock().get(&(self.host, shard)).cloned();
                match seen {
                    Some(s) => Ok(record(&s, item.entries)),
                    None => Err(SmError(format!("no recorder for shard {shard}"))),
                }
            })
            .collect()
    }
}

/// decode reads a recorder snapshot.
pub fn decode(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// state_machine_bytes returns what a snapshot file holds after the engine's session table
/// (magic, length, table): the state machine's own bytes.
pub fn state_machine_bytes(file: &[u8]) -> &[u8] {
    assert_eq!(
        &file[..8],
        b"ZZSESS01",
        "a snapshot file starts with its session table"
    );
    let len = u64::from_le_bytes(file[8..16].try_into().unwrap()) as usize;
    &file[16 + len..]
}

/// snapshot_files lists a host's snapshot files of `shard` as (label, indexes held). Files
/// that vanish while being read (pruned) are skipped.
pub fn snapshot_files(data_dir: &Path, shard: u64) -> Vec<(u64, Vec<u64>)> {
    let dir = data_dir.join("snapshots").join(shard.to_string());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(label) = name
            .strip_prefix("snap-")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if let Ok(b) = std::fs::read(e.path()) {
            out.push((label, decode(state_machine_bytes(&b))));
        }
    }
    out
}

/// strictly_increasing tells whether no index repeats or goes back.
pub fn strictly_increasing(seen: &[u64]) -> bool {
    seen.windows(2).all(|w| w[0] < w[1])
}
