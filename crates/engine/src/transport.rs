//! Transport: Raft messages between hosts over tokio TCP.
//!
//! Wire format (little endian). Every connection starts with a frame header:
//! `magic: u32 | cluster_id: u64 | len: u32 | crc32(payload): u32`, then `len` payload bytes.
//! - Message connections (`MAGIC_MESSAGES`) carry a stream of such frames; a payload is
//!   `addr_len: u16 | sender's transport address` followed by a sequence of
//!   `shard: u64 | len: u32 | protobuf raft Message`, so one frame carries every message
//!   queued for that host, from every replica. Receivers learn the address of each sending
//!   replica from it, so address books fill themselves once any message arrives.
//! - Snapshot connections (`MAGIC_SNAPSHOT`) carry one frame whose payload is
//!   `shard: u64 | protobuf MsgSnapshot`, then chunks `len: u32 | crc32: u32 | data` ended by
//!   a zero length; the receiver answers one byte once the file is synced.
//!
//! A frame with another cluster id, an unknown magic, a length over the limit (checked before
//! anything is allocated) or a bad checksum closes the connection; the host carries on.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::config::LinkFilter;
use crate::snapshot;
use crate::storage::LogStore;
use crate::worker::{Cmd, Router};

/// Magic number opening a message frame ("ZZM1").
pub const MAGIC_MESSAGES: u32 = 0x314d_5a5a;
/// Magic number opening a snapshot stream ("ZZS1").
pub const MAGIC_SNAPSHOT: u32 = 0x3153_5a5a;
/// Size of a frame header in bytes.
pub const HEADER_LEN: usize = 20;

const CHUNK: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Longest a snapshot transfer may take before it counts as failed (and Raft retries).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a frame write may take before the connection counts as broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
static RECV_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

type Outgoing = (u64, Message);

/// Transport sends and receives Raft messages for one host.
pub(crate) struct Transport {
    cluster_id: u64,
    max_frame: usize,
    root: PathBuf,
    local_addr: String,
    /// Weak, so that tasks still winding down after close do not keep the log store (and its
    /// directory lock) alive.
    store: std::sync::Weak<LogStore>,
    handle: Handle,
    router: Arc<Router>,
    peers: Mutex<HashMap<String, mpsc::UnboundedSender<Outgoing>>>,
    addresses: RwLock<HashMap<u64, String>>,
    filter: RwLock<Option<LinkFilter>>,
}

