//! The simulated network as a host's step worker sees it: messages go into an outbox, which
//! the simulation empties after every step and delivers (or not) on its own schedule.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use raft::eraftpb::Message;

use crate::network::Network;

/// Outbox collects what one host sends.
#[derive(Default)]
pub(crate) struct Outbox {
    msgs: Mutex<Vec<(u64, Message)>>,
    dropped: AtomicU64,
    /// Set once the machine crashed: nothing more leaves it.
    cut: AtomicBool,
}

impl Outbox {
    /// take empties the outbox.
    pub(crate) fn take(&self) -> Vec<(u64, Message)> {
        std::mem::take(&mut *self.msgs.lock())
    }

    /// cut keeps whatever the host sends from now on.
    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// dropped is how many received messages the host refused.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Network for Outbox {
    fn send(&self, shard: u64, msgs: Vec<Message>) {
        if self.cut.load(Ordering::SeqCst) {
            return;
        }
        self.msgs
            .lock()
            .extend(msgs.into_iter().map(|m| (shard, m)));
    }

    fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn set_address(&self, _shard: Option<u64>, _replica: u64, _addr: &str) -> bool {
        false // the simulation routes by its own placement table
    }
}
