//! Client sessions: proposals that apply exactly once, however often they are sent.
//!
//! A client registers a session through Raft and then numbers its proposals (the series).
//! Each replica keeps a table, built only from the log, of every session's results: a
//! proposal whose series already applied is answered from the table instead of reaching the
//! state machine again. A proposal also says up to which series the client has its answers
//! (`responded_to`), so the table drops those. The table is part of every snapshot.
//!
//! Everything here is deterministic: the table, and so every verdict, is a function of the
//! log alone. Each entry changes the table when it is checked, in log order, whatever batch
//! it arrives in; a result only fills the place its entry took. Sessions are evicted least
//! recently used first, by log index, when a shard has more than its cap, and the cap comes
//! with each registration in the log, never from a host's configuration. A proposal of an
//! evicted (or never registered) session applies nothing and fails with
//! [`Error::SessionExpired`], as does one whose result the table no longer keeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::state_machine::ApplyResult;
use crate::version::{supported, unsupported, OLDEST_SESSION_TABLE_VERSION, SESSION_TABLE_VERSION};

/// Session marks a proposal as one of a client's series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The client's id, chosen by the client at random (not 0).
    pub client_id: u64,
    /// The proposal's number in the client's series (from 1), or [`REGISTER`] /
    /// [`UNREGISTER`].
    pub series: u64,
    /// Every series up to this one has been answered: the table may drop their results.
    /// A [`REGISTER`] entry carries the shard's session cap here instead (0: the default).
    pub responded_to: u64,
}

/// REGISTER as a series registers the session (the entry's data is ignored).
pub const REGISTER: u64 = u64::MAX;
/// UNREGISTER as a series ends the session.
pub const UNREGISTER: u64 = u64::MAX - 1;

/// Most results one session keeps; older ones are dropped as if answered.
const MAX_RESULTS: usize = 4096;

/// DEFAULT_CAP is the session cap of a registration that names none.
pub(crate) const DEFAULT_CAP: u64 = 4096;

/// Length of a session as it travels after the proposal id in an entry's context.
pub(crate) const ENCODED_LEN: usize = 24;

impl Session {
    pub(crate) fn encode_into(&self, v: &mut Vec<u8>) {
        v.extend_from_slice(&self.client_id.to_le_bytes());
        v.extend_from_slice(&self.series.to_le_bytes());
        v.extend_from_slice(&self.responded_to.to_le_bytes());
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != ENCODED_LEN {
            return None;
        }
        let at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        Some(Session {
            client_id: at(0),
            series: at(8),
            responded_to: at(16),
        })
    }

    /// of_context reads the session an entry's context carries after its proposal id.
    pub(crate) fn of_context(ctx: &[u8]) -> Option<Self> {
        ctx.get(16..).and_then(Session::decode)
    }

    /// check refuses what no honest client sends.
    pub(crate) fn check(&self) -> Result<()> {
        if self.client_id == 0 || self.series == 0 {
            return Err(Error::InvalidArgument(
                "a session needs a client id and a series, both above 0".into(),
            ));
        }
        Ok(())
    }
}

/// Client is what the table keeps of one session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Client {
    /// The client has the answers of every series up to this one.
    responded_to: u64,
    /// Results up to this series are dropped: answered, or too many to keep.
    dropped_to: u64,
    /// The place of every series applied and kept.
    results: BTreeMap<u64, Slot>,
    /// Index of the last entry of this session: the order of eviction.
    last_used: u64,
}

/// Slot is the place of one applied series in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// Applied at this index, in the batch being applied: its result is not known yet.
    Pending(u64),
    /// Applied, with its result (None: applied before a restart of a persistent state
    /// machine, or without a result; not kept).
    Done(Option<ApplyResult>),
}

/// Verdict says what to do with one entry of a session.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Hand it to the state machine, then `record` its result.
    Apply,
    /// Answer it with this, without the state machine.
    Answer(Result<ApplyResult>),
    /// It repeats an entry of the same batch, at this index: answer it as that one.
    SameAs(u64),
}

/// Sessions is one shard's session table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Sessions {
    clients: HashMap<u64, Client>,
    /// (last_used, client id), oldest first.
    by_use: BTreeSet<(u64, u64)>,
}

impl Sessions {
    pub(crate) fn new() -> Self {
        Sessions::default()
    }

