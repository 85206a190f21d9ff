//! The simulation's state machine, a map of registers, and the record of what every replica
//! applied, against which each application is checked as it happens.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::state_machine::{ApplyResult, SmEntry, SmError, StateMachine};

/// Checks is what the simulation learns as it runs, and the invariants it found broken.
#[derive(Default)]
pub(crate) struct Checks {
    /// The leader of each (shard, term) seen so far.
    leaders: HashMap<(u64, u64), u64>,
    /// What was applied at each index of each shard, by whichever replica applied it first.
    applied: HashMap<u64, BTreeMap<u64, Vec<u8>>>,
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

    /// entry returns what was applied at `index` of `shard`.
    pub(crate) fn entry(&self, shard: u64, index: u64) -> Option<&Vec<u8>> {
        self.applied.get(&shard)?.get(&index)
    }
}

/// encode_write is the command that sets register `key` to `value`.
pub(crate) fn encode_write(key: u32, value: u64) -> Vec<u8> {
    let mut v = key.to_le_bytes().to_vec();
    v.extend_from_slice(&value.to_le_bytes());
    v
}

/// decode_value reads the answer to a query: the register's value, if it was ever written.
pub(crate) fn decode_value(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

/// Kv is one replica's registers. Its snapshot holds the index it has applied, so that the
/// replica can tell an entry it already applied from a new one.
pub(crate) struct Kv {
    /// Names the replica in violations.
    at: String,
    shard: u64,
    checks: Shared,
    last: u64,
    map: BTreeMap<u32, u64>,
}

impl Kv {
    /// new is an empty replica state of `shard`, reporting to `checks`.
    pub(crate) fn new(at: String, shard: u64, checks: Shared) -> Self {
        Kv {
            at,
            shard,
            checks,
            last: 0,
            map: BTreeMap::new(),
        }
    }
}

impl StateMachine for Kv {
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        let mut out = Vec::with_capacity(entries.len());
        let mut checks = self.checks.lock();
        for e in entries {
            if e.index <= self.last {
                checks.violations.push(format!(
                    "{}: entry {} applied after entry {}",
                    self.at, e.index, self.last
                ));
            }
            checks.apply(&self.at, self.shard, e.index, &e.data);
            self.last = e.index;
            if e.data.len() == 12 {
                let key = u32::from_le_bytes(e.data[..4].try_into().unwrap());
                let value = u64::from_le_bytes(e.data[4..].try_into().unwrap());
                self.map.insert(key, value);
            }
            out.push(ApplyResult {
                value: e.index,
                data: Vec::new(),
            });
        }
        Ok(out)
    }

    fn query(&self, query: &[u8]) -> Result<Vec<u8>, SmError> {
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
        let io = |e: std::io::Error| SmError(e.to_string());
        w.write_all(&self.last.to_le_bytes()).map_err(io)?;
        for (k, v) in &self.map {
            w.write_all(&k.to_le_bytes()).map_err(io)?;
            w.write_all(&v.to_le_bytes()).map_err(io)?;
        }
        Ok(())
    }

    fn recover_from_snapshot(&mut self, index: u64, r: &mut dyn Read) -> Result<(), SmError> {
        let mut b = Vec::new();
        r.read_to_end(&mut b).map_err(|e| SmError(e.to_string()))?;
        if b.len() < 8 || (b.len() - 8) % 12 != 0 {
            return Err(SmError(format!("a snapshot of {} bytes", b.len())));
        }
        self.last = u64::from_le_bytes(b[..8].try_into().unwrap());
        // The state may end short of the label (entries the state machine is not handed,
        // such as a new leader's empty one, end some snapshots), never past it.
        if self.last > index {
            self.checks.lock().violations.push(format!(
                "{}: the snapshot labelled {index} holds the state after entry {}",
                self.at, self.last
            ));
        }
        self.last = index;
        self.map = b[8..]
            .chunks(12)
            .map(|c| {
                let k = u32::from_le_bytes(c[..4].try_into().unwrap());
                (k, u64::from_le_bytes(c[4..].try_into().unwrap()))
            })
            .collect();
        Ok(())
    }
}
