//! Client sessions: a proposal sent again with the same session and series applies once,
//! after a timeout, a leader change, a snapshot install or a restart; an evicted session
//! applies nothing.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::recorder::{strictly_increasing, Book};
use common::*;
use zongzi_engine::{ApplyResult, Error, Session};

/// recording opens three hosts whose state machines record every index they apply (a
/// repeated proposal would show up twice), with `tweak` on top.
fn recording(book: &Book, tweak: fn(&mut zongzi_engine::HostConfig)) -> Cluster {
    let b = book.clone();
    let c = Cluster::custom(
        3,
        Arc::new(move |_, cfg| tweak(cfg)),
        Arc::new(move |shard, i| b.recorder(i, shard)),
    );
    c.bootstrap(1, &[0, 1, 2]);
    c
}

fn series(client_id: u64, series: u64, responded_to: u64) -> Session {
    Session {
        client_id,
        series,
        responded_to,
    }
}

/// send proposes series `s` of client 7 through host `i`, retrying while no leader serves.
async fn send(c: &Cluster, i: usize, s: Session) -> ApplyResult {
    retry("a session proposal", || {
        c.nodes[i].host().propose_in(1, s, b"x".to_vec(), T)
    })
    .await
}

/// converged waits until every replica applied everything committed, and returns what they
/// applied (the same on every one).
async fn converged(c: &Cluster, book: &Book) -> Vec<u64> {
    let commit = c.nodes[c.leader(1).await]
        .host()
        .status(1)
        .await
        .unwrap()
        .commit;
    for h in 0..3 {
        retry("catching up", || async {
            let st = c.nodes[h].host().status(1).await?;
            match st.applied >= commit {
                true => Ok(()),
                false => Err(Error::NotReady(format!(
                    "applied {} of {commit}",
                    st.applied
                ))),
            }
        })
        .await;
    }
    let seen: Vec<Vec<u64>> = (0..3).map(|h| book.seen(h, 1)).collect();
    assert!(
        seen.iter().all(|s| s == &seen[0]),
        "replicas differ: {seen:?}"
    );
    assert!(strictly_increasing(&seen[0]));
    seen[0].clone()
}

async fn register(c: &Cluster, i: usize, client: u64) {
    retry("register a session", || {
        c.nodes[i].host().register_session(1, client, T)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_sent_again_through_any_host_applies_once() {
    let book = Book::default();
    let c = recording(&book, |_| {});
    let l = c.leader(1).await;
    register(&c, l, 7).await;
    let first = send(&c, l, series(7, 1, 0)).await;
    for h in 0..3 {
        assert_eq!(
            send(&c, h, series(7, 1, 0)).await,
            first,
            "the retry through host {h}"
        );
    }
    let second = send(&c, (l + 1) % 3, series(7, 2, 1)).await;
    assert_ne!(second, first);
    // Two proposals applied, each once, the same on every replica.
    let seen = converged(&c, &book).await;
    assert_eq!(seen.len(), 2, "applied: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_timeout_applies_once() {
    let book = Book::default();
    let c = recording(&book, |_| {});
    let l = c.leader(1).await;
    register(&c, l, 7).await;
    // The proposing host's state machine is held: the proposal commits, but its caller
    // gives up waiting for the answer.
    let gate = book.gate(l, 1);
    gate.store(true, Ordering::Relaxed);
    let host = c.nodes[l].host();
    let first = host.propose_in(1, series(7, 1, 0), b"x".to_vec(), T);
    let waited = tokio::time::timeout(Duration::from_millis(300), first).await;
    assert!(waited.is_err(), "answered while the state machine was held");
    gate.store(false, Ordering::Relaxed);
    let answer = send(&c, l, series(7, 1, 0)).await;
    assert_eq!(send(&c, (l + 1) % 3, series(7, 1, 0)).await, answer);
    assert_eq!(converged(&c, &book).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_leader_change_applies_once() {
    let book = Book::default();
    let c = recording(&book, |_| {});
    let l = c.leader(1).await;
    register(&c, l, 7).await;
    let first = send(&c, l, series(7, 1, 0)).await;
    let next = (l + 1) % 3;
    retry("transfer leadership", || {
        c.nodes[l].host().transfer_leader(1, rid(1, next))
    })
    .await;
    while c.leader(1).await != next {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(send(&c, next, series(7, 1, 0)).await, first);
    assert_eq!(converged(&c, &book).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restored_from_a_snapshot_keeps_the_sessions() {
    let book = Book::default();
    let mut c = recording(&book, |cfg| {
        cfg.snapshot_entries = 10;
        cfg.compaction_overhead = 2;
    });
    let l = c.leader(1).await;
    let lagging = (l + 1) % 3;
    register(&c, l, 7).await;
    let first = send(&c, l, series(7, 1, 0)).await;
    c.stop(lagging);
    // Enough entries of another client that the log behind them is compacted away.
    register(&c, l, 8).await;
    for s in 1..=40 {
        send(&c, l, series(8, s, s - 1)).await;
    }
    for h in [l, (l + 2) % 3] {
        c.nodes[h].host().request_snapshot(1).await.unwrap();
    }
    c.restart(lagging);
    // The lagging host installs a snapshot, with the session table in it: the retry
    // through it answers the first result and applies nothing.
    assert_eq!(send(&c, lagging, series(7, 1, 0)).await, first);
    let seen = converged(&c, &book).await;
    assert_eq!(seen.len(), 41, "applied: {seen:?}");
    // And after a restart of every host, from snapshots and logs on disk.
    for h in 0..3 {
        c.stop(h);
    }
    for h in 0..3 {
        c.restart(h);
    }
    let l = c.leader(1).await;
    assert_eq!(send(&c, l, series(7, 1, 0)).await, first);
    assert_eq!(send(&c, l, series(8, 40, 39)).await.value, 41);
    assert_eq!(converged(&c, &book).await.len(), 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_session_applies_nothing() {
    let book = Book::default();
    let c = recording(&book, |cfg| cfg.max_sessions_per_shard = 2);
    let l = c.leader(1).await;
    for client in [1, 2] {
        register(&c, l, client).await;
    }
    send(&c, l, series(1, 1, 0)).await; // client 1 is used after 2
    register(&c, l, 3).await; // evicts client 2, the least recently used
    let e = c.nodes[l]
        .host()
        .propose_in(1, series(2, 1, 0), b"x".to_vec(), T)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ERR_SESSION_EXPIRED", "{e}");
    let e = c.nodes[l]
        .host()
        .propose_in(1, series(99, 1, 0), b"x".to_vec(), T)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ERR_SESSION_EXPIRED", "{e}");
    let bad = c.nodes[l]
        .host()
        .propose_in(1, series(0, 1, 0), b"x".to_vec(), T)
        .await;
    assert_eq!(bad.unwrap_err().code(), "ERR_INVALID_ARGUMENT");
    send(&c, l, series(3, 1, 0)).await;
    assert_eq!(converged(&c, &book).await.len(), 2);
}
