//! Transport: Raft messages between hosts over tokio TCP.
//!
//! One message connection per peer host ([`link`]): every message queued for that host, from
//! every replica, goes out in one checksummed frame ([`frame`] has the wire format), and the
//! receiver learns each sending replica's address from it. Snapshots stream on connections
//! of their own ([`snapshot_stream`]).
//!
//! A frame with another cluster id, an unknown magic, a length over the limit (checked before
//! anything is allocated) or a bad checksum closes the connection; the host carries on.

mod book;
mod frame;
#[cfg(test)]
mod fuzz;
mod link;
mod snapshot_stream;
mod tls;

pub use frame::{HEADER_LEN, MAGIC_MESSAGES, MAGIC_SNAPSHOT};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use raft::eraftpb::{Message, MessageType};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::config::LinkFilter;
use crate::fault::Fault;
use crate::log::{emit, field, num, Level, Logs};
use crate::network::Network;
use crate::router::{Cmd, Router};
use crate::storage::LogStore;

/// Longest a TLS handshake of an accepted connection may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// dial connects to `addr`, over TLS when it is configured.
pub(crate) async fn dial(addr: &str, tls: Option<&tls::Tls>) -> std::io::Result<tls::Conn> {
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        match tls {
            Some(t) => t.connect(tcp, addr).await,
            None => Ok(Box::new(tcp) as tls::Conn),
        }
    };
    tokio::time::timeout(link::CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| frame::bad("connect timed out"))?
}

/// FilterClosed tells a connection's end by the peer from a failure.
trait FilterClosed {
    fn filter_closed(self) -> std::io::Result<()>;
}

impl FilterClosed for std::io::Result<()> {
    fn filter_closed(self) -> std::io::Result<()> {
        match self {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
            other => other,
        }
    }
}

/// Longest a snapshot transfer may take before it counts as failed (and Raft retries).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Outgoing is a message and the shard it belongs to.
type Outgoing = (u64, Message);

/// Transport sends and receives Raft messages for one host.
pub(crate) struct Transport {
    cluster_id: u64,
    max_frame: usize,
    max_snapshot: u64,
    root: PathBuf,
    local_addr: String,
    /// Weak, so that tasks still winding down after close do not keep the log store (and its
    /// directory lock) alive.
    store: std::sync::Weak<LogStore>,
    handle: Handle,
    router: Arc<Router>,
    fault: Arc<Fault>,
    tls: Option<Arc<tls::Tls>>,
    peers: Mutex<HashMap<String, link::Queue>>,
    addresses: book::AddressBook,
    /// Messages refused on arrival because no local replica was their addressee.
    dropped: std::sync::atomic::AtomicU64,
    filter: RwLock<Option<LinkFilter>>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) logs: Option<Arc<Logs>>,
}

