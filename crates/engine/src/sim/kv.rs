//! The simulation's state machine, a map of registers, and the record of what every replica
//! applied, against which each application is checked as it happens.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use raft_engine::env::{FileSystem, Handle, Permission};

use super::disk::VolatileFs;

use crate::state_machine::{ApplyResult, SmEntry, SmError, StateMachine};

/// Checks is what the simulation learns as it runs, and the invariants it found broken.
#[derive(Default)]
pub(crate) struct Checks {
    /// The leader of each (shard, term) seen so far.
    leaders: HashMap<(u64, u64), u64>,
    /// What was applied at each index of each shard, by whichever replica applied it first.
    applied: HashMap<u64, BTreeMap<u64, Vec<u8>>>,
    /// The (host, shard, incarnation) of every replica whose stop has completed.
    stopped: HashSet<(usize, u64, u64)>,
    /// The index each (shard, client, series) of a session applied at.
    series: HashMap<(u64, u64, u64), u64>,
    /// Broken invariants, in the order they were found.
    pub(crate) violations: Vec<String>,
}

/// Shared is the record all replicas of one run write to.
pub(crate) type Shared = Arc<Mutex<Checks>>;

impl Checks {
    /// leader records that `replica` leads `shard` in `term`: at most one may.
    pub(crate) fn leader(&mut self, shard: u64, term: u64, replica: u64) {
        let first = *self.leaders.entry((shard, term)).or_insert(replica);
        let v = format!("shard {shard}: replicas {first} and {replica} both led term {term}");
        if first != replica && !self.violations.contains(&v) {
            self.violations.push(v);
        }
    }

    /// apply records that a replica applied `data` at `index`: every replica must apply the
    /// same entry there.
    fn apply(&mut self, at: &str, shard: u64, index: u64, data: &[u8]) {
        let log = self.applied.entry(shard).or_default();
        match log.get(&index) {
            Some(d) if d.as_slice() != data => self.violations.push(format!(
                "{at}: applied {data:?} at index {index}, another replica applied {d:?}"
            )),
            Some(_) => {}
            None => {
                log.insert(index, data.to_vec());
            }
        }
    }

    /// stopped records that the stop of the replica of `shard` on `host` started as
    /// `incarnation` has completed: its state machine is handed nothing more.
    pub(crate) fn stopped(&mut self, host: usize, shard: u64, incarnation: u64) {
        self.stopped.insert((host, shard, incarnation));
    }

    /// once records that a session's series applied at `index`: it may apply only there.
    fn once(&mut self, at: &str, shard: u64, client: u64, series: u64, index: u64) {
        let first = *self.series.entry((shard, client, series)).or_insert(index);
        if first != index {
            self.violations.push(format!(
                "{at}: series {series} of client {client} applied at {index} and at {first}"
            ));
        }
    }

    /// entry returns what was applied at `index` of `shard`.
    pub(crate) fn entry(&self, shard: u64, index: u64) -> Option<&Vec<u8>> {
        self.applied.get(&shard)?.get(&index)
    }
}

/// encode_write is the command that sets register `key` to `value`, as series `series` of
/// client session `client` (0: outside a session).
pub(crate) fn encode_write(key: u32, value: u64, client: u64, series: u64) -> Vec<u8> {
    let mut v = key.to_le_bytes().to_vec();
    v.extend_from_slice(&value.to_le_bytes());
    if client != 0 {
        v.extend_from_slice(&client.to_le_bytes());
        v.extend_from_slice(&series.to_le_bytes());
    }
    v
}

/// decode_value reads the answer to a query: the register's value, if it was ever written.
pub(crate) fn decode_value(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

/// DIGEST is the query that answers a replica's applied index and the digest of what it
/// applied, to compare replicas once the run is over.
pub(crate) const DIGEST: &[u8] = b"digest";

/// u64_at reads the little-endian number at `i`.
fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().unwrap())
}

/// Durable is where a persistent replica keeps its state: a file on the simulated disk,
/// synced after every `sync_every` updates, so that a crash loses the updates since.
pub(crate) struct Durable {
    pub(crate) fs: Arc<VolatileFs>,
    pub(crate) path: PathBuf,
    pub(crate) sync_every: u64,
    pub(crate) updates: u64,
}

impl Durable {
    /// load reads the state last written (what the disk kept of it after a crash).
    fn load(&self) -> std::io::Result<Option<Vec<u8>>> {
        let h = match self.fs.open(&self.path, Permission::ReadOnly) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut b = Vec::new();
        self.fs.new_reader(Arc::new(h))?.read_to_end(&mut b)?;
        Ok(Some(b).filter(|b| !b.is_empty()))
    }

    /// store writes the state in place of the last, and syncs it now and then.
    fn store(&mut self, state: &[u8]) -> std::io::Result<()> {
        let h = Arc::new(self.fs.create(&self.path)?);
        h.truncate(0)?;
        self.fs.new_writer(h.clone())?.write_all(state)?;
        self.updates += 1;
        if self.updates.is_multiple_of(self.sync_every) {
            h.sync()?;
        }
        Ok(())
    }
}

