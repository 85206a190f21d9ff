//! Membership changes during faults, through the engine's own conf change path
//! (`Cmd::ConfChange`, as `membership.rs` of the host sends it): a voter is demoted to
//! non-voting, a non-voting member promoted, or a voter replaced. A replacement removes the
//! voter, stops its replica, deletes its data, adds a new replica on the same host as
//! non-voting and starts it to join; a later change promotes it. One change per shard is
//! under way at a time, each step waiting for the one before, as a host controller does.

use std::collections::HashMap;
use std::time::Duration;

use raft::eraftpb::{ConfChange, ConfChangeType, ConfState};
use raft::StateRole;
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::world::{World, HOSTS, SHARDS};
use crate::config::StartMode;
use crate::error::Result;
use crate::event::Membership;
use crate::replica::{ConfWaiter, ProposalId};
use crate::router::Cmd;

/// How long a membership change may take, in virtual milliseconds.
const DEADLINE_MS: u64 = 1_000;

/// Changes are the membership changes under way, one per shard at most.
#[derive(Default)]
pub(crate) struct Changes {
    by_shard: HashMap<u64, Step>,
    /// The last replica id given out, per shard.
    last_id: HashMap<u64, u64>,
}

/// Step is where one shard's change stands.
enum Step {
    /// Proposed; `then` follows once it took effect.
    Proposed {
        reply: oneshot::Receiver<Result<Membership>>,
        then: Then,
    },
    /// The removed replica `old` on `host` is being stopped.
    Clearing { host: usize, old: u64 },
    /// The removed replica is stopped: its data goes, and a new replica is added.
    Cleared { host: usize, old: u64 },
}

/// Then is what follows a change.
enum Then {
    Nothing,
    /// Clear the removed replica `old` off `host`.
    Clear {
        host: usize,
        old: u64,
    },
    /// Start the added replica `id` on `host`, to join.
    Join {
        host: usize,
        id: u64,
    },
}

impl Changes {
    /// claims tells whether a change is clearing the replica of `shard` on host `h`, which
    /// must then not be restarted by anyone else.
    pub(crate) fn claims(&self, h: usize, shard: u64) -> bool {
        match self.by_shard.get(&shard) {
            Some(Step::Clearing { host, .. } | Step::Cleared { host, .. }) => *host == h,
            Some(Step::Proposed {
                then: Then::Clear { host, .. },
                ..
            }) => *host == h,
            _ => false,
        }
    }

    /// stopped hears that the replica of `shard` on `h` has stopped.
    pub(crate) fn stopped(&mut self, h: usize, shard: u64) {
        if let Some(Step::Clearing { host, old }) = self.by_shard.get(&shard) {
            if *host == h {
                let old = *old;
                self.by_shard.insert(shard, Step::Cleared { host: h, old });
            }
        }
    }
}

impl World {
    /// reconfigure starts a membership change of a random shard, if none is under way.
    pub(super) fn reconfigure(&mut self) {
        let shard = SHARDS[self.rng.below(SHARDS.len() as u64) as usize].0;
        if self.changes.by_shard.contains_key(&shard) {
            return;
        }
        let Some((lh, leader, cs)) = self.leader_of(shard) else {
            return;
        };
        let mut voters = cs.voters.clone();
        voters.sort_unstable();
        let mut learners = cs.learners.clone();
        learners.sort_unstable();
        let (change, target, then) = if let Some(&l) = learners.first() {
            (ConfChangeType::AddNode, l, Then::Nothing)
        } else {
            let others: Vec<u64> = voters.iter().copied().filter(|v| *v != leader).collect();
            if voters.len() < 3 || others.is_empty() {
                return;
            }
            let v = others[self.rng.below(others.len() as u64) as usize];
            let Some(host) = self.host_of(shard, v) else {
                return;
            };
            match self.rng.below(2) {
                0 => (ConfChangeType::AddLearnerNode, v, Then::Nothing),
                _ => (ConfChangeType::RemoveNode, v, Then::Clear { host, old: v }),
            }
        };
        self.propose_change(lh, shard, change, target, None, then);
    }

    /// propose_change sends a conf change to the shard's replica on host `h`.
    fn propose_change(
        &mut self,
        h: usize,
        shard: u64,
        change: ConfChangeType,
        target: u64,
        addr: Option<String>,
        then: Then,
    ) {
        let Some(node) = self.hosts[h].node.as_mut() else {
            return;
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(change);
        cc.node_id = target;
        if let Some(a) = addr {
            cc.context = a.into_bytes().into();
        }
        let id = ProposalId {
            nonce: node.nonce,
            seq: node.seq,
        };
        node.seq += 1;
        let (tx, reply) = oneshot::channel();
        let waiter = ConfWaiter {
            reply: tx,
            deadline: self.instant() + Duration::from_millis(DEADLINE_MS),
        };
        self.faults.conf_changes += 1;
        self.changes
            .by_shard
            .insert(shard, Step::Proposed { reply, then });
        let cmd = Cmd::ConfChange {
            shard,
            id,
            cc,
            waiter,
        };
        self.submit(h, shard, cmd);
    }

    /// leader_of finds a shard's leader: its host, replica id and membership.
    fn leader_of(&self, shard: u64) -> Option<(usize, u64, ConfState)> {
        (0..HOSTS).filter(|h| self.up(*h)).find_map(|h| {
            let r = self.hosts[h].node.as_ref()?.replica(shard)?;
            (r.node.raft.state == StateRole::Leader)
                .then(|| (h, r.id, r.node.raft.prs().conf().to_conf_state()))
        })
    }

    /// members are the members of a shard as the replica that applied furthest knows them,
    /// each with the host it runs on (`None`: it does not run).
    pub(crate) fn members(&self, shard: u64) -> Vec<(u64, Option<usize>)> {
        let furthest = (0..HOSTS)
            .filter_map(|h| self.hosts[h].node.as_ref()?.replica(shard))
            .max_by_key(|r| r.applied);
        let Some(furthest) = furthest else {
            return Vec::new();
        };
        let cs = furthest.node.raft.prs().conf().to_conf_state();
        let mut ids: Vec<u64> = cs.voters.iter().chain(&cs.learners).copied().collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| {
                let h = self.host_of(shard, id).filter(|h| {
                    let r = self.hosts[*h].node.as_ref().and_then(|n| n.replica(shard));
                    r.is_some_and(|r| r.id == id)
                });
                (id, h)
            })
            .collect()
    }

