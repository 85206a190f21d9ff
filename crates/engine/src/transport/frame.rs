//! Framing of the transport's wire format: pure encoding and decoding, no I/O.
//!
//! A frame is a header `magic: u32 | cluster_id: u64 | len: u32 | crc32(payload): u32`
//! (little endian) followed by `len` payload bytes. The magic's first three bytes say what
//! the frame holds ("ZZM": messages, "ZZS": a snapshot) and its fourth the version of the
//! layout, as an ASCII digit ([`TRANSPORT_VERSION`]); a version this build does not read is
//! refused by name and ends the connection. A message payload is
//! `addr_len: u16 | sender's transport address` then a sequence of
//! `shard: u64 | len: u32 | protobuf raft Message`. Snapshot data follows its frame as chunks
//! `len: u32 | crc32: u32 | data`, ended by a zero length.

use std::io;

use protobuf::Message as _;
use raft::eraftpb::Message;

use crate::version::{supported, unsupported, OLDEST_TRANSPORT_VERSION, TRANSPORT_VERSION};

/// magic is the magic of a frame of `kind` ("ZZM" or "ZZS") at `version`.
const fn magic(kind: &[u8; 3], version: u8) -> u32 {
    u32::from_le_bytes([kind[0], kind[1], kind[2], b'0' + version])
}

/// Magic number opening a message frame ("ZZM" and the version: "ZZM1").
pub const MAGIC_MESSAGES: u32 = magic(b"ZZM", TRANSPORT_VERSION);
/// Magic number opening a snapshot stream ("ZZS" and the version: "ZZS1").
pub const MAGIC_SNAPSHOT: u32 = magic(b"ZZS", TRANSPORT_VERSION);
/// Size of a frame header in bytes.
pub const HEADER_LEN: usize = 20;
/// Size of a snapshot chunk header in bytes.
pub(crate) const CHUNK_HEADER_LEN: usize = 8;
/// Bytes a message adds to a payload besides its protobuf encoding.
pub(crate) const MESSAGE_OVERHEAD: usize = 12;

/// bad is the error of malformed input; it ends the connection that carried it.
pub(crate) fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// header builds the frame header for `payload`.
pub(crate) fn header(magic: u32, cluster: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&magic.to_le_bytes());
    h[4..12].copy_from_slice(&cluster.to_le_bytes());
    h[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[16..20].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    h
}

/// Header is a checked frame header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) magic: u32,
    pub(crate) len: usize,
    crc: u32,
}

