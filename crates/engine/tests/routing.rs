//! Messages reach only the replica they are addressed to, and replica ids may repeat across
//! shards.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use zongzi_engine::{Event, StartMode, HEADER_LEN, MAGIC_MESSAGES};

/// frame_of wraps one Raft message for `shard` in a frame from an unnamed sender.
fn frame_of(shard: u64, m: &Message) -> Vec<u8> {
    let body = m.write_to_bytes().unwrap();
    let mut p = 0u16.to_le_bytes().to_vec();
    p.extend_from_slice(&shard.to_le_bytes());
    p.extend_from_slice(&(body.len() as u32).to_le_bytes());
    p.extend_from_slice(&body);
    let mut f = Vec::with_capacity(HEADER_LEN + p.len());
    f.extend_from_slice(&MAGIC_MESSAGES.to_le_bytes());
    f.extend_from_slice(&CLUSTER.to_le_bytes());
    f.extend_from_slice(&(p.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    f.extend_from_slice(&p);
    f
}

fn failures(c: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    for (i, n) in c.nodes.iter().enumerate() {
        for e in n.events.lock().iter() {
            if matches!(e, Event::ReplicaFailed { .. } | Event::HostFailed { .. }) {
                out.push(format!("host {i}: {e:?}"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_another_replica_or_beyond_the_log_are_dropped_and_counted() {
    let c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "a", "1").await;
    let f = (l + 1) % 3;
    let st = c.nodes[f].host().status(1).await.unwrap();
    let heartbeat = |to: u64, commit: u64| {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.from = st.leader_id;
        m.to = to;
        m.term = st.term;
        m.commit = commit;
        m
    };
    let forged = [
        heartbeat(rid(1, l), 1), // the leader's id, sent to a follower's host
        heartbeat(st.replica_id, 1_000_000), // commits far beyond the follower's log
    ];
    let before = c.nodes[f].host().dropped_messages();
    let addr = c.nodes[f].addr.clone();
    for m in &forged {
        let bytes = frame_of(1, m);
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(&bytes).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        })
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.nodes[f].host().dropped_messages() < before + 2 {
        assert!(
            Instant::now() < deadline,
            "forged messages were not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The follower still applies and serves.
    c.put(f, 1, "a", "2").await;
    assert_eq!(c.get(f, 1, "a").await, "2");
    assert_eq!(failures(&c), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_ids_repeat_across_shards_under_load_and_leader_transfers() {
    let c = Arc::new(Cluster::new(3));
    // Shard 1: ids 1, 2, 3 on hosts 0, 1, 2. Shard 2: the same ids on hosts 1, 2, 0.
    let place = |shard: u64, id: u64| ((id - 1 + shard - 1) % 3) as usize;
    for shard in [1u64, 2] {
        let voters: Vec<(u64, String)> = (1..=3)
            .map(|id| (id, c.nodes[place(shard, id)].addr.clone()))
            .collect();
        for id in 1..=3 {
            c.nodes[place(shard, id)]
                .host()
                .start_replica(shard, id, StartMode::Bootstrap(voters.clone()), Kv::boxed())
                .unwrap();
        }
    }
    // Writers run for 5 s while leadership moves every 300 ms.
    let until = Instant::now() + Duration::from_secs(5);
    let (c2, transfers) = (c.clone(), Arc::new(AtomicU64::new(0)));
    let moved = transfers.clone();
    let mover = tokio::spawn(async move {
        while Instant::now() < until {
            let n = moved.fetch_add(1, Ordering::Relaxed);
            for shard in [1u64, 2] {
                let target = 1 + (n + shard) % 3;
                for node in &c2.nodes {
                    let _ = node.host().transfer_leader(shard, target).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let written = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let mut writers = Vec::new();
    for w in 0..24u64 {
        let (c, written) = (c.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            let shard = 1 + w % 2;
            let mut i = 0;
            while Instant::now() < until {
                c.put((w % 3) as usize, shard, &format!("w{w}-{i}"), "x")
                    .await;
                written[(shard - 1) as usize].fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    mover.await.unwrap();
    assert!(transfers.load(Ordering::Relaxed) >= 10);
    assert_eq!(failures(&c), Vec::<String>::new());
    for shard in [1u64, 2] {
        let n = written[(shard - 1) as usize]
            .load(Ordering::Relaxed)
            .to_string();
        for i in 0..3 {
            assert_eq!(c.get(i, shard, "#len").await, n, "host {i} shard {shard}");
        }
    }
}