    /// poll_changes moves every change under way on by a step, where it can.
    pub(super) fn poll_changes(&mut self) {
        let mut shards: Vec<u64> = self.changes.by_shard.keys().copied().collect();
        shards.sort_unstable();
        for shard in shards {
            if let Some(step) = self.changes.by_shard.remove(&shard) {
                if let Some(next) = self.step_change(shard, step) {
                    self.changes.by_shard.insert(shard, next);
                }
            }
        }
    }

    /// step_change takes one step of a shard's change, returning where it stands (`None`:
    /// done).
    fn step_change(&mut self, shard: u64, step: Step) -> Option<Step> {
        match step {
            Step::Proposed { mut reply, then } => {
                let took = match reply.try_recv() {
                    Err(TryRecvError::Empty) => return Some(Step::Proposed { reply, then }),
                    Ok(Ok(_)) => true,
                    Ok(Err(_)) | Err(TryRecvError::Closed) => false,
                };
                if took {
                    self.faults.conf_changed += 1;
                }
                match then {
                    Then::Nothing => None,
                    // Whether a failed removal took effect is unknown: the voter stays placed,
                    // a member or not.
                    Then::Clear { host, old } if took => Some(Step::Clearing { host, old }),
                    Then::Clear { .. } => None,
                    // Started either way: a replica its shard never added just waits.
                    Then::Join { host, id } => {
                        self.join(host, shard, id);
                        None
                    }
                }
            }
            Step::Clearing { host, old } => {
                let Some(node) = self.hosts[host].node.as_ref() else {
                    return Some(Step::Clearing { host, old });
                };
                if node.stopping.iter().any(|(s, _, _)| *s == shard) {
                    return Some(Step::Clearing { host, old });
                }
                // A removed replica stops by itself, with no one to wait for its apply
                // work: its data goes once the apply threads have nothing queued, so that
                // none of its late work lands in the new replica's files.
                if node.replica(shard).is_none() {
                    return match node.apply_queued() {
                        true => Some(Step::Clearing { host, old }),
                        false => Some(Step::Cleared { host, old }),
                    };
                }
                self.on_host(host, move |n, _| n.stop_replica(shard));
                Some(Step::Clearing { host, old })
            }
            Step::Cleared { host, old } => self.replace(shard, host, old),
        }
    }

    /// replace deletes the data of the removed replica `old` on `host` and adds a new
    /// replica there as non-voting.
    fn replace(&mut self, shard: u64, host: usize, old: u64) -> Option<Step> {
        let wait = Some(Step::Cleared { host, old });
        let Some(node) = self.hosts[host].node.as_ref() else {
            return wait;
        };
        if node.replica(shard).is_some() {
            // The host restarted in between and started the old replica again.
            return Some(Step::Clearing { host, old });
        }
        if !self.up(host) {
            return wait;
        }
        let Some((lh, _, _)) = self.leader_of(shard) else {
            return wait;
        };
        // A sync failure injected there crashes the host, which is no failure of the engine.
        let (checks, now, armed) = (self.checks.clone(), self.now, self.hosts[host].armed);
        self.on_host(host, move |n, _| {
            if let Some(e) = n.remove_data(shard).err().filter(|_| !armed) {
                checks.lock().violations.push(format!(
                    "host {host} could not remove shard {shard} at {now} ms: {e}"
                ));
            }
        });
        if self.hosts[host].node.is_none() {
            // The host crashed while it removed the data, which may still be there: when
            // it is back, the old replica is stopped (if it started again) and removed anew.
            return Some(Step::Clearing { host, old });
        }
        let last = self.changes.last_id.entry(shard).or_insert(3);
        *last += 1;
        let id = *last;
        let placed = self.placement.entry(shard).or_default();
        placed.retain(|(r, _)| *r != old);
        placed.push((id, host));
        let then = Then::Join { host, id };
        let addr = Some(format!("host-{host}"));
        self.propose_change(lh, shard, ConfChangeType::AddLearnerNode, id, addr, then);
        self.changes.by_shard.remove(&shard)
    }

    /// join starts the new replica `id` of `shard` on `host`, unless it runs already.
    fn join(&mut self, host: usize, shard: u64, id: u64) {
        let Some(node) = self.hosts[host].node.as_ref() else {
            return; // it starts when its host does
        };
        if node.replica(shard).is_some() {
            return;
        }
        let (checks, now) = (self.checks.clone(), self.now);
        self.on_host(host, move |n, _| {
            if let Err(e) = n.start_replica(shard, id, StartMode::Join) {
                checks.lock().violations.push(format!(
                    "host {host} could not start replica {id} of shard {shard} at {now} ms: {e}"
                ));
            }
        });
    }
}
