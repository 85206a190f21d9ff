//! The clients of a simulation run: each writes and reads registers through a random host,
//! one operation at a time, and the history of what they saw is kept for the checker.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::oneshot::{self, error::TryRecvError};

use super::kv::{decode_value, encode_write, DIGEST};
use super::linearizability::{Call, Op};
use super::world::{Event, World, HOSTS, SHARDS};
use crate::error::{Error, Result};
use crate::replica::{AppliedSink, ProposalId, ProposalWaiter, ReadWaiter};
use crate::router::Cmd;
use crate::session::{Session, REGISTER, UNREGISTER};
use crate::state_machine::ApplyResult;

/// Registers per shard.
const KEYS: u32 = 3;
/// How long a client waits for an operation, in virtual milliseconds.
const DEADLINE_MS: u64 = 1_000;
/// Clients below this number write in client sessions, the others without.
const SESSION_CLIENTS: usize = 2;
/// Times a session write whose outcome is unknown is sent again, as the same series.
const RETRIES: u32 = 3;

/// Reply is the channel an operation's outcome arrives on.
enum Reply {
    Write(oneshot::Receiver<Result<ApplyResult>>),
    Read(oneshot::Receiver<Result<u64>>),
}

/// Pending is an operation waiting for its outcome.
struct Pending {
    op: Op,
    shard: u64,
    host: usize,
    call: u64,
    reply: Reply,
    /// The session entry it is, if any, and how often it was sent before.
    session: Option<Session>,
    attempt: u32,
}

/// Retry is a session write to send again, as it was.
struct Retry {
    op: Op,
    shard: u64,
    call: u64,
    session: Session,
    attempt: u32,
}

/// ClientSession is a client's session with one shard.
#[derive(Clone, Copy, Default)]
struct ClientSession {
    id: u64,
    registered: bool,
    /// The last series sent, and the last one the client has done with.
    series: u64,
    responded_to: u64,
}

/// Workload is the clients and what they saw.
#[derive(Default)]
pub(crate) struct Workload {
    pending: Vec<Option<Pending>>,
    retry: Vec<Option<Retry>>,
    sessions: Vec<HashMap<u64, ClientSession>>,
    /// Completed reads and writes, and writes whose outcome is unknown.
    pub(crate) history: Vec<Call>,
    /// Acknowledged writes: (shard, index, command).
    pub(crate) acked: Vec<(u64, u64, Vec<u8>)>,
    next_value: u64,
    /// Clients stop starting operations at this time.
    pub(crate) stop: u64,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) unknown: u64,
    /// Session writes sent again, and registrations.
    pub(crate) retries: u64,
    pub(crate) registrations: u64,
}

impl Workload {
    /// new is `clients` idle clients that act until `stop`.
    pub(crate) fn new(clients: usize, stop: u64) -> Self {
        Workload {
            pending: (0..clients).map(|_| None).collect(),
            retry: (0..clients).map(|_| None).collect(),
            sessions: (0..clients).map(|_| HashMap::new()).collect(),
            stop,
            ..Default::default()
        }
    }
}

/// key names a register of a shard in the history.
fn key(shard: u64, k: u32) -> u32 {
    shard as u32 * 16 + k
}

/// value_of is the write an operation makes: its register and value.
fn write_of(op: Op) -> Option<(u32, u64)> {
    match op {
        Op::Write { key, value } => Some((key, value)),
        Op::Read { .. } => None,
    }
}