impl Transport {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cluster_id: u64,
        max_frame: usize,
        max_snapshot: u64,
        root: PathBuf,
        local_addr: String,
        store: Arc<LogStore>,
        handle: Handle,
        router: Arc<Router>,
        fault: Arc<Fault>,
        tls: Option<crate::config::TlsFiles>,
        metrics: Arc<crate::metrics::Metrics>,
        logs: Option<Arc<Logs>>,
    ) -> crate::error::Result<Self> {
        let tls = tls.map(tls::Tls::load).transpose()?.map(Arc::new);
        Ok(Transport {
            cluster_id,
            max_frame,
            max_snapshot,
            root,
            local_addr,
            store: Arc::downgrade(&store),
            handle,
            router,
            fault,
            tls,
            peers: Mutex::new(HashMap::new()),
            addresses: book::AddressBook::default(),
            dropped: Default::default(),
            filter: RwLock::new(None),
            metrics,
            logs,
        })
    }

    /// reload_tls reads the TLS files again (for rotated certificates).
    pub(crate) fn reload_tls(&self) -> crate::error::Result<()> {
        match &self.tls {
            Some(t) => t.reload(),
            None => Err(crate::error::Error::InvalidArgument(
                "the transport runs without TLS".into(),
            )),
        }
    }

    /// dropped returns how many received messages were refused.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// queued_bytes is the size of the messages queued for peers and not yet sent.
    pub(crate) fn queued_bytes(&self) -> u64 {
        self.peers.lock().values().map(|q| q.queued() as u64).sum()
    }

    pub(crate) fn set_filter(&self, f: Option<LinkFilter>) {
        *self.filter.write() = f;
    }

    /// serve accepts connections until the runtime shuts down.
    pub(crate) fn serve(self: &Arc<Self>, listener: TcpListener) {
        let t = self.clone();
        let accept = async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if t.fault.is_failed() {
                    return; // a failed host takes no part in consensus any more
                }
                let _ = stream.set_nodelay(true);
                let c = t.clone();
                t.fault
                    .spawn(&t.handle, "a transport connection", async move {
                        // An error only ends this connection; the peer reconnects if it is genuine.
                        let res = match c.accept(stream).await {
                            Ok(conn) => c.receive(conn).await,
                            Err(e) => Err(e),
                        };
                        // A peer closing its end is no news; anything else is.
                        if let Err(e) = res.filter_closed() {
                            emit(&c.logs, Level::Warn, 0, 0, || {
                                let fields = vec![field("error", &e)];
                                ("transport connection failed".into(), fields)
                            });
                        }
                    });
            }
        };
        self.fault
            .spawn(&self.handle, "the transport listener", accept);
    }

    /// accept runs the TLS handshake of an accepted connection, when TLS is configured.
    async fn accept(&self, stream: TcpStream) -> std::io::Result<tls::Conn> {
        match &self.tls {
            Some(tls) => tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream))
                .await
                .unwrap_or_else(|_| Err(frame::bad("TLS handshake timed out"))),
            None => Ok(Box::new(stream)),
        }
    }

    /// send_messages queues messages to their destinations; messages to unknown or
    /// unreachable replicas are reported to Raft as unreachable.
    fn send_messages(&self, shard: u64, msgs: Vec<Message>) {
        // A failed host says nothing more: no vote, append or acknowledgement leaves it.
        if msgs.is_empty() || self.fault.is_failed() {
            return;
        }
        let filter = self.filter.read().clone();
        let mut peers = self.peers.lock();
        for m in msgs {
            let snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
            let Some(addr) = self.addresses.get(shard, m.to) else {
                self.unreachable(shard, m.to);
                if snapshot {
                    self.snapshot_failed(shard, m.to);
                }
                continue;
            };
            if filter.as_ref().is_some_and(|f| !f(&addr)) {
                // Raft waits for a snapshot's outcome before it sends that follower anything
                // else, so a cut link must report it.
                if snapshot {
                    self.snapshot_failed(shard, m.to);
                }
                continue;
            }
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.send_snapshot(shard, addr, m);
                continue;
            }
            let q = peers.entry(addr.clone()).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let t = link::PeerLink {
                    tls: self.tls.clone(),
                    addr: addr.clone(),
                    local_addr: self.local_addr.clone(),
                    cluster_id: self.cluster_id,
                    max_frame: self.max_frame,
                    router: self.router.clone(),
                    queued: queued.clone(),
                    counters: self.metrics.peer(&addr),
                    logs: self.logs.clone(),
                };
                self.fault.spawn(&self.handle, "a peer link", t.run(rx));
                link::Queue::new(tx, queued, link::MAX_QUEUED_BYTES)
            });
            let to = m.to;
            if !q.push(shard, m) {
                // Past the link's allowance the message is lost, as on a bad network:
                // Raft sends again what matters.
                self.unreachable(shard, to);
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
        let tls = self.tls.clone();
        let metrics = self.metrics.clone();
        let logs = self.logs.clone();
        self.fault
            .spawn(&self.handle, "a snapshot transfer", async move {
                let send = snapshot_stream::send(cluster, &root, &addr, tls.as_deref(), shard, msg);
                let sent = tokio::time::timeout(SNAPSHOT_TIMEOUT, send).await;
                let ok = matches!(sent, Ok(Ok(_)));
                match &sent {
                    Ok(Ok(bytes)) => {
                        crate::metrics::count(&metrics.snapshots_sent, 1);
                        crate::metrics::count(&metrics.snapshot_bytes_sent, *bytes);
                        emit(&logs, Level::Info, shard, 0, || {
                            let fields = vec![num("to", to), num("bytes", *bytes)];
                            ("snapshot sent".into(), fields)
                        });
                    }
                    Ok(Err(e)) => emit(&logs, Level::Warn, shard, 0, || {
                        let fields = vec![num("to", to), field("error", e)];
                        ("snapshot send failed".into(), fields)
                    }),
                    Err(_) => emit(&logs, Level::Warn, shard, 0, || {
                        let fields = vec![num("to", to), field("error", "timed out")];
                        ("snapshot send failed".into(), fields)
                    }),
                }
                router.send(shard, Cmd::SnapshotStatus { shard, to, ok });
            });
    }

    async fn receive(&self, mut s: tls::Conn) -> std::io::Result<()> {
        let mut hdr = [0u8; HEADER_LEN];
        // The counters of the peer that sent the last frame (a connection has one sender).
        let mut peer: Option<(String, Arc<crate::metrics::PeerCounters>)> = None;
        loop {
            s.read_exact(&mut hdr).await?;
            if self.fault.is_failed() {
                return Ok(()); // a failed host takes no part in consensus any more
            }
            let h = frame::Header::parse(&hdr, self.cluster_id, self.max_frame)?;
            let mut payload = vec![0u8; h.len];
            s.read_exact(&mut payload).await?;
            h.check(&payload)?;
            if h.magic == MAGIC_SNAPSHOT {
                // Bounded in size and in time: a stalled or endless sender cannot hold the
                // connection or fill the disk.
                let recv = snapshot_stream::receive(
                    s,
                    &payload,
                    &self.root,
                    self.max_frame,
                    self.max_snapshot,
                );
                let (shard, msg, file) = tokio::time::timeout(SNAPSHOT_TIMEOUT, recv)
                    .await
                    .map_err(|_| frame::bad("snapshot transfer timed out"))??;
                let bytes = file
                    .as_ref()
                    .and_then(|f| std::fs::metadata(f).ok())
                    .map_or(0, |m| m.len());
                crate::metrics::count(&self.metrics.snapshots_received, 1);
                crate::metrics::count(&self.metrics.snapshot_bytes_received, bytes);
                emit(&self.logs, Level::Info, shard, msg.to, || {
                    let fields = vec![num("from", msg.from), num("bytes", bytes)];
                    ("snapshot received".into(), fields)
                });
                self.router.send(shard, Cmd::Snapshot { shard, msg, file });
                return Ok(());
            }
            // The whole frame decodes before any of it is routed: a corrupt frame is
            // refused as a unit.
            let (from_addr, msgs) = frame::decode_messages(&payload)?;
            if peer.as_ref().is_none_or(|(a, _)| a != from_addr) {
                peer = Some((from_addr.to_string(), self.metrics.peer(from_addr)));
            }
            if let Some((_, p)) = &peer {
                p.received(HEADER_LEN + payload.len());
            }
            self.learn(from_addr, &msgs);
            for (shard, msg) in msgs {
                if !self.router.deliver(shard, msg) {
                    self.count_dropped();
                }
            }
        }
    }

    /// learn records where the sending replicas live: at `addr`, the host that sent the
    /// frame. Only messages a replica originates name it in `from`; raft-rs forwards
    /// proposals, read requests and leader transfers with someone else's id there.
    fn learn(&self, addr: &str, msgs: &[Outgoing]) {
        if addr.is_empty() {
            return;
        }
        for (shard, m) in msgs {
            let forwarded = matches!(
                m.get_msg_type(),
                MessageType::MsgPropose
                    | MessageType::MsgReadIndex
                    | MessageType::MsgTransferLeader
            );
            if m.from == 0 || forwarded || !self.set_address(Some(*shard), m.from, addr) {
                continue;
            }
            // Best effort: a lost record is learned again from the next message.
            if let Some(store) = self.store.upgrade() {
                let _ = store.save_address(Some(*shard), m.from, addr);
            }
        }
    }
}

impl Network for Transport {
    fn send(&self, shard: u64, msgs: Vec<Message>) {
        self.send_messages(shard, msgs);
    }

    fn count_dropped(&self) {
        self.dropped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn set_address(&self, shard: Option<u64>, replica: u64, addr: &str) -> bool {
        self.addresses.set(shard, replica, addr)
    }
}
