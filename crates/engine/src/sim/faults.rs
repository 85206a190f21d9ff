//! The faults the scheduler injects: crashes (and restarts from what the disk kept), failed
//! syncs, cut links, paused hosts and moved leadership; and healing once the faults stop.

use raft::StateRole;

use super::node::{Node, Runner};
use super::world::{placed_on, Event, World, HOSTS, SHARDS};
use crate::router::Cmd;

impl World {
    /// crash stops a host at once: what it did not sync is lost, what it sent stays sent.
    pub(crate) fn crash(&mut self, h: usize) {
        let slot = &mut self.hosts[h];
        slot.fs.crash();
        slot.armed = false;
        let Some(node) = slot.node.take() else {
            return;
        };
        let msgs = node.outbox.take();
        self.faults.refused += node.outbox.dropped();
        drop(node);
        self.faults.crashes += 1;
        self.send(h, msgs);
        let delay = self.rng.between(50, 400);
        self.at(delay, Event::Restart(h));
    }

    /// restart starts a crashed host again from what its disk kept.
    pub(super) fn restart(&mut self, h: usize) {
        if self.hosts[h].node.is_some() {
            return;
        }
        let slot = &mut self.hosts[h];
        slot.incarnation += 1;
        slot.paused_until = 0;
        slot.runner = Runner::spawn();
        slot.fs.resume();
        let (root, fs, checks) = (slot.root.clone(), slot.fs.clone(), self.checks.clone());
        let incarnation = slot.incarnation;
        let (placed, setup) = (placed_on(&self.placement, h, false), self.setup);
        match slot
            .runner
            .run(move || Node::start(h, &root, &fs, incarnation, placed, &checks, setup))
        {
            Ok(node) => slot.node = Some(node),
            Err(e) => self.checks.lock().violations.push(format!(
                "host {h} could not restart at {} ms: {e}",
                self.now
            )),
        }
        self.on_host(h, |_, _| {});
    }

    /// inject picks the next fault, while the fault phase lasts.
    pub(super) fn inject(&mut self) {
        if self.now >= self.fault_end {
            return;
        }
        let all_up = self.hosts.iter().all(|s| s.node.is_some());
        let h = self.rng.below(HOSTS as u64) as usize;
        match self.rng.below(8) {
            0 if all_up => self.crash(h),
            1 if all_up && self.now + 500 < self.fault_end => {
                self.faults.sync_failures += 1;
                self.hosts[h].armed = true;
                self.hosts[h].fs.fail_next_sync();
            }
            2 => {
                self.faults.partitions += 1;
                let mut links = Vec::new();
                for o in (0..HOSTS).filter(|o| *o != h) {
                    links.push((h, o));
                    links.push((o, h));
                }
                self.cut(links);
            }
            3 => {
                self.faults.partitions += 1;
                let o = (h + 1 + self.rng.below(HOSTS as u64 - 1) as usize) % HOSTS;
                self.cut(vec![(h, o)]);
            }
            6 if self.hosts[h].node.is_some() => self.restart_replica(h),
            7 => self.reconfigure(),
            4 if self.hosts[h].node.is_some() => {
                self.faults.pauses += 1;
                self.hosts[h].paused_until = self.now + self.rng.between(50, 600);
            }
            _ => self.transfer_leader(),
        }
        let next = self.rng.between(100, 400);
        self.at(next, Event::Fault);
    }

    fn cut(&mut self, links: Vec<(usize, usize)>) {
        self.cut.extend(links.iter().copied());
        let heal = self.rng.between(100, 800);
        self.at(heal, Event::Heal(links));
    }

    /// transfer_leader asks a shard's leader to hand over to another replica.
    fn transfer_leader(&mut self) {
        let (shard, replicas) = SHARDS[self.rng.below(SHARDS.len() as u64) as usize];
        let to = replicas[self.rng.below(replicas.len() as u64) as usize].0;
        for h in 0..HOSTS {
            let leads = self.hosts[h].node.as_ref().is_some_and(|n| {
                n.replica(shard)
                    .is_some_and(|r| r.node.raft.state == StateRole::Leader && r.id != to)
            });
            if leads && self.up(h) {
                self.faults.transfers += 1;
                let (reply, _) = tokio::sync::oneshot::channel();
                let cmd = Cmd::TransferLeader { shard, to, reply };
                self.on_host(h, move |n, _| n.router.send(shard, cmd));
                return;
            }
        }
    }

    /// heal_all mends every link and resumes paused hosts; crashed ones restart on schedule.
    pub(crate) fn heal_all(&mut self) {
        self.cut.clear();
        for s in &mut self.hosts {
            s.paused_until = s.paused_until.min(self.now);
        }
    }
}