impl Header {
    /// parse checks a header against this cluster and the frame limit before anything is
    /// allocated for the payload.
    pub(crate) fn parse(h: &[u8; HEADER_LEN], cluster: u64, max: usize) -> io::Result<Header> {
        let from = u64::from_le_bytes(h[4..12].try_into().unwrap());
        let len = u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(h[16..20].try_into().unwrap());
        if &h[..3] != b"ZZM" && &h[..3] != b"ZZS" {
            return Err(bad("unknown frame magic"));
        }
        let version = u32::from(h[3].wrapping_sub(b'0'));
        if !supported(version, OLDEST_TRANSPORT_VERSION, TRANSPORT_VERSION) {
            let (oldest, newest) = (OLDEST_TRANSPORT_VERSION, TRANSPORT_VERSION);
            let why = unsupported("transport frame", version, oldest, newest);
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        // `magic` names the kind at this build's version, whichever version the frame has:
        // every version this build reads has the same layout (a later one may not).
        let magic = if &h[..3] == b"ZZM" {
            MAGIC_MESSAGES
        } else {
            MAGIC_SNAPSHOT
        };
        if from != cluster {
            return Err(bad("frame from another cluster"));
        }
        if len > max {
            return Err(bad("frame larger than the limit"));
        }
        Ok(Header { magic, len, crc })
    }

    /// check verifies the payload against the header's checksum.
    pub(crate) fn check(&self, payload: &[u8]) -> io::Result<()> {
        if crc32fast::hash(payload) != self.crc {
            return Err(bad("frame checksum mismatch"));
        }
        Ok(())
    }
}

/// encode_messages writes a message payload from `local_addr` carrying `batch` into `out`.
/// A message that cannot be encoded is left out.
pub(crate) fn encode_messages(out: &mut Vec<u8>, local_addr: &str, batch: &[(u64, Message)]) {
    out.clear();
    out.extend_from_slice(&(local_addr.len() as u16).to_le_bytes());
    out.extend_from_slice(local_addr.as_bytes());
    for (shard, m) in batch {
        out.extend_from_slice(&shard.to_le_bytes());
        let at = out.len();
        out.extend_from_slice(&[0u8; 4]);
        if m.write_to_vec(out).is_err() {
            out.truncate(at - 8);
            continue;
        }
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// decode_messages reads a whole message payload, or refuses it as a unit: the sender's
/// address and every (shard, message) it carries.
pub(crate) fn decode_messages(p: &[u8]) -> io::Result<(&str, Vec<(u64, Message)>)> {
    if p.len() < 2 {
        return Err(bad("truncated frame"));
    }
    let alen = u16::from_le_bytes([p[0], p[1]]) as usize;
    let addr = p.get(2..2 + alen).ok_or_else(|| bad("truncated frame"))?;
    let addr = std::str::from_utf8(addr).map_err(|_| bad("bad sender address"))?;
    let mut p = &p[2 + alen..];
    let mut msgs = Vec::new();
    while !p.is_empty() {
        if p.len() < MESSAGE_OVERHEAD {
            return Err(bad("truncated message"));
        }
        let shard = u64::from_le_bytes(p[..8].try_into().unwrap());
        let len = u32::from_le_bytes(p[8..12].try_into().unwrap()) as usize;
        let body = p
            .get(12..12 + len)
            .ok_or_else(|| bad("truncated message"))?;
        let msg = Message::parse_from_bytes(body).map_err(|_| bad("undecodable message"))?;
        msgs.push((shard, msg));
        p = &p[12 + len..];
    }
    Ok((addr, msgs))
}

/// chunk_header builds the header of one snapshot chunk.
pub(crate) fn chunk_header(data: &[u8]) -> [u8; CHUNK_HEADER_LEN] {
    let mut h = [0u8; CHUNK_HEADER_LEN];
    h[..4].copy_from_slice(&(data.len() as u32).to_le_bytes());
    h[4..].copy_from_slice(&crc32fast::hash(data).to_le_bytes());
    h
}

/// parse_chunk_header returns a chunk's length (0 ends the stream) and checksum.
pub(crate) fn parse_chunk_header(h: &[u8; CHUNK_HEADER_LEN]) -> (usize, u32) {
    let len = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize;
    (len, u32::from_le_bytes(h[4..].try_into().unwrap()))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use raft::eraftpb::MessageType;

    /// msg is a heartbeat from replica 9 (the fuzz targets start from it too).
    pub(in crate::transport) fn msg(to: u64, commit: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.to = to;
        m.from = 9;
        m.commit = commit;
        m
    }

    #[test]
    fn messages_round_trip_with_the_sender_address() {
        let batch = vec![(1, msg(2, 10)), (7, msg(3, 11))];
        let mut p = Vec::new();
        encode_messages(&mut p, "127.0.0.1:9000", &batch);
        let (addr, got) = decode_messages(&p).unwrap();
        assert_eq!(addr, "127.0.0.1:9000");
        assert_eq!(got, batch);
    }

    #[test]
    fn a_truncated_payload_is_refused_as_a_whole() {
        let mut p = Vec::new();
        encode_messages(&mut p, "a:1", &[(1, msg(2, 10)), (1, msg(2, 12))]);
        for cut in [0, 1, 3, p.len() - 1] {
            assert!(decode_messages(&p[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut lying = p.clone();
        lying[0] = 200; // address longer than the payload
        assert!(decode_messages(&lying).is_err());
    }

    #[test]
    fn headers_of_another_cluster_or_magic_or_size_are_refused() {
        let payload = b"hello";
        let h = header(MAGIC_MESSAGES, 5, payload);
        let ok = Header::parse(&h, 5, 100).unwrap();
        assert_eq!((ok.magic, ok.len), (MAGIC_MESSAGES, 5));
        ok.check(payload).unwrap();
        assert!(ok.check(b"hellp").is_err());
        assert!(Header::parse(&h, 6, 100).is_err());
        assert!(Header::parse(&h, 5, 4).is_err());
        let mut wrong = h;
        wrong[0] ^= 1;
        assert!(Header::parse(&wrong, 5, 100).is_err());
    }

    #[test]
    fn a_frame_of_a_transport_version_this_build_does_not_read_is_refused_by_name() {
        assert_eq!(&MAGIC_MESSAGES.to_le_bytes(), b"ZZM1");
        assert_eq!(&MAGIC_SNAPSHOT.to_le_bytes(), b"ZZS1");
        for kind in [b"ZZM", b"ZZS"] {
            for version in [TRANSPORT_VERSION + 1, 9, 0] {
                let h = header(magic(kind, version), 5, b"hello");
                let e = Header::parse(&h, 5, 100).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("transport frame version {version}")),
                    "{msg}"
                );
                assert!(msg.contains("not supported"), "{msg}");
            }
            let ok = Header::parse(&header(magic(kind, TRANSPORT_VERSION), 5, b"hi"), 5, 100);
            assert!(ok.is_ok());
        }
    }

    #[test]
    fn chunk_headers_round_trip() {
        let h = chunk_header(b"abc");
        assert_eq!(parse_chunk_header(&h), (3, crc32fast::hash(b"abc")));
        assert_eq!(parse_chunk_header(&[0u8; 8]).0, 0);
    }
}