fn header(magic: u32, cluster: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&magic.to_le_bytes());
    h[4..12].copy_from_slice(&cluster.to_le_bytes());
    h[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[16..20].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    h
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

impl Transport {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cluster_id: u64,
        max_frame: usize,
        root: PathBuf,
        local_addr: String,
        store: Arc<LogStore>,
        handle: Handle,
        router: Arc<Router>,
    ) -> Self {
        Transport {
            cluster_id,
            max_frame,
            root,
            local_addr,
            store: Arc::downgrade(&store),
            handle,
            router,
            peers: Mutex::new(HashMap::new()),
            addresses: RwLock::new(HashMap::new()),
            filter: RwLock::new(None),
        }
    }

    pub(crate) fn set_address(&self, replica: u64, addr: &str) {
        self.addresses.write().insert(replica, addr.to_string());
    }

    pub(crate) fn address_of(&self, replica: u64) -> Option<String> {
        self.addresses.read().get(&replica).cloned()
    }

    pub(crate) fn set_filter(&self, f: Option<LinkFilter>) {
        *self.filter.write() = f;
    }

    /// serve accepts connections until the runtime shuts down.
    pub(crate) fn serve(self: &Arc<Self>, listener: TcpListener) {
        let t = self.clone();
        self.handle.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let t = t.clone();
                tokio::spawn(async move {
                    // An error only ends this connection; the peer reconnects if it is genuine.
                    let _ = t.receive(stream).await;
                });
            }
        });
    }

    /// send queues messages to their destinations; messages to unknown or unreachable
    /// replicas are reported to Raft as unreachable.
    pub(crate) fn send(&self, shard: u64, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        let filter = self.filter.read().clone();
        let addresses = self.addresses.read();
        let mut peers = self.peers.lock();
        for m in msgs {
            let snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
            let Some(addr) = addresses.get(&m.to) else {
                self.unreachable(shard, m.to);
                if snapshot {
                    self.snapshot_failed(shard, m.to);
                }
                continue;
            };
            if filter.as_ref().is_some_and(|f| !f(addr)) {
                // Raft waits for a snapshot's outcome before it sends that follower anything
                // else, so a cut link must report it.
                if snapshot {
                    self.snapshot_failed(shard, m.to);
                }
                continue;
            }
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.send_snapshot(shard, addr.clone(), m);
                continue;
            }
            let tx = peers.entry(addr.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let t = PeerLink {
                    addr: addr.clone(),
                    local_addr: self.local_addr.clone(),
                    cluster_id: self.cluster_id,
                    max_frame: self.max_frame,
                    router: self.router.clone(),
                };
                self.handle.spawn(t.run(rx));
                tx
            });
            if let Err(e) = tx.send((shard, m)) {
                self.unreachable(shard, e.0 .1.to);
            }
        }
    }

    fn unreachable(&self, shard: u64, to: u64) {
        self.router.send(shard, Cmd::Unreachable { shard, to });
    }

    fn snapshot_failed(&self, shard: u64, to: u64) {
        self.router.send(
            shard,
            Cmd::SnapshotStatus {
                shard,
                to,
                ok: false,
            },
        );
    }

    fn send_snapshot(&self, shard: u64, addr: String, msg: Message) {
        let to = msg.to;
        let router = self.router.clone();
        let (cluster, root) = (self.cluster_id, self.root.clone());
        self.handle.spawn(async move {
            let send = stream_snapshot(cluster, root, &addr, shard, msg);
            let ok = matches!(
                tokio::time::timeout(SNAPSHOT_TIMEOUT, send).await,
                Ok(Ok(()))
            );
            router.send(shard, Cmd::SnapshotStatus { shard, to, ok });
        });
    }

    async fn receive(&self, mut s: TcpStream) -> std::io::Result<()> {
        let mut hdr = [0u8; HEADER_LEN];
        loop {
            s.read_exact(&mut hdr).await?;
            let magic = u32::from_le_bytes(hdr[..4].try_into().unwrap());
            let cluster = u64::from_le_bytes(hdr[4..12].try_into().unwrap());
            let len = u32::from_le_bytes(hdr[12..16].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(hdr[16..20].try_into().unwrap());
            if magic != MAGIC_MESSAGES && magic != MAGIC_SNAPSHOT {
                return Err(bad("unknown frame magic"));
            }
            if cluster != self.cluster_id {
                return Err(bad("frame from another cluster"));
            }
            if len > self.max_frame {
                return Err(bad("frame larger than the limit"));
            }
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await?;
            if crc32fast::hash(&payload) != crc {
                return Err(bad("frame checksum mismatch"));
            }
            if magic == MAGIC_SNAPSHOT {
                return self.receive_snapshot(s, &payload).await;
            }
            self.dispatch(&payload)?;
        }
    }

    /// dispatch decodes a whole frame before routing any of it, so a corrupt frame is
    /// refused as a unit.
    fn dispatch(&self, p: &[u8]) -> std::io::Result<()> {
        if p.len() < 2 {
            return Err(bad("truncated frame"));
        }
        let alen = u16::from_le_bytes([p[0], p[1]]) as usize;
        let from_addr = p.get(2..2 + alen).ok_or_else(|| bad("truncated frame"))?;
        let from_addr = std::str::from_utf8(from_addr).map_err(|_| bad("bad sender address"))?;
        let mut p = &p[2 + alen..];
        let mut msgs = Vec::new();
        while !p.is_empty() {
            if p.len() < 12 {
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
        self.learn(from_addr, msgs.iter().map(|(_, m)| m.from));
        for (shard, msg) in msgs {
            self.router.send(shard, Cmd::Raft { shard, msg });
        }
        Ok(())
    }

    /// learn records that the given replicas live at `addr`, the host that sent them.
    fn learn(&self, addr: &str, replicas: impl Iterator<Item = u64>) {
        if addr.is_empty() {
            return;
        }
        let mut changed = Vec::new();
        {
            let book = self.addresses.read();
            for r in replicas {
                if r != 0 && book.get(&r).map(String::as_str) != Some(addr) && !changed.contains(&r)
                {
                    changed.push(r);
                }
            }
        }
        for r in changed {
            self.set_address(r, addr);
            // Best effort: a lost record is learned again from the next message.
            if let Some(store) = self.store.upgrade() {
                let _ = store.save_address(r, addr);
            }
        }
    }

    async fn receive_snapshot(&self, mut s: TcpStream, p: &[u8]) -> std::io::Result<()> {
        if p.len() < 8 {
            return Err(bad("truncated snapshot header"));
        }
        let shard = u64::from_le_bytes(p[..8].try_into().unwrap());
        let msg = Message::parse_from_bytes(&p[8..]).map_err(|_| bad("undecodable snapshot"))?;
        if msg.get_msg_type() != MessageType::MsgSnapshot {
            return Err(bad("snapshot stream without a snapshot message"));
        }
        let index = msg.get_snapshot().get_metadata().index;
        let dir = snapshot::dir(&self.root, shard);
        tokio::fs::create_dir_all(&dir).await?;
        let n = RECV_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("recv-{index:020}-{n}.tmp"));
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut total = 0usize;
        let mut chunk = Vec::new();
        let result: std::io::Result<()> = async {
            let mut h = [0u8; 8];
            loop {
                s.read_exact(&mut h).await?;
                let len = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize;
                let crc = u32::from_le_bytes(h[4..].try_into().unwrap());
                if len == 0 {
                    return Ok(());
                }
                if len > self.max_frame {
                    return Err(bad("snapshot chunk larger than the limit"));
                }
                chunk.resize(len, 0);
                s.read_exact(&mut chunk).await?;
                if crc32fast::hash(&chunk) != crc {
                    return Err(bad("snapshot chunk checksum mismatch"));
                }
                file.write_all(&chunk).await?;
                total += len;
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
        if total > 0 || index > 1 {
            tokio::fs::rename(&tmp, snapshot::file(&self.root, shard, index)).await?;
            tokio::fs::File::open(&dir).await?.sync_all().await?;
        } else {
            tokio::fs::remove_file(&tmp).await?;
        }
        s.write_all(&[1]).await?;
        self.router.send(shard, Cmd::Raft { shard, msg });
        Ok(())
    }
}

/// PeerLink owns the connection to one remote host and frames whatever is queued for it.
struct PeerLink {
    addr: String,
    local_addr: String,
    cluster_id: u64,
    max_frame: usize,
    router: Arc<Router>,
}

impl PeerLink {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
        let mut conn: Option<TcpStream> = None;
        let mut backoff = Duration::from_millis(20);
        let mut retry_at = Instant::now();
        let mut payload = Vec::new();
        let mut frame = Vec::new();
        // Room for messages in a frame: the limit less the header and the sender's address.
        let room = self
            .max_frame
            .saturating_sub(HEADER_LEN + 2 + self.local_addr.len());
        let mut carry: Option<Outgoing> = None;
        loop {
            let first = match carry.take() {
                Some(m) => m,
                None => match rx.recv().await {
                    Some(m) => m,
                    None => break,
                },
            };
            let first_size = first.1.compute_size() as usize + 12;
            if first_size > room {
                // No frame the peer accepts can carry it; Raft sends it again, or smaller.
                self.report(std::slice::from_ref(&first));
                continue;
            }
            let mut batch = vec![first];
            let mut size = first_size;
            while let Ok(m) = rx.try_recv() {
                let s = m.1.compute_size() as usize + 12;
                if size + s > room {
                    carry = Some(m);
                    break;
                }
                size += s;
                batch.push(m);
            }
            if conn.is_none() {
                if Instant::now() < retry_at {
                    self.report(&batch);
                    continue;
                }
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr)).await {
                    Ok(Ok(s)) => {
                        let _ = s.set_nodelay(true);
                        conn = Some(s);
                        backoff = Duration::from_millis(20);
                    }
                    _ => {
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        self.report(&batch);
                        continue;
                    }
                }
            }
            payload.clear();
            payload.extend_from_slice(&(self.local_addr.len() as u16).to_le_bytes());
            payload.extend_from_slice(self.local_addr.as_bytes());
            for (shard, m) in &batch {
                payload.extend_from_slice(&shard.to_le_bytes());
                let at = payload.len();
                payload.extend_from_slice(&[0u8; 4]);
                if m.write_to_vec(&mut payload).is_err() {
                    payload.truncate(at - 8);
                    continue;
                }
                let len = (payload.len() - at - 4) as u32;
                payload[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
            frame.clear();
            frame.extend_from_slice(&header(MAGIC_MESSAGES, self.cluster_id, &payload));
            frame.extend_from_slice(&payload);
            let s = conn.as_mut().unwrap();
            let written = tokio::time::timeout(WRITE_TIMEOUT, s.write_all(&frame)).await;
            if !matches!(written, Ok(Ok(()))) {
                conn = None;
                self.report(&batch);
            }
        }
    }

    /// report tells each sending replica, once per destination, that it was unreachable.
    fn report(&self, batch: &[Outgoing]) {
        let seen: HashSet<(u64, u64)> = batch.iter().map(|(s, m)| (*s, m.to)).collect();
        for (shard, to) in seen {
            self.router.send(shard, Cmd::Unreachable { shard, to });
        }
    }
}

async fn stream_snapshot(
    cluster: u64,
    root: PathBuf,
    addr: &str,
    shard: u64,
    msg: Message,
) -> std::io::Result<()> {
    let index = msg.get_snapshot().get_metadata().index;
    let file = match tokio::fs::File::open(snapshot::file(&root, shard, index)).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && index <= 1 => None,
        Err(e) => return Err(e),
    };
    let mut s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| bad("connect timed out"))??;
    let mut payload = shard.to_le_bytes().to_vec();
    msg.write_to_vec(&mut payload)
        .map_err(|e| bad(&e.to_string()))?;
    s.write_all(&header(MAGIC_SNAPSHOT, cluster, &payload))
        .await?;
    s.write_all(&payload).await?;
    if let Some(mut f) = file {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&(n as u32).to_le_bytes());
            h[4..].copy_from_slice(&crc32fast::hash(&buf[..n]).to_le_bytes());
            s.write_all(&h).await?;
            s.write_all(&buf[..n]).await?;
        }
    }
    s.write_all(&[0u8; 8]).await?;
    let mut ack = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut ack))
        .await
        .map_err(|_| bad("snapshot acknowledgement timed out"))??;
    Ok(())
}
