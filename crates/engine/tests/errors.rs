//! Bad input gets a clear error and changes nothing; failures stop only what failed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use zongzi_engine::{
    ApplyResult, Error, Event, Host, HostConfig, SmEntry, SmError, StartMode, StateMachine,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_rejected_with_typed_errors() {
    let c = Cluster::with(3, |cfg| cfg.max_proposal_bytes = 1024);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    let h = c.nodes[l].host();
    let e = h.propose(1, vec![0u8; 1025], T).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::PayloadTooLarge {
                size: 1025,
                limit: 1024
            }
        ),
        "{e}"
    );
    assert_eq!(e.code(), "ERR_PAYLOAD_TOO_LARGE");
    let e = h.propose(99, b"x=1".to_vec(), T).await.unwrap_err();
    assert!(matches!(e, Error::ShardNotFound(99)));
    assert!(matches!(
        h.read(99, b"x", T).await,
        Err(Error::ShardNotFound(99))
    ));
    assert!(matches!(
        h.stale_read(99, b"x"),
        Err(Error::ShardNotFound(99))
    ));
    let e = h
        .start_replica(1, rid(1, l), StartMode::Restart, Kv::boxed())
        .unwrap_err();
    assert!(matches!(e, Error::ShardExists(1)));
    let e = h
        .start_replica(2, 0, StartMode::Join, Kv::boxed())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    let e = h
        .start_replica(3, 5, StartMode::Restart, Kv::boxed())
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let e = h
        .start_replica(
            4,
            5,
            StartMode::Bootstrap(vec![(6, "127.0.0.1:1".into())]),
            Kv::boxed(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(matches!(h.remove_data(1), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        h.add_replica(1, 0, "127.0.0.1:1", T).await,
        Err(Error::InvalidArgument(_))
    ));
    // None of it changed anything.
    assert_eq!(h.stored_replicas().len(), 1);
    c.put(l, 1, "still", "fine").await;

    let dir = tempfile::tempdir().unwrap();
    let mut bad = HostConfig::new(CLUSTER, dir.path());
    bad.election_ticks = 1;
    assert!(matches!(Host::open(bad), Err(Error::InvalidArgument(_))));
}

/// isolated_leader returns a cluster of three whose leader (its index is returned) has lost
/// both followers.
async fn isolated_leader() -> (Cluster, usize) {
    let mut c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "a", "1").await;
    for i in (0..3).filter(|&i| i != l) {
        c.stop(i);
    }
    (c, l)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_a_quorum_fails_and_calls_after_close_fail_with_closed() {
    let (mut c, l) = isolated_leader().await;
    let e = c.nodes[l]
        .host()
        .propose(1, b"b=2".to_vec(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout | Error::NoLeader(_) | Error::Dropped(_) | Error::OutcomeUnknown(_)
        ),
        "{e}"
    );
    let h = c.nodes[l].host.take().unwrap();
    h.close();
    h.close(); // idempotent
    assert!(matches!(
        h.propose(1, b"c=3".to_vec(), T).await,
        Err(Error::Closed)
    ));
    assert!(matches!(h.status(1).await, Err(Error::Closed)));
    assert!(matches!(
        h.start_replica(2, 9, StartMode::Join, Kv::boxed()),
        Err(Error::Closed)
    ));
}

/// Failing fails on any entry that says "boom".
struct Failing(Kv);

impl StateMachine for Failing {
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        if entries.iter().any(|e| e.data == b"boom") {
            return Err(SmError("boom is not allowed".into()));
        }
        self.0.update(entries)
    }
    fn query(&self, q: &[u8]) -> Result<Vec<u8>, SmError> {
        self.0.query(q)
    }
    fn save_snapshot(&self, w: &mut dyn std::io::Write) -> Result<(), SmError> {
        self.0.save_snapshot(w)
    }
    fn recover_from_snapshot(
        &mut self,
        index: u64,
        r: &mut dyn std::io::Read,
    ) -> Result<(), SmError> {
        self.0.recover_from_snapshot(index, r)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_state_machine_stops_only_its_replica() {
    let c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let voters: Vec<(u64, String)> = (0..3)
        .map(|i| (rid(2, i), c.nodes[i].addr.clone()))
        .collect();
    for i in 0..3 {
        c.nodes[i]
            .host()
            .start_replica(
                2,
                rid(2, i),
                StartMode::Bootstrap(voters.clone()),
                Box::new(Failing(Kv::default())),
            )
            .unwrap();
    }
    let l = c.leader(2).await;
    c.put(l, 2, "ok", "1").await;
    let e = c.nodes[l]
        .host()
        .propose(2, b"boom".to_vec(), T)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::StateMachine(_)), "{e}");
    for n in &c.nodes {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while n.host().status(2).await.is_ok() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The event may reach the listener a moment after the replica stopped answering.
        let failed = |n: &Node| {
            n.events
                .lock()
                .iter()
                .any(|e| matches!(e, Event::ReplicaFailed { shard_id: 2, .. }))
        };
        while !failed(n) {
            assert!(
                std::time::Instant::now() < deadline,
                "no ReplicaFailed event"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Shard 1 on the same hosts is unaffected.
    let l1 = c.leader(1).await;
    c.put(l1, 1, "x", "y").await;
    assert_eq!(c.get((l1 + 1) % 3, 1, "x").await, "y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_made_before_the_first_election_waits_for_the_leader() {
    let c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    // No retry: the call itself waits until a leader is known.
    let r = c.nodes[1]
        .host()
        .propose(1, b"a=1".to_vec(), T)
        .await
        .unwrap();
    assert_eq!(r.value, 1);
    let v = c.nodes[2].host().read(1, b"a", T).await.unwrap();
    assert_eq!(v, b"1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_calls_fail_with_no_leader_at_their_deadline() {
    let c = Cluster::new(3);
    // Only host 0 starts its replica: no leader can be elected.
    let voters: Vec<(u64, String)> = (0..3)
        .map(|i| (rid(1, i), c.nodes[i].addr.clone()))
        .collect();
    c.bootstrap_with(1, &[0], &voters);
    let h = c.nodes[0].host();
    let e = h
        .propose(1, b"a=1".to_vec(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoLeader(1)), "{e}");
    let e = h
        .read(1, b"a", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoLeader(1)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_at_a_new_leader_completes_without_waiting_out_its_deadline() {
    // Each host reports the moment one of its replicas becomes leader.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tweak: Tweak = Arc::new(move |i, cfg| {
        let (tx, inner) = (tx.clone(), cfg.event_listener.clone());
        cfg.event_listener = Some(Arc::new(move |e: Event| {
            if let Event::LeaderChanged {
                replica_id,
                leader_id,
                ..
            } = &e
            {
                if replica_id == leader_id {
                    let _ = tx.send(i);
                }
            }
            if let Some(l) = &inner {
                l(e);
            }
        }));
    });
    let c = Cluster::custom(3, tweak, Arc::new(|_, _| Kv::boxed()));
    c.bootstrap(1, &[0, 1, 2]);
    let mut l = c.leader(1).await;
    c.put(l, 1, "a", "1").await;
    while rx.try_recv().is_ok() {}
    for round in 0..10 {
        let next = (l + 1) % 3;
        c.nodes[l]
            .host()
            .transfer_leader(1, rid(1, next))
            .await
            .unwrap();
        // Read the moment the new leader knows it leads, before it has committed in its
        // term (raft-rs answers no read index until then).
        let won = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let v = c.nodes[won]
            .host()
            .read(1, b"a", Duration::from_secs(2))
            .await;
        assert_eq!(v.unwrap(), b"1", "round {round}");
        l = won;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_pending_at_a_leader_that_steps_down_is_answered_at_once() {
    let (c, l) = isolated_leader().await;
    // The write cannot commit; the leader steps down once it sees no quorum (check quorum),
    // and the caller hears "outcome unknown" then, not at its 60 s deadline.
    let e = c.nodes[l]
        .host()
        .propose(1, b"b=2".to_vec(), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::OutcomeUnknown(_)), "{e}");
}
