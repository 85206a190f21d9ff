//! The simulated network: what a host sends goes on the wire, where it may be lost, late,
//! doubled, reordered or misdirected, and arrives unless the link is cut or the host is down.

use std::io::{Read, Write};

use raft::eraftpb::{Message, MessageType};

use super::world::{Event, World, HOSTS};
use crate::router::Cmd;
use crate::snapshot::Disk;

/// Per mille chances of what the network does to one message.
const DROP: u64 = 20;
const DUPLICATE: u64 = 20;
const MISDIRECT: u64 = 5;
pub(super) const SLOW: u64 = 30;

impl World {
    /// send puts messages on the wire, where they may be lost, late, doubled or misdirected.
    pub(super) fn send(&mut self, from: usize, msgs: Vec<(u64, Message)>) {
        for (shard, msg) in msgs {
            self.faults.messages += 1;
            let Some(mut to) = self.host_of(shard, msg.to) else {
                continue;
            };
            if self.rng.chance(MISDIRECT) {
                self.faults.misdirected += 1;
                to = self.rng.below(HOSTS as u64) as usize;
            }
            let mut snapshot = None;
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                let index = msg.get_snapshot().get_metadata().index;
                let read = crate::snapshot::open(&self.hosts[from].root, shard, index).and_then(
                    |mut f| {
                        let mut b = Vec::new();
                        f.read_to_end(&mut b).map(|_| b)
                    },
                );
                match read {
                    Ok(b) => snapshot = Some(b),
                    Err(_) if index <= 1 => {}
                    Err(_) => {
                        self.snapshot_failed(from, shard, msg.to);
                        continue;
                    }
                }
            }
            if self.rng.chance(DROP) {
                if msg.get_msg_type() == MessageType::MsgSnapshot {
                    self.snapshot_failed(from, shard, msg.to);
                }
                continue;
            }
            let mut delay = self.rng.between(1, 12);
            if self.rng.chance(SLOW) {
                delay += self.rng.between(30, 200);
            }
            // Forwarded client requests are not idempotent: a proposal delivered twice is
            // appended twice, and a read request registered twice lets late answers to the
            // first confirm the second. The TCP transport writes every message at most once;
            // applying a retried command once is the job of client sessions.
            let twice = snapshot.is_none()
                && msg.get_msg_type() != MessageType::MsgPropose
                && msg.get_msg_type() != MessageType::MsgReadIndex
                && self.rng.chance(DUPLICATE);
            if twice {
                let later = delay + self.rng.between(0, 30);
                let copy = Event::Deliver {
                    from,
                    to,
                    shard,
                    msg: Box::new(msg.clone()),
                    snapshot: None,
                };
                self.at(later, copy);
            }
            let ev = Event::Deliver {
                from,
                to,
                shard,
                msg: Box::new(msg),
                snapshot,
            };
            self.at(delay, ev);
        }
    }

    fn snapshot_failed(&mut self, host: usize, shard: u64, to: u64) {
        let delay = self.rng.between(1, 10);
        let ev = Event::SnapshotStatus {
            host,
            shard,
            to,
            ok: false,
        };
        self.at(delay, ev);
    }

    /// deliver hands an arriving message to its host, unless the link is cut or the host is
    /// down; a snapshot's file is put in place first, as the transport does.
    pub(super) fn deliver(
        &mut self,
        from: usize,
        to: usize,
        shard: u64,
        msg: Message,
        snapshot: Option<Vec<u8>>,
    ) {
        let is_snapshot = msg.get_msg_type() == MessageType::MsgSnapshot;
        if self.cut.contains(&(from, to)) || self.hosts[to].node.is_none() {
            if is_snapshot {
                self.snapshot_failed(from, shard, msg.to);
            }
            return;
        }
        let mut file = None;
        if let Some(bytes) = snapshot {
            // As the transport does: the file arrives under a temporary name, and the worker
            // puts it in place if Raft takes the snapshot.
            let index = msg.get_snapshot().get_metadata().index;
            let dir = crate::snapshot::dir(&self.hosts[to].root, shard);
            let tmp = dir.join(format!("recv-{index:020}-{}.tmp", self.seq));
            // The transport syncs the file before it hands it over.
            let disk = Disk::of(&self.hosts[to].root);
            let written = std::fs::create_dir_all(&dir)
                .and_then(|_| disk.create(&tmp))
                .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync()));
            if written.is_err() {
                if self.hosts[to].armed && !self.hosts[to].fs.sync_will_fail() {
                    self.crash(to);
                }
                self.snapshot_failed(from, shard, msg.to);
                return;
            }
            file = Some(tmp);
        }
        if is_snapshot {
            let ev = Event::SnapshotStatus {
                host: from,
                shard,
                to: msg.to,
                ok: true,
            };
            self.at(1, ev);
            let cmd = Cmd::Snapshot { shard, msg, file };
            self.on_host(to, move |n, _| n.router.send(shard, cmd));
            return;
        }
        let cmd = Cmd::Raft {
            shard,
            msg,
            _place: None,
        };
        self.on_host(to, move |n, _| n.router.send(shard, cmd));
    }
}
