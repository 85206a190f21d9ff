//! Property-based fuzzing of everything a host decodes from the network or from its own disk
//! that a peer could have shaped: message frames and their headers, snapshot streams, and
//! the persisted address book. Each target runs 10,000 cases; `PROPTEST_CASES` sets more.
//! No input may panic, hang, or leave state behind when it is refused.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use raft::eraftpb::MessageType;

use super::frame::tests::msg as heartbeat;
use super::frame::{
    decode_messages, encode_messages, parse_chunk_header, Header, CHUNK_HEADER_LEN, HEADER_LEN,
};
use super::snapshot_stream;
use crate::storage::{address_key, decode_address};

/// runner runs 10,000 cases, or `PROPTEST_CASES`, and keeps no regression files.
fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// mutated is a valid input with bytes flipped, cut and inserted at random, or random bytes.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 0..4);
    let edited = edits.prop_map(move |edits| {
        let mut p = valid.clone();
        for (at, b, kind) in edits {
            if p.is_empty() {
                break;
            }
            let i = at.index(p.len());
            match kind {
                0 => p[i] ^= b | 1,
                1 => p.truncate(i),
                _ => p.insert(i, b),
            }
        }
        p
    });
    prop_oneof![3 => edited, 1 => prop::collection::vec(any::<u8>(), 0..300)]
}

#[test]
fn frames_and_headers_never_panic_and_respect_the_size_limit() {
    let mut valid = Vec::new();
    let batch = [(1, heartbeat(2, 3)), (4, heartbeat(5, 6))];
    encode_messages(&mut valid, "127.0.0.1:1", &batch);
    runner()
        .run(&mutated(valid), |p| {
            if let Ok((_, msgs)) = decode_messages(&p) {
                prop_assert!(msgs.len() <= p.len());
            }
            let mut h = [0u8; HEADER_LEN];
            for (i, b) in h.iter_mut().enumerate() {
                *b = p.get(i).copied().unwrap_or(0);
            }
            if let Ok(hdr) = Header::parse(&h, 7, 1 << 20) {
                prop_assert!(hdr.len <= 1 << 20);
                let _ = hdr.check(p.get(HEADER_LEN..).unwrap_or(&[]));
            }
            let mut c = [0u8; CHUNK_HEADER_LEN];
            c.copy_from_slice(&h[..CHUNK_HEADER_LEN]);
            let _ = parse_chunk_header(&c);
            Ok(())
        })
        .unwrap();
}

/// snapshot_stream_bytes is what follows a snapshot frame's header: the payload (shard and
/// message) and chunks of data, then the end mark.
fn snapshot_stream_bytes(data: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let mut msg = heartbeat(2, 0);
    msg.set_msg_type(MessageType::MsgSnapshot);
    msg.mut_snapshot().mut_metadata().index = 5;
    let mut payload = 3u64.to_le_bytes().to_vec();
    protobuf::Message::write_to_vec(&msg, &mut payload).unwrap();
    let mut rest = Vec::new();
    for d in data {
        rest.extend_from_slice(&(d.len() as u32).to_le_bytes());
        rest.extend_from_slice(&crc32fast::hash(d).to_le_bytes());
        rest.extend_from_slice(d);
    }
    rest.extend_from_slice(&[0u8; 8]);
    (payload, rest)
}

/// files lists what a snapshot directory holds.
fn files(root: &Path) -> Vec<String> {
    let dir = crate::snapshot::dir(root, 3);
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn snapshot_streams_are_taken_whole_or_leave_nothing() {
    const MAX_CHUNK: usize = 64;
    const MAX_TOTAL: u64 = 256;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let (payload, rest) = snapshot_stream_bytes(&[b"first chunk", b"second"]);
    let inputs = (mutated(payload), mutated(rest));
    runner()
        .run(&inputs, |(payload, rest)| {
            let (mut near, far) = tokio::io::duplex(1 << 16);
            let got = rt.block_on(async {
                use tokio::io::AsyncWriteExt;
                // The sender writes everything and stops writing (it stays to take the
                // acknowledgement); the receiver must end either way.
                near.write_all(&rest).await.unwrap();
                near.shutdown().await.unwrap();
                let conn: super::tls::Conn = Box::new(far);
                let recv =
                    snapshot_stream::receive(conn, &payload, root.path(), MAX_CHUNK, MAX_TOTAL);
                let got = tokio::time::timeout(std::time::Duration::from_secs(5), recv).await;
                drop(near);
                got
            });
            let Ok(got) = got else {
                return Err(TestCaseError::fail("the receiver hung"));
            };
            if let Ok((_, msg, file)) = got {
                prop_assert_eq!(msg.get_msg_type(), MessageType::MsgSnapshot);
                if let Some(f) = file {
                    let len = std::fs::metadata(&f).unwrap().len();
                    prop_assert!(len <= MAX_TOTAL);
                    std::fs::remove_file(f).unwrap();
                }
            }
            // Refused or taken, nothing stays: a taken stream's file is the worker's to place.
            prop_assert_eq!(files(root.path()), Vec::<String>::new());
            Ok(())
        })
        .unwrap();
}

#[test]
fn persisted_addresses_decode_back_or_are_skipped() {
    let record = (
        prop::option::of(any::<u64>()),
        any::<u64>(),
        "[ -~]{0,40}",
        mutated(address_key(Some(1), 2)),
        prop::collection::vec(any::<u8>(), 0..64),
    );
    runner()
        .run(&record, |(shard, replica, addr, key, value)| {
            let decoded = decode_address(&address_key(shard, replica), addr.as_bytes());
            prop_assert_eq!(decoded, Some((shard, replica, addr.clone())));
            // Keys and values of any shape: skipped or decoded, never a panic.
            let _ = decode_address(&key, &value);
            Ok(())
        })
        .unwrap();
}
