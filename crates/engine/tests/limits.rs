//! Memory is a function of limits, not of offered load: proposals and reads past the
//! in-flight limits are refused at once with ERR_BUSY (nothing proposed), a place is held
//! until the entry is applied and its result taken, a follower whose state machine is behind
//! stops taking entries, a leader whose state machine is behind takes no new proposals, the
//! state machines of a host share an allowance, and a snapshot past its size limit is refused
//! by the follower.

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

/// most_applying proposes `chunks` × `size` writes of 100 bytes through host `via`, a chunk
/// at a time (a chunk's writes may be refused or time out), and returns the most bytes host
/// `at` had handed to its state machine and not applied, seen after each chunk.
async fn most_applying(c: &Cluster, via: usize, at: usize, chunks: usize, size: usize) -> u64 {
    let h = c.nodes[via].host();
    let mut most = 0;
    for _ in 0..chunks {
        let mut pending = Vec::new();
        for _ in 0..size {
            if let Ok(p) = h.propose_handle(1, vec![b'x'; 100], Duration::from_millis(300)) {
                pending.push(p);
            }
        }
        for p in pending {
            let _ = p.committed.await;
        }
        let st = c.nodes[at].host().status(1).await.unwrap();
        most = most.max(st.applying_bytes);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_state_machine_is_stuck_takes_no_new_proposals() {
    const LIMIT: u64 = 4096;
    let book = Book::default();
    let c = limited(&book, |cfg| cfg.max_applying_bytes = LIMIT);
    c.put(0, 1, "a", "1").await;
    let leader = c.leader(1).await;
    let gate = book.gate(leader, 1);
    gate.store(true, Ordering::Relaxed);
    // Proposals forwarded by a follower commit with the other follower's vote, and pile up
    // at the leader's state machine until it refuses them.
    let most = most_applying(&c, (leader + 1) % 3, leader, 20, 100).await;
    // Its own clients hear at once that it is busy.
    let local = c.nodes[leader].host().propose_handle(1, b"x".to_vec(), T);
    gate.store(false, Ordering::Relaxed);
    let e = local.unwrap_err();
    assert_eq!(e.code(), "ERR_BUSY", "{e}");
    // Past the allowance, by a chunk of forwarded proposals at most, far from 20 chunks.
    assert!(most > LIMIT, "only {most} bytes reached the leader");
    assert!(
        most <= LIMIT + 2 * 100 * 130,
        "{most} bytes handed to a stuck leader"
    );
    c.put(0, 1, "b", "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machines_of_a_host_together_have_an_allowance() {
    let book = Book::default();
    let c = limited(&book, |cfg| {
        cfg.max_applying_bytes = 1 << 20;
        cfg.max_applying_bytes_per_host = 4096;
    });
    c.put(0, 1, "a", "1").await;
    let leader = c.leader(1).await;
    let slow = (leader + 1) % 3;
    let gate = book.gate(slow, 1);
    gate.store(true, Ordering::Relaxed);
    // Chunks small enough for the healthy hosts to keep under the allowance.
    let most = most_applying(&c, leader, slow, 40, 20).await;
    let local = c.nodes[slow].host().propose_handle(1, b"x".to_vec(), T);
    let st = c.nodes[slow].host().status(1).await.unwrap();
    gate.store(false, Ordering::Relaxed);
    let e = local.map(|_| format!("accepted, with {st:?} (most {most})"));
    assert_eq!(e.unwrap_err().code(), "ERR_BUSY");
    // Far below the replica's own allowance: the host's stopped it.
    assert!(most > 4096, "only {most} bytes reached the stuck replica");
    assert!(
        most <= 3 * 4096 + 512,
        "{most} bytes handed over on one host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_whose_caller_gave_up_keeps_its_place_until_it_is_applied() {
    let book = Book::default();
    // A long election timeout: the leader keeps its term while its links are cut.
    let c = limited(&book, |cfg| {
        cfg.max_in_flight_per_shard = 4;
        cfg.election_ticks = 100;
    });
    c.put(0, 1, "a", "1").await;
    while c.leader(1).await != 0 {
        let _ = c.nodes[0].host().transfer_leader(1, rid(1, 0)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The leader's entries cannot commit: their callers give up while they are in Raft.
    let h = c.nodes[0].host();
    h.set_link_filter(Some(Arc::new(|_: &str| false)));
    let mut pending = Vec::new();
    for _ in 0..4 {
        pending.push(
            h.propose_handle(1, b"x".to_vec(), Duration::from_millis(100))
                .unwrap(),
        );
    }
    for p in pending {
        let e = p.applied.await.unwrap().unwrap_err();
        assert_eq!(e.code(), "ERR_TIMEOUT", "{e}");
    }
    let refused = h.propose_handle(1, b"x".to_vec(), T);
    h.set_link_filter(None);
    assert_eq!(refused.unwrap_err().code(), "ERR_BUSY");
    // Once they commit and apply, the places are free again.
    retry("a place once they are applied", || async {
        h.propose(1, b"y=1".to_vec(), T).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_past_the_in_flight_limits_are_refused_at_once_with_busy() {
    let book = Book::default();
    let c = limited(&book, |cfg| cfg.max_in_flight_per_shard = 2);
    c.put(0, 1, "a", "1").await;
    let gate = book.gate(0, 1);
    gate.store(true, Ordering::Relaxed);
    // A write host 0 has not applied: its reads wait for it.
    c.put(1, 1, "b", "1").await;
    let h = c.nodes[0].host();
    let mut waiting = vec![Box::pin(h.read_index(1, T)), Box::pin(h.read_index(1, T))];
    for r in waiting.iter_mut() {
        assert!(tokio::time::timeout(Duration::from_millis(50), r)
            .await
            .is_err());
    }
    let refused = h.read_index(1, T).await;
    gate.store(false, Ordering::Relaxed);
    assert_eq!(refused.unwrap_err().code(), "ERR_BUSY");
    for r in waiting {
        r.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_nobody_has_taken_yet_keep_their_places() {
    let book = Book::default();
    let c = limited(&book, |cfg| cfg.max_in_flight_per_shard = 2);
    c.put(0, 1, "a", "1").await;
    let h = c.nodes[0].host();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for tag in 1..=2 {
        h.propose_tagged(1, b"x".to_vec(), None, T, tag, &tx);
    }
    retry("both results", || async {
        match rx.len() {
            2 => Ok(()),
            n => Err(Error::NotReady(format!("{n} results"))),
        }
    })
    .await;
    h.propose_tagged(1, b"x".to_vec(), None, T, 3, &tx);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(rx.recv().await.unwrap());
    }
    assert!(got[..2].iter().all(|c| c.result.is_ok()), "{got:?}");
    let e = got[2].result.as_ref().unwrap_err();
    assert_eq!((got[2].tag, e.code()), (3, "ERR_BUSY"));
    drop(got);
    h.propose_tagged(1, b"x".to_vec(), None, T, 4, &tx);
    assert!(rx.recv().await.unwrap().result.is_ok());
}