impl World {
    /// client starts client `c`'s next operation (or sends its last again).
    pub(crate) fn client(&mut self, c: usize) {
        if self.load.pending[c].is_some() {
            return;
        }
        let retry = self.load.retry[c].is_some();
        if self.now >= self.load.stop && !retry {
            return;
        }
        let h = self.rng.below(HOSTS as u64) as usize;
        if self.hosts[h].node.is_none() {
            let later = self.rng.between(5, 30);
            self.at(later, Event::Client(c));
            return;
        }
        if let Some(r) = self.load.retry[c].take() {
            self.load.retries += 1;
            let (key, value) = write_of(r.op).expect("only writes are sent again");
            let s = r.session;
            let data = encode_write(key, value, s.client_id, s.series);
            self.propose(c, h, r.shard, r.op, r.call, data, Some(s), r.attempt);
            return;
        }
        let shard = SHARDS[self.rng.below(SHARDS.len() as u64) as usize].0;
        let k = key(shard, self.rng.below(KEYS as u64) as u32);
        let write = self.rng.chance(600);
        if c < SESSION_CLIENTS && write {
            let next_id = self.rng.next() | 1;
            let cs = *self.load.sessions[c].entry(shard).or_insert(ClientSession {
                id: next_id,
                ..Default::default()
            });
            let entry = |series, responded_to| Session {
                client_id: cs.id,
                series,
                responded_to,
            };
            if !cs.registered {
                // The cap travels in the registration; 0 asks for the default.
                self.load.registrations += 1;
                let op = Op::Read {
                    key: k,
                    value: None,
                };
                let s = entry(REGISTER, 0);
                self.propose(c, h, shard, op, self.now, Vec::new(), Some(s), 0);
                return;
            }
            if self.rng.chance(30) {
                let op = Op::Read {
                    key: k,
                    value: None,
                };
                let s = entry(UNREGISTER, 0);
                self.propose(c, h, shard, op, self.now, Vec::new(), Some(s), 0);
                return;
            }
            self.load.next_value += 1;
            let value = self.load.next_value;
            let series = cs.series + 1;
            if let Some(cs) = self.load.sessions[c].get_mut(&shard) {
                cs.series = series;
            }
            let s = entry(series, cs.responded_to);
            let data = encode_write(k, value, cs.id, series);
            let op = Op::Write { key: k, value };
            self.propose(c, h, shard, op, self.now, data, Some(s), 0);
            return;
        }
        if write {
            self.load.next_value += 1;
            let value = self.load.next_value;
            let data = encode_write(k, value, 0, 0);
            let op = Op::Write { key: k, value };
            self.propose(c, h, shard, op, self.now, data, None, 0);
            return;
        }
        let deadline = self.instant() + Duration::from_millis(DEADLINE_MS);
        let (tx, rx) = oneshot::channel();
        let waiter = ReadWaiter {
            reply: tx,
            deadline,
            _place: None,
        };
        let op = Op::Read {
            key: k,
            value: None,
        };
        self.load.pending[c] = Some(Pending {
            op,
            shard,
            host: h,
            call: self.now,
            reply: Reply::Read(rx),
            session: None,
            attempt: 0,
        });
        self.submit(h, shard, Cmd::ReadIndex { shard, waiter });
    }

    /// propose sends client `c`'s proposal of `data` (in session `session`, if any) to `h`.
    #[allow(clippy::too_many_arguments)]
    fn propose(
        &mut self,
        c: usize,
        h: usize,
        shard: u64,
        op: Op,
        call: u64,
        data: Vec<u8>,
        session: Option<Session>,
        attempt: u32,
    ) {
        let deadline = self.instant() + Duration::from_millis(DEADLINE_MS);
        let node = self.hosts[h].node.as_mut().expect("the host is up");
        let id = ProposalId {
            nonce: node.nonce,
            seq: node.seq,
        };
        node.seq += 1;
        let (tx, rx) = oneshot::channel();
        let waiter = ProposalWaiter {
            committed: None,
            applied: Some(AppliedSink::oneshot(tx, None)),
            deadline,
        };
        let cmd = Cmd::Propose {
            shard,
            id,
            data,
            session,
            waiter,
        };
        self.load.pending[c] = Some(Pending {
            op,
            shard,
            host: h,
            call,
            reply: Reply::Write(rx),
            session,
            attempt,
        });
        self.submit(h, shard, cmd);
    }

    /// poll collects the outcomes that arrived and lets their clients go on.
    pub(crate) fn poll(&mut self) {
        for c in 0..self.load.pending.len() {
            let Some(mut p) = self.load.pending[c].take() else {
                continue;
            };
            let outcome = match p.session {
                Some(s) => self.session_outcome(c, &mut p, s),
                None => self.outcome(&mut p),
            };
            match outcome {
                None => {
                    self.load.pending[c] = Some(p);
                    continue;
                }
                Some(call) => {
                    if let Some(call) = call {
                        self.load.history.push(call);
                    }
                    let think = self.rng.between(0, 20);
                    self.at(think, Event::Client(c));
                }
            }
        }
        self.poll_stops();
        self.poll_changes();
    }

