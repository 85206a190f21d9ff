//! Quiescence: idle shards stop ticking on every replica, and work wakes them.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// all_quiesced waits until every running replica of `shard` has quiesced.
async fn all_quiesced(c: &Cluster, shard: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut states = Vec::new();
        for n in c.nodes.iter() {
            let Some(h) = &n.host else { continue };
            states.push(h.status(shard).await.map(|s| s.quiesced).unwrap_or(false));
        }
        if states.iter().all(|q| *q) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "shard {shard} did not quiesce: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_shard_quiesces_and_a_proposal_wakes_it() {
    let c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    c.bootstrap(2, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "a", "1").await;
    all_quiesced(&c, 1).await;
    all_quiesced(&c, 2).await;
    for n in &c.nodes {
        assert_eq!(n.host().quiesced_replicas(), 2);
    }
    // Through a follower: it wakes, forwards to the leader, which wakes and replicates.
    let follower = (l + 1) % 3;
    let r = c.put(follower, 1, "a", "2").await;
    assert_eq!(r.data, b"1");
    for i in 0..3 {
        assert_eq!(c.get(i, 1, "a").await, "2");
    }
    // The other shard slept through it, and shard 1 goes quiet again.
    for n in &c.nodes {
        assert!(n.host().status(2).await.unwrap().quiesced);
    }
    all_quiesced(&c, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiesced_shard_whose_leader_died_elects_another_when_work_arrives() {
    let mut c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "a", "1").await;
    all_quiesced(&c, 1).await;
    c.stop(l);
    let follower = (l + 1) % 3;
    c.put(follower, 1, "a", "2").await;
    let nl = c.leader(1).await;
    assert_ne!(nl, l);
    for i in (0..3).filter(|i| *i != l) {
        assert_eq!(c.get(i, 1, "a").await, "2");
    }
}
