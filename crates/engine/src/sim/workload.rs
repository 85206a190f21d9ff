//! The clients of a simulation run: each writes and reads registers through a random host,
//! one operation at a time, and the history of what they saw is kept for the checker.

use std::time::Duration;

use tokio::sync::oneshot::{self, error::TryRecvError};

use super::kv::{decode_value, encode_write};
use super::linearizability::{Call, Op};
use super::world::{World, HOSTS, SHARDS};
use crate::error::{Error, Result};
use crate::replica::{AppliedSink, ProposalId, ProposalWaiter, ReadWaiter};
use crate::router::Cmd;
use crate::state_machine::ApplyResult;

/// Registers per shard.
const KEYS: u32 = 3;
/// How long a client waits for an operation, in virtual milliseconds.
const DEADLINE_MS: u64 = 1_000;

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
}

/// Workload is the clients and what they saw.
#[derive(Default)]
pub(crate) struct Workload {
    pending: Vec<Option<Pending>>,
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
}

impl Workload {
    /// new is `clients` idle clients that act until `stop`.
    pub(crate) fn new(clients: usize, stop: u64) -> Self {
        Workload {
            pending: (0..clients).map(|_| None).collect(),
            stop,
            ..Default::default()
        }
    }
}

/// key names a register of a shard in the history.
fn key(shard: u64, k: u32) -> u32 {
    shard as u32 * 16 + k
}

impl World {
    /// client starts client `c`'s next operation.
    pub(crate) fn client(&mut self, c: usize) {
        if self.now >= self.load.stop || self.load.pending[c].is_some() {
            return;
        }
        let h = self.rng.below(HOSTS as u64) as usize;
        if self.hosts[h].node.is_none() {
            let later = self.rng.between(5, 30);
            self.at(later, super::world::Event::Client(c));
            return;
        }
        let shard = SHARDS[self.rng.below(SHARDS.len() as u64) as usize].0;
        let k = key(shard, self.rng.below(KEYS as u64) as u32);
        let deadline = self.instant() + Duration::from_millis(DEADLINE_MS);
        let (op, reply, cmd) = if self.rng.chance(600) {
            self.load.next_value += 1;
            let value = self.load.next_value;
            let node = self.hosts[h].node.as_mut().unwrap();
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
            let data = encode_write(k, value);
            let cmd = Cmd::Propose {
                shard,
                id,
                data,
                session: None,
                waiter,
            };
            (Op::Write { key: k, value }, Reply::Write(rx), cmd)
        } else {
            let (tx, rx) = oneshot::channel();
            let waiter = ReadWaiter {
                reply: tx,
                deadline,
            };
            let op = Op::Read {
                key: k,
                value: None,
            };
            (op, Reply::Read(rx), Cmd::ReadIndex { shard, waiter })
        };
        self.load.pending[c] = Some(Pending {
            op,
            shard,
            host: h,
            call: self.now,
            reply,
        });
        self.submit(h, shard, cmd);
    }

    /// poll collects the outcomes that arrived and lets their clients go on.
    pub(crate) fn poll(&mut self) {
        for c in 0..self.load.pending.len() {
            let Some(mut p) = self.load.pending[c].take() else {
                continue;
            };
            match self.outcome(&mut p) {
                None => {
                    self.load.pending[c] = Some(p);
                    continue;
                }
                Some(call) => {
                    if let Some(call) = call {
                        self.load.history.push(call);
                    }
                    let think = self.rng.between(0, 20);
                    self.at(think, super::world::Event::Client(c));
                }
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
                        self.load
                            .acked
                            .push((p.shard, r.value, encode_write(key, value)));
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

    /// final_reads records every register as every replica holds it once the run is over,
    /// so that a write lost after it was acknowledged shows in the history.
    pub(crate) fn final_reads(&mut self) {
        for (shard, _) in SHARDS {
            for k in 0..KEYS {
                let k = key(shard, k);
                for h in 0..HOSTS {
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
