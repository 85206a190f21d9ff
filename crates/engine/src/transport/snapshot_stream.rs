//! Snapshot streaming: a snapshot file goes to a follower on a connection of its own, in
//! checksummed chunks, and is synced into place before the follower's Raft sees it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::frame::{bad, chunk_header, header, parse_chunk_header, MAGIC_SNAPSHOT};
use super::tls::{Conn, Tls};
use crate::snapshot;

const CHUNK: usize = 1 << 20;
/// Longest the receiver may take to sync the file and acknowledge it.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
static RECV_SEQ: AtomicU64 = AtomicU64::new(0);

/// send streams the snapshot that `msg` announces from this host's files to `addr`, and
/// returns once the receiver has synced it, with the bytes of its data.
pub(super) async fn send(
    cluster: u64,
    root: &Path,
    addr: &str,
    tls: Option<&Tls>,
    shard: u64,
    msg: Message,
) -> std::io::Result<u64> {
    let index = msg.get_snapshot().get_metadata().index;
    let file = match tokio::fs::File::open(snapshot::file(root, shard, index)).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && index <= 1 => None,
        Err(e) => return Err(e),
    };
    let mut s = super::dial(addr, tls).await?;
    let mut payload = shard.to_le_bytes().to_vec();
    msg.write_to_vec(&mut payload)
        .map_err(|e| bad(&e.to_string()))?;
    s.write_all(&header(MAGIC_SNAPSHOT, cluster, &payload))
        .await?;
    s.write_all(&payload).await?;
    let mut total = 0u64;
    if let Some(mut f) = file {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            total += n as u64;
            s.write_all(&chunk_header(&buf[..n])).await?;
            s.write_all(&buf[..n]).await?;
        }
    }
    s.write_all(&[0u8; 8]).await?;
    let mut ack = [0u8; 1];
    tokio::time::timeout(ACK_TIMEOUT, s.read_exact(&mut ack))
        .await
        .map_err(|_| bad("snapshot acknowledgement timed out"))??;
    Ok(total)
}

/// receive reads the chunks that follow a snapshot frame `p` into a temporary file, syncs it,
/// acknowledges it, and returns the shard, the snapshot message for Raft and the file (none
/// for the bootstrap snapshot, which has no data). The step worker puts the file in place
/// only if Raft takes the snapshot.
pub(super) async fn receive(
    mut s: Conn,
    p: &[u8],
    root: &Path,
    max_chunk: usize,
    max_total: u64,
) -> std::io::Result<(u64, Message, Option<PathBuf>)> {
    if p.len() < 8 {
        return Err(bad("truncated snapshot header"));
    }
    let shard = u64::from_le_bytes(p[..8].try_into().unwrap());
    let msg = Message::parse_from_bytes(&p[8..]).map_err(|_| bad("undecodable snapshot"))?;
    if msg.get_msg_type() != MessageType::MsgSnapshot {
        return Err(bad("snapshot stream without a snapshot message"));
    }
    let index = msg.get_snapshot().get_metadata().index;
    let dir = snapshot::dir(root, shard);
    tokio::fs::create_dir_all(&dir).await?;
    let n = RECV_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("recv-{index:020}-{n}.tmp"));
    let mut file = tokio::fs::File::create(&tmp).await?;
    let mut total = 0usize;
    let mut chunk = Vec::new();
    let result: std::io::Result<()> = async {
        let mut h = [0u8; 8];
        loop {
            s.read_exact(&mut h).await?;
            let (len, crc) = parse_chunk_header(&h);
            if len == 0 {
                return Ok(());
            }
            if len > max_chunk {
                return Err(bad("snapshot chunk larger than the limit"));
            }
            chunk.resize(len, 0);
            s.read_exact(&mut chunk).await?;
            if crc32fast::hash(&chunk) != crc {
                return Err(bad("snapshot chunk checksum mismatch"));
            }
            total += len;
            if total as u64 > max_total {
                return Err(bad("snapshot larger than the limit"));
            }
            file.write_all(&chunk).await?;
        }
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    file.sync_all().await?;
    drop(file);
    // Index 1 is the bootstrap snapshot, which has no file; any other snapshot has one,
    // even if the state machine wrote nothing.
    let file = if total > 0 || index > 1 {
        Some(tmp)
    } else {
        tokio::fs::remove_file(&tmp).await?;
        None
    };
    if let Err(e) = s.write_all(&[1]).await {
        if let Some(f) = &file {
            let _ = tokio::fs::remove_file(f).await;
        }
        return Err(e);
    }
    Ok((shard, msg, file))
}
