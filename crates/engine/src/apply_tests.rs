use super::*;

use parking_lot::{Mutex, RwLock};
use raft::eraftpb::Entry;

use crate::state_machine::StateMachine;

/// Seen records the indexes its state machine is handed.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<u64>>>);

impl StateMachine for Seen {
    fn update(&mut self, entries: &[SmEntry]) -> std::result::Result<Vec<ApplyResult>, SmError> {
        self.0.lock().extend(entries.iter().map(|e| e.index));
        Ok(vec![ApplyResult::default(); entries.len()])
    }
    fn query(&self, _: &[u8]) -> std::result::Result<Vec<u8>, SmError> {
        Ok(Vec::new())
    }
    fn save_snapshot(&self, _: &mut dyn std::io::Write) -> std::result::Result<(), SmError> {
        Ok(())
    }
    fn recover_from_snapshot(
        &mut self,
        _: u64,
        _: &mut dyn std::io::Read,
    ) -> std::result::Result<(), SmError> {
        Ok(())
    }
}

fn applier() -> (Applier, Receiver<ApplyTask>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _cmds) = crossbeam_channel::unbounded();
    let router = Arc::new(Router::new(vec![tx]));
    let (_tasks, rx) = crossbeam_channel::unbounded();
    (Applier::new(dir.path().into(), router, 0, None), rx, dir)
}

fn open(incarnation: u64, seen: &Seen) -> ApplyTask {
    ApplyTask::Open {
        shard: 1,
        incarnation,
        sm: Arc::new(RwLock::new(Box::new(seen.clone()))),
        applied: 0,
        applied_term: 0,
        snapshot_index: 0,
        sessions: Sessions::new(),
    }
}

fn entries(incarnation: u64, indexes: std::ops::RangeInclusive<u64>) -> ApplyTask {
    let entries = indexes
        .map(|index| Entry {
            index,
            term: 1,
            data: vec![1].into(),
            ..Default::default()
        })
        .collect();
    ApplyTask::Entries {
        shard: 1,
        incarnation,
        entries,
        waiters: Vec::new(),
    }
}

#[test]
fn a_close_of_an_earlier_start_leaves_the_later_one_running() {
    let (mut a, rx, _dir) = applier();
    let (first, second) = (Seen::default(), Seen::default());
    a.drain(open(1, &first), &rx);
    a.drain(open(2, &second), &rx);
    // The first start's Close was queued after the second start's Open.
    a.drain(
        ApplyTask::Close {
            shard: 1,
            incarnation: 1,
            done: None,
        },
        &rx,
    );
    a.drain(entries(2, 1..=3), &rx);
    assert_eq!(*second.0.lock(), vec![1, 2, 3]);
}

#[test]
fn entries_of_an_earlier_start_never_reach_a_later_one() {
    let (mut a, rx, _dir) = applier();
    let (first, second) = (Seen::default(), Seen::default());
    a.drain(open(1, &first), &rx);
    a.drain(entries(1, 1..=2), &rx);
    a.drain(open(2, &second), &rx);
    a.drain(entries(1, 3..=4), &rx);
    a.drain(entries(2, 3..=4), &rx);
    assert_eq!(*first.0.lock(), vec![1, 2]);
    assert_eq!(*second.0.lock(), vec![3, 4]);
}
