//! A host in its own process is killed with SIGKILL while it leads, at a chosen point of a
//! snapshot, or with a membership change on its way to a persistent state machine; nothing
//! acknowledged is lost, and it restarts from its disk in agreement with the others.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::child::*;
use common::recorder::{strictly_increasing, Book};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_leader_process_loses_no_acknowledged_write_and_restarts_from_disk() {
    let mut c = Cluster::new(2);
    let child_dir = c.tmp.path().join("child");
    // Reserve a port for the child process.
    let child_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let voters = vec![
        (rid(1, 0), c.nodes[0].addr.clone()),
        (rid(1, 1), c.nodes[1].addr.clone()),
        (rid(1, 2), child_addr.clone()),
    ];
    let mut child = spawn(&child_dir, &child_addr, &voters);
    c.bootstrap_with(1, &[0, 1], &voters);

    // Make the child process the leader.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = c.nodes[0].host().status(1).await.unwrap();
        if st.leader_id == rid(1, 2) {
            break;
        }
        if st.leader_id != 0 {
            let l = if st.leader_id == rid(1, 0) { 0 } else { 1 };
            let _ = c.nodes[l].host().transfer_leader(1, rid(1, 2)).await;
        }
        assert!(Instant::now() < deadline, "child never became leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Writes through the in-process hosts are forwarded to the child leader; kill it midway.
    let mut acked = Vec::new();
    for i in 0..200u32 {
        if i == 100 {
            child.kill().unwrap(); // SIGKILL
        }
        let k = format!("k{i}");
        c.put((i % 2) as usize, 1, &k, &i.to_string()).await;
        acked.push(k);
    }
    child.wait().unwrap();
    for (i, k) in acked.iter().enumerate() {
        assert_eq!(c.get(0, 1, k).await, i.to_string());
    }

    // Restart the child from its disk, then stop one in-process host: the remaining quorum
    // needs the restarted process, with its log intact, to commit anything.
    let mut child = spawn(&child_dir, &child_addr, &voters);
    c.stop(0);
    for i in 200..220u32 {
        c.put(1, 1, &format!("k{i}"), &i.to_string()).await;
    }
    for (i, k) in acked.iter().enumerate() {
        assert_eq!(c.get(1, 1, k).await, i.to_string());
    }
    drop(child.stdin.take());
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_between_saving_a_snapshot_and_recording_it_restarts_in_agreement() {
    let book = Book::default();
    let c = book.cluster(2);
    let child_dir = c.tmp.path().join("child");
    let addr = child_addr();
    let voters = child_voters(&c, &addr);
    let snap_every = ("HOST_PROCESS_SNAPSHOT_ENTRIES", "30");
    let failpoint = ("ZONGZI_FAILPOINTS", "snapshot-saved");
    let mut child = spawn_with(&child_dir, &addr, &voters, &[snap_every, failpoint]);
    c.bootstrap_with(1, &[0, 1], &voters);

    // The child stops at its first snapshot: the file is written, the log store does not
    // know of it yet. It is killed right there.
    let stderr = stderr_lines(&mut child);
    for i in 0..60u32 {
        c.put((i % 2) as usize, 1, &format!("a{i}"), "x").await;
    }
    await_failpoint(&stderr, "snapshot-saved");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let saved = std::fs::read_dir(child_dir.join("snapshots").join("1"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert!(saved > 0, "no snapshot file was left by the killed process");

    let mut child = spawn_with(&child_dir, &addr, &voters, &[snap_every]);
    for i in 0..60u32 {
        c.put((i % 2) as usize, 1, &format!("b{i}"), "x").await;
    }
    retry("read", || c.nodes[0].host().read_index(1, T)).await;
    let seen = book.seen(0, 1);
    assert!(strictly_increasing(&seen), "host 0 applied an entry twice");
    assert_eq!(count(&mut child), seen.len() as u64);
    drop(child.stdin.take());
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_state_machine_never_moves_past_a_membership_change_the_log_lacks() {
    let c = Cluster::new(2);
    let child_dir = c.tmp.path().join("child");
    let addr = child_addr();
    let voters = child_voters(&c, &addr);
    let persistent = ("HOST_PROCESS_PERSISTENT", "1");
    let failpoint = ("ZONGZI_FAILPOINTS", "membership-handed");
    let mut child = spawn_with(&child_dir, &addr, &voters, &[persistent, failpoint]);
    let stderr = stderr_lines(&mut child);
    c.bootstrap_with(1, &[0, 1], &voters);
    for i in 0..10u32 {
        c.put((i % 2) as usize, 1, &format!("a{i}"), "x").await;
    }
    // The child catches up first, so that what follows reaches it in one message.
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&mut child) < 10 {
        assert!(Instant::now() < deadline, "the child never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }

    // With the child cut off, the others commit a membership change and a write behind it;
    // then the child receives both at once, committed. The leader must be one of the others
    // (a follower passes a transfer on to the leader).
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.nodes[0].host().status(1).await.unwrap().leader_id == rid(1, 2) {
        let _ = c.nodes[0].host().transfer_leader(1, rid(1, 0)).await;
        assert!(Instant::now() < deadline, "the child kept the lead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let l = c.leader(1).await;
    for n in &c.nodes {
        let child = addr.clone();
        n.host()
            .set_link_filter(Some(Arc::new(move |to: &str| to != child)));
    }
    let learner = rid(1, 3);
    c.nodes[l]
        .host()
        .add_non_voting(1, learner, "127.0.0.1:9", T)
        .await
        .unwrap();
    c.put(l, 1, "b", "x").await;
    for n in &c.nodes {
        n.host().set_link_filter(None);
    }
    // The child's step worker stops as the change reaches the apply thread. The state
    // machine is given time to make the write behind it durable, if it was handed it.
    await_failpoint(&stderr, "membership-handed");
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut child = spawn_with(&child_dir, &addr, &voters, &[persistent]);
    let want = c.nodes[0].host().membership(1).await.unwrap();
    assert_eq!(want.non_voters, vec![learner]);
    let (voters, non_voters) = members(&mut child);
    assert_eq!((voters, non_voters), (want.voters, want.non_voters));
    drop(child.stdin.take());
    let _ = child.wait();
}
