//! Batches for state machines: what one drain of the apply queue hands a state machine.
//!
//! Entries of a shard that arrive in several tasks of one drain join one batch, so that the
//! state machine's answer covers exactly the entries finished together, and a snapshot taken
//! after the batch is filed under its last index.

use std::collections::HashMap;

use crate::error::Result;
use crate::replica::AppliedSink;
use crate::state_machine::{ApplyResult, SmEntry};

/// Prepared is one shard's share of a batch, ready for its state machine.
pub(crate) struct Prepared {
    pub(crate) shard: u64,
    /// The incarnation of the shard's replica the entries are for.
    pub(crate) incarnation: u64,
    pub(crate) batch: Vec<SmEntry>,
    pub(crate) last_index: u64,
    pub(crate) last_term: u64,
    pub(crate) waiters: Vec<(u64, AppliedSink)>,
    /// Entries of client sessions answered without the state machine (by index).
    pub(crate) answers: Vec<(u64, Result<ApplyResult>)>,
    /// Entries that repeat an earlier entry of the batch: (index, the earlier one's index).
    pub(crate) same_as: Vec<(u64, u64)>,
    /// Entries of sessions that go to the state machine: (index, client id, series).
    pub(crate) records: Vec<(u64, u64, u64)>,
}

/// Group collects the prepared batches of one drain of the queue, one per shard: entries of
/// a shard that arrive in several tasks join its batch, so that the state machine's answer
/// covers exactly the entries finished together.
#[derive(Default)]
pub(crate) struct Group {
    pub(crate) items: Vec<Prepared>,
    at: HashMap<u64, usize>,
}

impl Group {
    /// add appends a shard's prepared entries, joining them to its batch if it has one.
    pub(crate) fn add(&mut self, p: Prepared) {
        match self.at.get(&p.shard) {
            Some(&i) => self.items[i].absorb(p),
            None => {
                self.at.insert(p.shard, self.items.len());
                self.items.push(p);
            }
        }
    }

    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, Prepared> {
        self.at.clear();
        self.items.drain(..)
    }
}

impl Prepared {
    /// absorb appends a later task's entries of the same shard; anything at or below the
    /// batch's last index is already in it.
    fn absorb(&mut self, later: Prepared) {
        let last = self.last_index;
        if later.last_index <= last {
            self.waiters.extend(later.waiters);
            return;
        }
        self.batch
            .extend(later.batch.into_iter().filter(|e| e.index > last));
        self.answers.extend(later.answers);
        self.same_as.extend(later.same_as);
        self.records.extend(later.records);
        self.last_index = later.last_index;
        self.last_term = later.last_term;
        self.waiters.extend(later.waiters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(shard: u64, indexes: std::ops::RangeInclusive<u64>) -> Prepared {
        let batch: Vec<SmEntry> = indexes
            .map(|index| SmEntry {
                index,
                data: vec![1],
            })
            .collect();
        let last = batch.last().map(|e| e.index).unwrap_or(0);
        Prepared {
            shard,
            incarnation: 1,
            batch,
            last_index: last,
            last_term: 1,
            waiters: Vec::new(),
            answers: Vec::new(),
            same_as: Vec::new(),
            records: Vec::new(),
        }
    }

    #[test]
    fn tasks_of_one_shard_join_one_batch_and_overlaps_are_dropped() {
        let mut g = Group::default();
        g.add(prepared(1, 1..=3));
        g.add(prepared(2, 1..=2));
        g.add(prepared(1, 3..=5));
        g.add(prepared(1, 2..=2));
        let items: Vec<Prepared> = g.drain().collect();
        assert_eq!(items.len(), 2);
        let one: Vec<u64> = items[0].batch.iter().map(|e| e.index).collect();
        assert_eq!(
            (items[0].shard, one, items[0].last_index),
            (1, vec![1, 2, 3, 4, 5], 5)
        );
        assert_eq!(items[1].shard, 2);
        assert!(g.items.is_empty());
    }
}