    /// len is the number of sessions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.clients.len()
    }

    fn touch(&mut self, id: u64, index: u64) {
        if let Some(c) = self.clients.get_mut(&id) {
            self.by_use.remove(&(c.last_used, id));
            c.last_used = index;
            self.by_use.insert((index, id));
        }
    }

    /// check decides what entry `index` of session `s` does, and updates the table for it.
    /// Entries go through check in log order; the results of those it lets apply then go
    /// through `record`, which changes no verdict.
    pub(crate) fn check(&mut self, index: u64, s: Session) -> Verdict {
        let id = s.client_id;
        if s.check().is_err() {
            return Verdict::Answer(Err(Error::InvalidArgument("bad session".into())));
        }
        match s.series {
            REGISTER => {
                if let std::collections::hash_map::Entry::Vacant(v) = self.clients.entry(id) {
                    v.insert(Client::default());
                    self.evict_over_cap(id, cap_of(s.responded_to));
                }
                self.touch(id, index);
                return Verdict::Answer(Ok(ApplyResult {
                    value: id,
                    data: Vec::new(),
                }));
            }
            UNREGISTER => {
                if let Some(c) = self.clients.remove(&id) {
                    self.by_use.remove(&(c.last_used, id));
                }
                return Verdict::Answer(Ok(ApplyResult::default()));
            }
            _ => {}
        }
        let Some(c) = self.clients.get_mut(&id) else {
            return Verdict::Answer(Err(Error::SessionExpired(format!(
                "client {id} has no session (never registered, or evicted)"
            ))));
        };
        // Drop what the client says it has.
        if s.responded_to > c.responded_to {
            c.responded_to = s.responded_to;
            c.dropped_to = c.dropped_to.max(s.responded_to);
            c.results = c.results.split_off(&s.responded_to.saturating_add(1));
        }
        let verdict = if let Some(slot) = c.results.get(&s.series) {
            match slot {
                Slot::Pending(first) => Verdict::SameAs(*first),
                Slot::Done(r) => Verdict::Answer(r.clone().ok_or_else(|| {
                    Error::OutcomeUnknown(format!(
                        "series {} of client {id} applied before the replica restarted; \
                         its result was not kept",
                        s.series
                    ))
                })),
            }
        } else if s.series <= c.responded_to {
            Verdict::Answer(Err(Error::SessionExpired(format!(
                "series {} of client {id} was answered before; it does not apply again",
                s.series
            ))))
        } else if s.series <= c.dropped_to {
            Verdict::Answer(Err(Error::OutcomeUnknown(format!(
                "series {} of client {id} is older than the results kept",
                s.series
            ))))
        } else {
            c.results.insert(s.series, Slot::Pending(index));
            while c.results.len() > MAX_RESULTS {
                if let Some((old, _)) = c.results.pop_first() {
                    c.dropped_to = c.dropped_to.max(old);
                }
            }
            Verdict::Apply
        };
        self.touch(id, index);
        verdict
    }

    /// record fills in the result of series `series` of `client`, which `check` let apply
    /// (None: it applied, but its result is not known here). A place the table gave up
    /// since (the session ended or was evicted, or the series was dropped) stays given up.
    pub(crate) fn record(&mut self, client: u64, series: u64, result: Option<&ApplyResult>) {
        let slot = self
            .clients
            .get_mut(&client)
            .and_then(|c| c.results.get_mut(&series));
        if let Some(slot @ Slot::Pending(_)) = slot {
            *slot = Slot::Done(result.cloned());
        }
    }

    /// replay brings the table past an entry that the state machine applied before a restart
    /// (a persistent state machine reopens past the snapshot the table came from): what the
    /// entry did to the table is redone, and a series it applied is kept without a result.
    pub(crate) fn replay(&mut self, index: u64, s: Session) {
        if matches!(self.check(index, s), Verdict::Apply) {
            self.record(s.client_id, s.series, None);
        }
    }

    /// evict_over_cap drops the least recently used sessions past `cap`, never `keep`.
    fn evict_over_cap(&mut self, keep: u64, cap: usize) {
        while self.clients.len() > cap {
            let Some(&(used, id)) = self.by_use.iter().find(|(_, id)| *id != keep) else {
                return;
            };
            self.by_use.remove(&(used, id));
            self.clients.remove(&id);
        }
    }

    /// encode writes the table: sessions in id order, so equal tables encode alike. A result
    /// not known yet (only inside a batch) is written as not kept.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        put(&mut v, self.clients.len() as u64);
        let mut ids: Vec<&u64> = self.clients.keys().collect();
        ids.sort();
        for id in ids {
            let c = &self.clients[id];
            put(&mut v, *id);
            put(&mut v, c.responded_to);
            put(&mut v, c.dropped_to);
            put(&mut v, c.last_used);
            put(&mut v, c.results.len() as u64);
            for (series, slot) in &c.results {
                put(&mut v, *series);
                match slot {
                    Slot::Pending(_) | Slot::Done(None) => put(&mut v, 0),
                    Slot::Done(Some(r)) => {
                        put(&mut v, 1);
                        put(&mut v, r.value);
                        put(&mut v, r.data.len() as u64);
                        v.extend_from_slice(&r.data);
                    }
                }
            }
        }
        v
    }

    /// decode reads a table that `encode` wrote.
    pub(crate) fn decode(b: &[u8]) -> Result<Self> {
        let bad = || Error::InvalidArgument("a snapshot's session table is corrupt".into());
        let mut r = Reader { b, at: 0 };
        let mut t = Sessions::new();
        for _ in 0..r.u64().ok_or_else(bad)? {
            let id = r.u64().ok_or_else(bad)?;
            let mut c = Client {
                responded_to: r.u64().ok_or_else(bad)?,
                dropped_to: r.u64().ok_or_else(bad)?,
                last_used: r.u64().ok_or_else(bad)?,
                results: BTreeMap::new(),
            };
            for _ in 0..r.u64().ok_or_else(bad)? {
                let series = r.u64().ok_or_else(bad)?;
                let result = match r.u64().ok_or_else(bad)? {
                    0 => None,
                    1 => {
                        let value = r.u64().ok_or_else(bad)?;
                        let len = r.u64().ok_or_else(bad)?;
                        let data = r.bytes(len).ok_or_else(bad)?.to_vec();
                        Some(ApplyResult { value, data })
                    }
                    _ => return Err(bad()),
                };
                c.results.insert(series, Slot::Done(result));
            }
            t.by_use.insert((c.last_used, id));
            t.clients.insert(id, c);
        }
        if r.at != b.len() {
            return Err(bad());
        }
        Ok(t)
    }
}