    /// session_outcome is [`World::outcome`] for an entry of a client session: a write whose
    /// outcome is unknown is sent again as the same series, and a session the shard lost is
    /// registered again, under a new id.
    fn session_outcome(&mut self, c: usize, p: &mut Pending, s: Session) -> Option<Option<Call>> {
        let Reply::Write(rx) = &mut p.reply else {
            return Some(None);
        };
        let res = match rx.try_recv() {
            Err(TryRecvError::Empty) => return None,
            Ok(r) => r,
            Err(TryRecvError::Closed) => Err(Error::Closed),
        };
        let lost = matches!(res, Err(Error::SessionExpired(_)));
        let Some(cs) = self.load.sessions[c].get_mut(&p.shard) else {
            return Some(None);
        };
        if s.series == REGISTER || s.series == UNREGISTER {
            let registered = s.series == REGISTER && res.is_ok();
            if s.series == UNREGISTER && res.is_ok() {
                *cs = ClientSession {
                    id: self.rng.next() | 1,
                    ..Default::default()
                };
            }
            cs.registered = registered || (s.series == UNREGISTER && res.is_err());
            return Some(None);
        }
        if lost {
            // Registered again under a new id: the old id's series are never sent again.
            *cs = ClientSession {
                id: self.rng.next() | 1,
                ..Default::default()
            };
        }
        let mut call = Call {
            op: p.op,
            call: p.call,
            ret: Some(self.now),
        };
        match res {
            Ok(r) => {
                cs.responded_to = s.series;
                self.load.ok += 1;
                if let Some((key, value)) = write_of(p.op) {
                    let data = encode_write(key, value, s.client_id, s.series);
                    self.load.acked.push((p.shard, r.value, data));
                }
                Some(Some(call))
            }
            // Never proposed, on the first attempt: nothing applied.
            Err(
                Error::Dropped(_) | Error::Busy(_) | Error::NoLeader(_) | Error::SessionExpired(_),
            ) if p.attempt == 0 => {
                cs.responded_to = s.series;
                self.load.failed += 1;
                Some(None)
            }
            Err(_) if p.attempt < RETRIES && !lost && self.now < self.load.stop + DEADLINE_MS => {
                self.load.retry[c] = Some(Retry {
                    op: p.op,
                    shard: p.shard,
                    call: p.call,
                    session: s,
                    attempt: p.attempt + 1,
                });
                let later = self.rng.between(5, 50);
                self.at(later, Event::Client(c));
                Some(None)
            }
            Err(_) => {
                cs.responded_to = cs.responded_to.max(s.series);
                self.load.unknown += 1;
                call.ret = None;
                Some(Some(call))
            }
        }
    }

    /// outcome is `None` while the operation is pending, and then the call to record (if
    /// any: a write that surely failed and a read that failed tell nothing).
    fn outcome(&mut self, p: &mut Pending) -> Option<Option<Call>> {
        let mut call = Call {
            op: p.op,
            call: p.call,
            ret: Some(self.now),
        };
        match &mut p.reply {
            Reply::Write(rx) => match rx.try_recv() {
                Err(TryRecvError::Empty) => None,
                Ok(Ok(r)) => {
                    self.load.ok += 1;
                    if let Op::Write { key, value } = p.op {
                        let data = encode_write(key, value, 0, 0);
                        self.load.acked.push((p.shard, r.value, data));
                    }
                    Some(Some(call))
                }
                Ok(Err(Error::Dropped(_) | Error::Busy(_) | Error::NoLeader(_))) => {
                    self.load.failed += 1;
                    Some(None)
                }
                Ok(Err(_)) | Err(TryRecvError::Closed) => {
                    self.load.unknown += 1;
                    call.ret = None;
                    Some(Some(call))
                }
            },
            Reply::Read(rx) => match rx.try_recv() {
                Err(TryRecvError::Empty) => None,
                Ok(Ok(_)) => {
                    let Op::Read { key, .. } = p.op else {
                        return Some(None);
                    };
                    let Some(value) = self.query(p.host, p.shard, key) else {
                        self.load.failed += 1;
                        return Some(None);
                    };
                    self.load.ok += 1;
                    call.op = Op::Read { key, value };
                    Some(Some(call))
                }
                Ok(Err(_)) | Err(TryRecvError::Closed) => {
                    self.load.failed += 1;
                    Some(None)
                }
            },
        }
    }

    /// query reads a register from a host's replica as it stands (`None`: the host is down).
    pub(crate) fn query(&self, h: usize, shard: u64, key: u32) -> Option<Option<u64>> {
        let sm = self.hosts[h].node.as_ref()?.sms.get(&shard)?;
        let out = sm.read().query(&key.to_le_bytes()).ok()?;
        Some(decode_value(&out))
    }

    /// digest is a replica's applied index and digest of what it applied, as its state
    /// machine holds them (`None`: the host or the replica is down).
    pub(crate) fn digest(&self, h: usize, shard: u64) -> Option<(u64, u64)> {
        let sm = self.hosts[h].node.as_ref()?.sms.get(&shard)?;
        let out = sm.read().query(DIGEST).ok()?;
        Some((decode_value(&out)?, decode_value(&out[8..])?))
    }

    /// final_reads records every register as every replica holds it once the run is over,
    /// so that a write lost after it was acknowledged shows in the history.
    /// Only members are read: a replica removed from its shard may never learn it was, and
    /// keeps the state it had.
    pub(crate) fn final_reads(&mut self) {
        for (shard, _) in SHARDS {
            let hosts: Vec<usize> = self.members(shard).iter().filter_map(|(_, h)| *h).collect();
            for k in 0..KEYS {
                let k = key(shard, k);
                for &h in &hosts {
                    if let Some(value) = self.query(h, shard, k) {
                        self.load.history.push(Call {
                            op: Op::Read { key: k, value },
                            call: self.now,
                            ret: Some(self.now),
                        });
                    }
                }
            }
        }
    }
}
