//! Memory is a function of limits, not of offered load: proposals past the in-flight limits
//! are refused at once with ERR_BUSY (nothing proposed), a follower whose state machine is
//! behind stops taking entries, and a snapshot past its size limit is refused by the follower.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::recorder::{strictly_increasing, Book};
use common::*;
use zongzi_engine::{Error, HostConfig};

fn limited(book: &Book, tweak: fn(&mut HostConfig)) -> Cluster {
    let b = book.clone();
    let c = Cluster::custom(
        3,
        Arc::new(move |_, cfg| tweak(cfg)),
        Arc::new(move |s, i| b.recorder(i, s)),
    );
    c.bootstrap(1, &[0, 1, 2]);
    c.bootstrap(2, &[0, 1, 2]);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_past_the_in_flight_limits_are_refused_at_once_with_busy() {
    let book = Book::default();
    let c = limited(&book, |cfg| {
        cfg.max_in_flight_per_shard = 4;
        cfg.max_in_flight = 6;
    });
    c.put(0, 1, "a", "1").await;
    c.put(0, 2, "a", "1").await;
    // Host 0's state machines hold every update: its proposals stay in flight.
    let gates = [book.gate(0, 1), book.gate(0, 2)];
    for g in &gates {
        g.store(true, Ordering::Relaxed);
    }
    let h = c.nodes[0].host();
    let mut pending = Vec::new();
    for _ in 0..4 {
        pending.push(h.propose_handle(1, b"x".to_vec(), T).unwrap());
    }
    let e = h.propose_handle(1, b"x".to_vec(), T).unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e}");
    assert_eq!(e.code(), "ERR_BUSY");
    for _ in 0..2 {
        pending.push(h.propose_handle(2, b"x".to_vec(), T).unwrap());
    }
    // Shard 2 has room, the host has not.
    let e = h.propose_handle(2, b"x".to_vec(), T).unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e}");
    // The other hosts are not affected.
    c.put(1, 2, "b", "1").await;
    for g in &gates {
        g.store(false, Ordering::Relaxed);
    }
    for p in pending {
        p.applied.await.unwrap().unwrap();
    }
    // The places are given back once the results are in.
    for _ in 0..4 {
        c.put(0, 1, "c", "1").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_a_snapshot_over_its_size_limit() {
    let book = Book::default();
    let mut c = limited(&book, |cfg| {
        cfg.snapshot_entries = 20;
        cfg.compaction_overhead = 0;
        cfg.max_snapshot_bytes = 64;
    });
    c.put(0, 1, "a", "1").await;
    c.stop(2);
    // Far past what host 2 holds, with the log compacted behind a snapshot of over 64 bytes
    // (the recorder writes 8 bytes per applied entry).
    for i in 0..60 {
        c.put(i % 2, 1, &format!("k{i}"), "x").await;
    }
    c.restart(2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let applied = book.seen(2, 1).len();
    assert!(
        applied < 20,
        "host 2 took a snapshot over its limit ({applied} entries)"
    );
    // The others serve on; host 2 is refused the snapshot, not stopped.
    c.put(0, 1, "b", "1").await;
    assert!(c.nodes[2].host().status(1).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_state_machine_is_stuck_stops_taking_entries() {
    const LIMIT: u64 = 4096;
    let book = Book::default();
    let c = limited(&book, |cfg| cfg.max_applying_bytes = LIMIT);
    c.put(0, 1, "a", "1").await;
    let leader = c.leader(1).await;
    let slow = (leader + 1) % 3;
    let gate = book.gate(slow, 1);
    gate.store(true, Ordering::Relaxed);
    // About 50 times the allowance commits through the leader and the other follower.
    let h = c.nodes[leader].host();
    let mut pending = Vec::new();
    for _ in 0..2000 {
        pending.push(h.propose_handle(1, vec![b'x'; 100], T).unwrap());
    }
    let mut most = 0;
    for (i, p) in pending.into_iter().enumerate() {
        p.applied.await.unwrap().unwrap();
        if i % 100 == 0 {
            let st = c.nodes[slow].host().status(1).await.unwrap();
            most = most.max(st.applying_bytes);
        }
    }
    let st = c.nodes[slow].host().status(1).await.unwrap();
    most = most.max(st.applying_bytes);
    // Once the state machine moves again (also before a failed assertion, or closing the
    // host would wait on it), the follower catches up.
    gate.store(false, Ordering::Relaxed);
    // At most the allowance plus one step's hand-overs: raft-rs's Ready and the commits
    // learned on persisting it, each at most the allowance and one entry.
    assert!(
        most <= 3 * LIMIT + 512,
        "{most} bytes handed to a stuck state machine"
    );
    assert!(most > 0);
    let target = h.status(1).await.unwrap().applied;
    retry("the follower catching up", || async {
        let st = c.nodes[slow].host().status(1).await?;
        match st.applied >= target && st.applying_bytes == 0 {
            true => Ok(()),
            false => Err(Error::NotReady(format!(
                "applied {} of {target}",
                st.applied
            ))),
        }
    })
    .await;
    assert!(strictly_increasing(&book.seen(slow, 1)));
}
