//! The transport refuses foreign and malformed frames and keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use zongzi_engine::{HEADER_LEN, MAGIC_MESSAGES, MAGIC_SNAPSHOT};

fn frame(magic: u32, cluster: u64, len: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HEADER_LEN + payload.len());
    f.extend_from_slice(&magic.to_le_bytes());
    f.extend_from_slice(&cluster.to_le_bytes());
    f.extend_from_slice(&len.to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// closed_by_peer sends bytes and reports whether the host then closed the connection.
fn closed_by_peer(addr: &str, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut buf = [0u8; 1];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_malformed_and_oversized_frames_are_refused_and_the_host_keeps_serving() {
    let c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "a", "1").await;
    let target = c.nodes[l].addr.clone();
    // An empty sender address and no messages: well formed.
    let valid_payload = 0u16.to_le_bytes().to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "another cluster",
            frame(
                MAGIC_MESSAGES,
                CLUSTER + 1,
                valid_payload.len() as u32,
                &valid_payload,
            ),
        ),
        // Claims 4 GiB: refused from the header alone, nothing of that size is allocated.
        (
            "oversized length",
            frame(MAGIC_MESSAGES, CLUSTER, u32::MAX, b""),
        ),
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("bad checksum", {
            let mut f = frame(MAGIC_MESSAGES, CLUSTER, 4, b"abcd");
            f[HEADER_LEN] ^= 0xff;
            f
        }),
        ("undecodable message", {
            let mut p = valid_payload.clone();
            p.extend_from_slice(&1u64.to_le_bytes());
            p.extend_from_slice(&3u32.to_le_bytes());
            p.extend_from_slice(&[0xff, 0xff, 0xff]);
            frame(MAGIC_MESSAGES, CLUSTER, p.len() as u32, &p)
        }),
        // A frame layout of a later build: refused by its version (the log says which).
        (
            "a newer transport version",
            frame(
                u32::from_le_bytes(*b"ZZM9"),
                CLUSTER,
                valid_payload.len() as u32,
                &valid_payload,
            ),
        ),
        ("snapshot stream without a snapshot", {
            let p = [1u8; 8];
            frame(MAGIC_SNAPSHOT, CLUSTER, 8, &p)
        }),
    ];
    for (name, bytes) in &cases {
        let addr = target.clone();
        let bytes = bytes.clone();
        let closed = tokio::task::spawn_blocking(move || closed_by_peer(&addr, &bytes))
            .await
            .unwrap();
        assert!(closed, "{name}: connection was not dropped");
        // The host still serves reads and writes after each bad frame.
        c.put(l, 1, "a", name).await;
        assert_eq!(c.get(l, 1, "a").await, *name);
    }
    // A well-formed empty frame of our own cluster is accepted: the connection stays open.
    let addr = target.clone();
    let ok = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(&frame(MAGIC_MESSAGES, CLUSTER, 2, &[0, 0])).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut buf = [0u8; 1];
        matches!(s.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
    })
    .await
    .unwrap();
    assert!(ok, "a valid frame closed the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_raft_refuses_leaves_no_file_behind() {
    use protobuf::Message as _;
    use raft::eraftpb::{Message, MessageType};
    let c = Cluster::new(3);
    c.bootstrap(1, &[0, 1, 2]);
    let l = c.leader(1).await;
    for i in 0..5 {
        c.put(l, 1, "a", &i.to_string()).await;
    }
    let f = (l + 1) % 3;
    // A well-formed snapshot stream from an old term, for an index the follower has
    // committed: Raft refuses it, so its data must not become the follower's snapshot.
    let mut msg = Message::default();
    msg.set_msg_type(MessageType::MsgSnapshot);
    msg.to = rid(1, f);
    msg.from = rid(1, l);
    msg.term = 1;
    let meta = msg.mut_snapshot().mut_metadata();
    meta.index = 3;
    meta.term = 1;
    meta.mut_conf_state().voters = vec![rid(1, f)];
    let mut payload = 1u64.to_le_bytes().to_vec();
    msg.write_to_vec(&mut payload).unwrap();
    let data = b"forged".to_vec();
    let mut stream = frame(MAGIC_SNAPSHOT, CLUSTER, payload.len() as u32, &payload);
    stream.extend_from_slice(&(data.len() as u32).to_le_bytes());
    stream.extend_from_slice(&crc32fast::hash(&data).to_le_bytes());
    stream.extend_from_slice(&data);
    stream.extend_from_slice(&[0u8; 8]);
    let addr = c.nodes[f].addr.clone();
    let acked = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&stream).unwrap();
        let mut ack = [0u8; 1];
        s.read_exact(&mut ack).is_ok()
    })
    .await
    .unwrap();
    assert!(acked, "the stream itself was well formed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = c.nodes[f].dir.join("snapshots").join("1");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        names.is_empty(),
        "files left by a refused snapshot: {names:?}"
    );
    // The follower serves on with the data it had.
    c.put(l, 1, "a", "after").await;
    assert_eq!(c.get(f, 1, "a").await, "after");
}
