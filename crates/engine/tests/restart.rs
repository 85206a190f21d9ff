//! A replica stopped and started again on the same host is a new incarnation: its stop waits
//! for what the old one was handed, and nothing the apply thread reports about the old one
//! reaches the new one.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::recorder::Book;
use common::*;
use zongzi_engine::{Event, StartMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_while_its_apply_thread_is_behind_reads_only_what_it_applied() {
    let book = Book::default();
    // Each replica's own state machine is called (no batch updater), so a batch of the old
    // incarnation can only reach the old state machine.
    let c = book.cluster(3);
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
    // Host 0 stops its replica: the stop completes only once the old incarnation's state
    // machine has finished what it was handed.
    let h = c.nodes[0].host();
    let release_old = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        old.store(false, Ordering::Relaxed);
    };
    let (r, ()) = tokio::join!(h.stop_replica(1), release_old);
    r.unwrap();
    // It restarts; the new incarnation's state machine is held too.
    let sm = book.recorder(0, 1);
    book.gate(0, 1).store(true, Ordering::Relaxed);
    h.start_replica(1, rid(1, 0), StartMode::Restart, sm)
        .unwrap();
    let read = h.read(1, b"", T);
    let release = async {
        // What the new incarnation has not applied yet, no read may count as applied.
        tokio::time::sleep(Duration::from_millis(200)).await;
        book.gate(0, 1).store(false, Ordering::Relaxed);
    };
    let (seen, ()) = tokio::join!(read, release);
    // A linearizable read there must see every write acknowledged before it began.
    let seen: usize = String::from_utf8(seen.unwrap()).unwrap().parse().unwrap();
    assert!(seen >= acked, "a read saw {seen} of {acked} writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_restarts_after_a_member_was_added_promoted_and_removed() {
    let mut c = Cluster::new(4);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "a", "1").await;
    let leader = c.nodes[l].host();
    leader
        .add_non_voting(1, rid(1, 3), &c.nodes[3].addr, T)
        .await
        .unwrap();
    c.nodes[3]
        .host()
        .start_replica(1, rid(1, 3), StartMode::Join, Kv::boxed())
        .unwrap();
    assert_eq!(c.get(3, 1, "a").await, "1");
    leader.promote(1, rid(1, 3), T).await.unwrap();
    let victim = (0..3).find(|&i| i != l).unwrap();
    leader.remove_replica(1, rid(1, victim), T).await.unwrap();
    c.put(l, 1, "b", "2").await;
    // Every remaining host restarts from disk and replays the membership changes from its
    // log onto the membership as it stood at its applied index.
    let members: Vec<usize> = (0..4).filter(|&i| i != victim).collect();
    for &i in &members {
        c.restart(i);
    }
    c.put(members[0], 1, "c", "3").await;
    for &i in &members {
        assert_eq!(c.get(i, 1, "c").await, "3", "host {i}");
        let m = c.nodes[i].host().membership(1).await.unwrap();
        assert_eq!(m.voters.len(), 3, "host {i}: {m:?}");
        assert!(m.voters.contains(&rid(1, 3)) && !m.voters.contains(&rid(1, victim)));
        let failed = c.nodes[i]
            .events
            .lock()
            .iter()
            .any(|e| matches!(e, Event::HostFailed { .. }));
        assert!(!failed, "host {i} failed on restart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_replica_keeps_its_data_until_its_apply_work_is_done() {
    let book = Book::default();
    let c = book.cluster(3);
    c.bootstrap(1, &[0, 1, 2]);
    c.put(0, 1, "first", "x").await;
    let l = c.leader(1).await;
    let victim = (l + 1) % 3;
    // The victim's state machine holds its updates: entries wait on its apply thread.
    let gate = book.gate(victim, 1);
    gate.store(true, Ordering::Relaxed);
    for i in 0..20 {
        c.put(l, 1, &format!("k{i}"), "x").await;
    }
    c.nodes[l]
        .host()
        .remove_replica(1, rid(1, victim), T)
        .await
        .unwrap();
    let h = c.nodes[victim].host();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.status(1).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Removed, with entries still on their way to its state machine: neither its data nor a
    // new start of the shard may go ahead yet.
    let removed = h.remove_data(1);
    let started = h.start_replica(1, rid(1, victim), StartMode::Restart, book.recorder(9, 1));
    gate.store(false, Ordering::Relaxed);
    assert_eq!(removed.unwrap_err().code(), "ERR_BUSY");
    assert_eq!(started.unwrap_err().code(), "ERR_BUSY");
    retry("the data once the apply work is done", || async {
        h.remove_data(1)
    })
    .await;
    assert!(h.stored_replicas().is_empty());
}
