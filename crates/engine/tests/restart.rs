//! A replica stopped and started again on the same host is a new incarnation: nothing the
//! apply thread reports about the old one reaches it.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::recorder::Book;
use common::*;
use zongzi_engine::StartMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_while_its_apply_thread_is_behind_reads_only_what_it_applied() {
    let book = Book::default();
    // Each replica's own state machine is called (no batch updater), so a batch of the old
    // incarnation can only reach the old state machine.
    let b = book.clone();
    let c = Cluster::custom(
        3,
        Arc::new(|_, _| {}),
        Arc::new(move |s, i| b.recorder(i, s)),
    );
    c.bootstrap(1, &[0, 1, 2]);
    c.put(1, 1, "first", "x").await;
    // Host 0 must not lead: its restart should not need an election.
    if c.leader(1).await == 0 {
        c.nodes[0]
            .host()
            .transfer_leader(1, rid(1, 1))
            .await
            .unwrap();
        while c.leader(1).await == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Host 0's apply thread is held inside an update of the running incarnation.
    let old = book.gate(0, 1);
    old.store(true, Ordering::Relaxed);
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    join_all(keys.iter().map(|k| c.put(1, 1, k, "x")).collect()).await;
    let acked = 51;
    // Host 0 restarts its replica; the new incarnation's state machine is held too.
    let h = c.nodes[0].host();
    h.stop_replica(1).await.unwrap();
    let sm = book.recorder(0, 1);
    book.gate(0, 1).store(true, Ordering::Relaxed);
    h.start_replica(1, rid(1, 0), StartMode::Restart, sm)
        .unwrap();
    let read = h.read(1, b"", T);
    let release = async {
        // The old incarnation finishes first: what it reports must not count for the new
        // one, which has applied nothing yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
        old.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        book.gate(0, 1).store(false, Ordering::Relaxed);
    };
    let (seen, ()) = tokio::join!(read, release);
    // A linearizable read there must see every write acknowledged before it began.
    let seen: usize = String::from_utf8(seen.unwrap()).unwrap().parse().unwrap();
    assert!(seen >= acked, "a read saw {seen} of {acked} writes");
}
