//! Multi-host scenarios over real loopback TCP and real disks.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use zongzi_engine::{Event, StartMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_elect_a_leader_and_commit() {
    let c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    let r = c.put(l, 1, "a", "1").await;
    assert_eq!(r.value, 1);
    let r = c.put((l + 1) % 3, 1, "a", "2").await; // through a follower
    assert_eq!(r.data, b"1");
    for i in 0..3 {
        assert_eq!(c.get(i, 1, "a").await, "2");
    }
    let idx = c.nodes[l]
        .host()
        .commit(1, b"b=3".to_vec(), T)
        .await
        .unwrap();
    assert!(idx > 1);
    let ev = c.nodes[l].events.lock().clone();
    assert!(ev.iter().any(
        |e| matches!(e, Event::LeaderChanged { shard_id: 1, leader_id, .. } if *leader_id != 0)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_and_loses_no_acknowledged_write() {
    let mut c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    for i in 0..50 {
        c.put(l, 1, &format!("k{i}"), &i.to_string()).await;
    }
    c.stop(l);
    let survivor = (l + 1) % 3;
    for i in 50..100 {
        c.put(survivor, 1, &format!("k{i}"), &i.to_string()).await;
    }
    let nl = c.leader(1).await;
    assert_ne!(nl, l);
    for i in 0..100 {
        assert_eq!(c.get(survivor, 1, &format!("k{i}")).await, i.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_host_recovers_its_replicas_and_their_state() {
    let mut c = Cluster::new(3);
    for shard in 1..=3 {
        c.bootstrap(shard, &[0, 1, 2]);
    }
    for shard in 1..=3 {
        let l = c.leader(shard).await;
        for i in 0..20 {
            c.put(l, shard, &format!("k{i}"), &format!("{shard}-{i}"))
                .await;
        }
    }
    // Restart every host, one after another, so each one must come back from its own disk.
    for h in 0..3 {
        c.restart(h);
    }
    for shard in 1..=3 {
        c.leader(shard).await;
        for h in 0..3 {
            assert_eq!(c.get(h, shard, "k19").await, format!("{shard}-19"));
            let n = c.nodes[h].host().stale_read(shard, b"#len").unwrap();
            assert_eq!(n, b"20");
        }
    }
    // And the whole cluster at once.
    for h in 0..3 {
        c.stop(h);
    }
    for h in 0..3 {
        c.restart(h);
    }
    let l = c.leader(2).await;
    c.put(l, 2, "after", "restart").await;
    assert_eq!(c.get((l + 1) % 3, 2, "k5").await, "2-5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let mut c = Cluster::with(3, |cfg| {
        cfg.snapshot_entries = 50;
        cfg.compaction_overhead = 5;
    });
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    let lagging = (l + 1) % 3;
    c.stop(lagging);
    let writer = (l + 2) % 3;
    for i in 0..300 {
        c.put(writer, 1, &format!("k{i}"), &i.to_string()).await;
    }
    // Explicit snapshots on the two live hosts, so the log is certainly compacted.
    for h in [l, writer] {
        c.nodes[h].host().request_snapshot(1).await.unwrap();
    }
    c.restart(lagging);
    for i in [0, 150, 299] {
        assert_eq!(c.get(lagging, 1, &format!("k{i}")).await, i.to_string());
    }
    let st = c.nodes[lagging].host().status(1).await.unwrap();
    assert!(st.applied >= 300, "applied {}", st.applied);
    // The lagging host received a snapshot file.
    let snaps = std::fs::read_dir(c.nodes[lagging].dir.join("snapshots/1"))
        .unwrap()
        .count();
    assert!(snaps >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_promoted_and_removed_including_non_voting_ones() {
    let c = Cluster::new(5);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    for i in 0..10 {
        c.put(l, 1, &format!("k{i}"), "v").await;
    }
    let leader = c.nodes[l].host();
    // A non-voting member on host 3.
    let m = leader
        .add_non_voting(1, rid(1, 3), &c.nodes[3].addr, T)
        .await
        .unwrap();
    assert!(m.non_voters.contains(&rid(1, 3)));
    c.nodes[3]
        .host()
        .start_replica(1, rid(1, 3), StartMode::Join, Kv::boxed())
        .unwrap();
    // It serves linearizable reads and its writes are forwarded.
    assert_eq!(c.get(3, 1, "k9").await, "v");
    c.put(3, 1, "from-learner", "x").await;
    assert_eq!(c.get(0, 1, "from-learner").await, "x");
    // Promote it.
    let m = leader.promote(1, rid(1, 3), T).await.unwrap();
    assert!(m.voters.contains(&rid(1, 3)) && !m.non_voters.contains(&rid(1, 3)));
    // A voter added directly on host 4.
    let m = leader
        .add_replica(1, rid(1, 4), &c.nodes[4].addr, T)
        .await
        .unwrap();
    assert_eq!(m.voters.len(), 5);
    c.nodes[4]
        .host()
        .start_replica(1, rid(1, 4), StartMode::Join, Kv::boxed())
        .unwrap();
    assert_eq!(c.get(4, 1, "from-learner").await, "x");
    // Remove a follower that is not the leader.
    let victim = (0..3).find(|&i| i != l).unwrap();
    let m = leader.remove_replica(1, rid(1, victim), T).await.unwrap();
    assert!(!m.voters.contains(&rid(1, victim)));
    // After a barrier, another member sees the same membership.
    c.nodes[4].host().read_index(1, T).await.unwrap();
    let membership = c.nodes[4].host().membership(1).await.unwrap();
    assert_eq!(membership.voters.len(), 4);
    // The removed replica is told and stops; the shard keeps serving.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.nodes[victim].host().status(1).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "removed replica still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(c.nodes[victim]
        .events
        .lock()
        .iter()
        .any(|e| matches!(e, Event::ReplicaRemoved { shard_id: 1, .. })));
    c.put(4, 1, "after-remove", "y").await;
    assert_eq!(c.get(3, 1, "after-remove").await, "y");
    // Its data can then be deleted.
    c.nodes[victim].host().remove_data(1).unwrap();
    assert!(c.nodes[victim].host().stored_replicas().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_index_read_after_a_leader_change_sees_every_acknowledged_write() {
    let c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    for i in 0..30 {
        c.put(l, 1, "counter", &i.to_string()).await;
    }
    let target = (l + 1) % 3;
    c.nodes[l]
        .host()
        .transfer_leader(1, rid(1, target))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.leader(1).await != target {
        assert!(
            std::time::Instant::now() < deadline,
            "transfer did not happen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..3 {
        assert_eq!(c.get(i, 1, "counter").await, "29");
    }
    c.put(l, 1, "counter", "30").await;
    for i in 0..3 {
        assert_eq!(c.get(i, 1, "counter").await, "30");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_majority_cannot_commit() {
    let c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "before", "1").await;
    // Cut the leader off in both directions.
    let leader_addr = c.nodes[l].addr.clone();
    let others: Vec<String> = (0..3)
        .filter(|&i| i != l)
        .map(|i| c.nodes[i].addr.clone())
        .collect();
    c.nodes[l]
        .host()
        .set_link_filter(Some(Arc::new(move |to: &str| {
            !others.contains(&to.to_string())
        })));
    for i in (0..3).filter(|&i| i != l) {
        let a = leader_addr.clone();
        c.nodes[i]
            .host()
            .set_link_filter(Some(Arc::new(move |to: &str| to != a)));
    }
    // A write on the isolated side never commits.
    let res = c.nodes[l]
        .host()
        .propose(1, b"lost=1".to_vec(), Duration::from_millis(1500))
        .await;
    assert!(res.is_err(), "isolated leader committed: {res:?}");
    // The majority elects a leader and keeps going.
    let majority = (l + 1) % 3;
    c.put(majority, 1, "during", "2").await;
    assert_eq!(c.get(majority, 1, "lost").await, "");
    // Heal: the old leader catches up and its lost write never appears.
    for n in &c.nodes {
        n.host().set_link_filter(None);
    }
    assert_eq!(c.get(l, 1, "during").await, "2");
    assert_eq!(c.get(l, 1, "lost").await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_and_twenty_shards_run_on_three_hosts() {
    let c = Cluster::with(3, |cfg| cfg.tick_ms = 20);
    let shards: Vec<u64> = (1..=120).collect();
    for &s in &shards {
        c.bootstrap(s, &[0, 1, 2]);
    }
    let mut tasks = Vec::new();
    let c = Arc::new(c);
    for &s in &shards {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let l = c.leader(s).await;
            c.put(l, s, "shard", &s.to_string()).await;
            c.get((l + 1) % 3, s, "shard").await
        }));
    }
    for (s, t) in shards.iter().zip(tasks) {
        assert_eq!(t.await.unwrap(), s.to_string());
    }
    assert_eq!(c.nodes[0].host().running_shards().len(), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_linearizable_reads_on_every_host_all_complete() {
    let c = Arc::new(Cluster::new(3));
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "k", "v").await;
    // Every host's first read request of a worker carries the same local sequence number;
    // the leader must still tell them apart.
    for _ in 0..5 {
        let reads = (0..3).map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.nodes[i].host().read(1, b"k", T).await })
        });
        for r in reads.collect::<Vec<_>>() {
            assert_eq!(r.await.unwrap().unwrap(), b"v");
        }
    }
}