/// Kv is one replica's registers. Its state holds the index it has applied, so that the
/// replica can tell an entry it already applied from a new one, and a digest of every entry
/// it applied, so that replicas that applied alike can be told from ones that did not. A
/// persistent Kv keeps its state on the simulated disk and reopens from it.
pub(crate) struct Kv {
    /// Names the replica in violations.
    at: String,
    host: usize,
    shard: u64,
    incarnation: u64,
    checks: Shared,
    last: u64,
    digest: u64,
    map: BTreeMap<u32, u64>,
    durable: Option<Durable>,
}

impl Kv {
    /// new is an empty replica state of `shard` on `host`, started as `incarnation`,
    /// reporting to `checks`; with `durable`, it reopens from what the disk kept.
    pub(crate) fn new(
        host: usize,
        shard: u64,
        incarnation: u64,
        checks: Shared,
        durable: Option<Durable>,
    ) -> Self {
        Kv {
            at: format!("host {host} shard {shard} incarnation {incarnation}"),
            host,
            shard,
            incarnation,
            checks,
            last: 0,
            digest: 0,
            map: BTreeMap::new(),
            durable,
        }
    }

    /// encode is the whole state: applied index, digest, then the registers.
    fn encode(&self) -> Vec<u8> {
        let mut v = self.last.to_le_bytes().to_vec();
        v.extend_from_slice(&self.digest.to_le_bytes());
        for (k, val) in &self.map {
            v.extend_from_slice(&k.to_le_bytes());
            v.extend_from_slice(&val.to_le_bytes());
        }
        v
    }

    /// decode replaces the state with an encoded one.
    fn decode(&mut self, b: &[u8]) -> Result<(), SmError> {
        if b.len() < 16 || !(b.len() - 16).is_multiple_of(12) {
            return Err(SmError(format!("a state of {} bytes", b.len())));
        }
        self.last = u64_at(b, 0);
        self.digest = u64_at(b, 8);
        self.map = b[16..]
            .chunks(12)
            .map(|c| (u32::from_le_bytes(c[..4].try_into().unwrap()), u64_at(c, 4)))
            .collect();
        Ok(())
    }

    /// persist writes the state to the disk, if this Kv is persistent.
    fn persist(&mut self) -> Result<(), SmError> {
        let state = self.encode();
        match self.durable.as_mut() {
            Some(d) => d.store(&state).map_err(|e| SmError(e.to_string())),
            None => Ok(()),
        }
    }
}

impl StateMachine for Kv {
    fn open(&mut self) -> Result<u64, SmError> {
        let Some(d) = &self.durable else {
            return Ok(0);
        };
        if let Some(b) = d.load().map_err(|e| SmError(e.to_string()))? {
            self.decode(&b)?;
        }
        Ok(self.last)
    }

    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        let mut out = Vec::with_capacity(entries.len());
        let mut checks = self.checks.lock();
        if checks
            .stopped
            .contains(&(self.host, self.shard, self.incarnation))
        {
            checks.violations.push(format!(
                "{}: handed entries after its stop completed",
                self.at
            ));
        }
        for e in entries {
            if e.index <= self.last {
                checks.violations.push(format!(
                    "{}: entry {} applied after entry {}",
                    self.at, e.index, self.last
                ));
            }
            checks.apply(&self.at, self.shard, e.index, &e.data);
            self.last = e.index;
            self.digest = (self.digest ^ e.index).wrapping_mul(0x100_0000_01b3);
            for b in &e.data {
                self.digest = (self.digest ^ *b as u64).wrapping_mul(0x100_0000_01b3);
            }
            if e.data.len() == 12 || e.data.len() == 28 {
                let key = u32::from_le_bytes(e.data[..4].try_into().unwrap());
                self.map.insert(key, u64_at(&e.data, 4));
            }
            if e.data.len() == 28 {
                let (client, series) = (u64_at(&e.data, 12), u64_at(&e.data, 20));
                checks.once(&self.at, self.shard, client, series, e.index);
            }
            out.push(ApplyResult {
                value: e.index,
                data: Vec::new(),
            });
        }
        drop(checks);
        self.persist()?;
        Ok(out)
    }

    fn query(&self, query: &[u8]) -> Result<Vec<u8>, SmError> {
        if query == DIGEST {
            let mut v = self.last.to_le_bytes().to_vec();
            v.extend_from_slice(&self.digest.to_le_bytes());
            return Ok(v);
        }
        let key = u32::from_le_bytes(
            query
                .try_into()
                .map_err(|_| SmError("a query is a key".into()))?,
        );
        Ok(self
            .map
            .get(&key)
            .map(|v| v.to_le_bytes().to_vec())
            .unwrap_or_default())
    }

    fn save_snapshot(&self, w: &mut dyn Write) -> Result<(), SmError> {
        w.write_all(&self.encode())
            .map_err(|e| SmError(e.to_string()))
    }

    fn recover_from_snapshot(&mut self, index: u64, r: &mut dyn Read) -> Result<(), SmError> {
        let mut b = Vec::new();
        r.read_to_end(&mut b).map_err(|e| SmError(e.to_string()))?;
        self.decode(&b)?;
        // The state may end short of the label (entries the state machine is not handed,
        // such as a new leader's empty one, end some snapshots), never past it.
        if self.last > index {
            self.checks.lock().violations.push(format!(
                "{}: the snapshot labelled {index} holds the state after entry {}",
                self.at, self.last
            ));
        }
        self.last = index;
        self.persist()
    }
}
