//! Replicas stopped and started again on their own while their host runs on, as a host
//! controller does: the stop completes once the apply thread is done with the old start,
//! and only then does the new start run, as a new incarnation.

use super::world::{Event, World, HOSTS};
use crate::config::StartMode;

impl World {
    /// restart_replica stops one replica of host `h`; it starts again once stopped.
    pub(super) fn restart_replica(&mut self, h: usize) {
        let Some(node) = self.hosts[h].node.as_ref() else {
            return;
        };
        let mut shards: Vec<u64> = node.replicas().map(|(s, _)| *s).collect();
        shards.sort_unstable();
        shards.retain(|s| !node.stopping.iter().any(|(t, _, _)| t == s));
        shards.retain(|s| !self.changes.claims(h, *s));
        if shards.is_empty() {
            return;
        }
        let shard = shards[self.rng.below(shards.len() as u64) as usize];
        self.faults.replica_restarts += 1;
        self.on_host(h, move |n, _| n.stop_replica(shard));
    }

    /// poll_stops starts again, a little later, the replicas whose stop has completed.
    pub(super) fn poll_stops(&mut self) {
        for h in 0..HOSTS {
            let Some(node) = self.hosts[h].node.as_mut() else {
                continue;
            };
            for shard in node.stopped() {
                if self.changes.claims(h, shard) {
                    self.changes.stopped(h, shard);
                    continue;
                }
                let delay = self.rng.between(0, 100);
                self.at(delay, Event::StartReplica(h, shard));
            }
        }
    }

    /// start_replica starts a stopped replica of `shard` on `h` again from its data, unless
    /// it runs already (its host restarted meanwhile) or is gone from the shard.
    pub(super) fn start_replica(&mut self, h: usize, shard: u64) {
        let Some(id) = self.host_of_shard(h, shard) else {
            return;
        };
        let Some(node) = self.hosts[h].node.as_ref() else {
            return;
        };
        if node.replica(shard).is_some() {
            return;
        }
        let now = self.now;
        let checks = self.checks.clone();
        self.on_host(h, move |n, _| {
            if let Err(e) = n.start_replica(shard, id, StartMode::Restart) {
                checks.lock().violations.push(format!(
                    "host {h} could not start shard {shard} again at {now} ms: {e}"
                ));
            }
        });
    }

    /// host_of_shard is the replica of `shard` placed on host `h`.
    pub(super) fn host_of_shard(&self, h: usize, shard: u64) -> Option<u64> {
        self.placement
            .get(&shard)?
            .iter()
            .find(|(_, o)| *o == h)
            .map(|(r, _)| *r)
    }
}