/// Snapshot files start with the session table: a magic ("ZZSESS" and the table's version
/// as two ASCII digits, [`SESSION_TABLE_VERSION`]), its length (u64, little endian), then
/// the table; the state machine's own bytes follow.
const MAGIC: &[u8; 6] = b"ZZSESS";

/// Most bytes a snapshot's session table may take (guards the allocation on reading).
const MAX_TABLE_BYTES: u64 = 1 << 30;

/// write_table writes the head of a snapshot file: the session table.
pub(crate) fn write_table(w: &mut dyn Write, t: &Sessions) -> std::io::Result<()> {
    let table = t.encode();
    w.write_all(MAGIC)?;
    let v = SESSION_TABLE_VERSION;
    w.write_all(&[b'0' + v / 10, b'0' + v % 10])?;
    w.write_all(&(table.len() as u64).to_le_bytes())?;
    w.write_all(&table)
}

/// read_table reads the head of a snapshot file, leaving `r` at the state machine's bytes.
pub(crate) fn read_table(r: &mut dyn Read) -> Result<Sessions> {
    let bad = |what: &str| Error::InvalidArgument(format!("snapshot file: {what}"));
    let mut head = [0u8; 16];
    r.read_exact(&mut head)?;
    let digits = &head[6..8];
    if &head[..6] != MAGIC || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("no session table at its start"));
    }
    let version = u32::from(digits[0] - b'0') * 10 + u32::from(digits[1] - b'0');
    let (oldest, newest) = (OLDEST_SESSION_TABLE_VERSION, SESSION_TABLE_VERSION);
    if !supported(version, oldest, newest) {
        let why = unsupported("snapshot session table", version, oldest, newest);
        return Err(Error::UnsupportedVersion(why));
    }
    let len = u64::from_le_bytes(head[8..].try_into().unwrap_or_default());
    if len > MAX_TABLE_BYTES {
        return Err(bad("session table too large"));
    }
    let mut table = vec![0u8; len as usize];
    r.read_exact(&mut table)?;
    Sessions::decode(&table)
}

/// cap_of reads the session cap a registration carries.
fn cap_of(v: u64) -> usize {
    let cap = if v == 0 { DEFAULT_CAP } else { v };
    usize::try_from(cap).unwrap_or(usize::MAX)
}

fn put(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn bytes(&mut self, n: u64) -> Option<&[u8]> {
        let n = usize::try_from(n).ok()?;
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
