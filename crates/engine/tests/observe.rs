//! What a host tells its owner: its metrics snapshot and its log records.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use parking_lot::Mutex;
use zongzi_engine::{Level, LogRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_writes_and_logs_carry_shard_and_replica() {
    let records: Arc<Mutex<Vec<LogRecord>>> = Default::default();
    let sink = records.clone();
    let c = Cluster::custom(
        3,
        Arc::new(move |i, cfg| {
            if i == 0 {
                let sink = sink.clone();
                cfg.log_sink = Some(Arc::new(move |batch| sink.lock().extend(batch)));
                cfg.log_level = Level::Info;
            }
        }),
        Arc::new(|_, _| Kv::boxed()),
    );
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "warm", "1").await;
    let before = c.nodes[l].host().metrics().await.unwrap();
    for i in 0..5 {
        c.put(l, 1, &format!("k{i}"), "v").await;
    }
    let after = c.nodes[l].host().metrics().await.unwrap();
    assert_eq!(after.proposals - before.proposals, 5);
    assert!(after.entries_committed >= before.entries_committed + 5);
    assert!(after.fsync_seconds.count > before.fsync_seconds.count);
    assert_eq!((after.replicas, after.apply_lag.count), (1, 1));
    assert_eq!(after.peers.len(), 2);
    assert!(after
        .peers
        .iter()
        .all(|p| p.frames_sent > 0 && p.bytes_received > 0));

    let deadline = Instant::now() + Duration::from_secs(10);
    let about = |source: &str, msg: &str| {
        records.lock().iter().any(|r| {
            r.source == source && r.msg.contains(msg) && r.shard == 1 && r.replica == rid(1, 0)
        })
    };
    while !(about("engine", "leader changed") && about("raft", "became")) {
        assert!(
            Instant::now() < deadline,
            "no election records: {:?}",
            records.lock()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(records.lock().iter().all(|r| r.level <= Level::Info));
    assert_eq!(c.nodes[0].host().log_records_dropped(), 0);
}
