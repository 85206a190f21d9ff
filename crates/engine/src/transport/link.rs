//! PeerLink: the message connection to one remote host.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::frame::{encode_messages, header, HEADER_LEN, MAGIC_MESSAGES, MESSAGE_OVERHEAD};
use super::Outgoing;
use crate::log::Level;
use crate::router::{Cmd, Router};
use raft::eraftpb::Message;

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Longest a frame write may take before the connection counts as broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// MAX_QUEUED_BYTES is the most a peer's queue holds (its messages' encoded size); more is
/// dropped and reported unreachable, so a slow or stuck peer costs bounded memory.
pub(super) const MAX_QUEUED_BYTES: usize = 64 << 20;

/// Queue is the sending end of a peer link's queue, bounded in bytes.
pub(super) struct Queue {
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl Queue {
    pub(super) fn new(
        tx: mpsc::UnboundedSender<Outgoing>,
        queued: Arc<AtomicUsize>,
        limit: usize,
    ) -> Self {
        Queue { tx, queued, limit }
    }

    /// queued is the size of what waits in the queue.
    pub(super) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// push queues a message; false when the queue is full or the link gone.
    pub(super) fn push(&self, shard: u64, m: Message) -> bool {
        let size = m.compute_size() as usize;
        if self.queued.fetch_add(size, Ordering::AcqRel) + size > self.limit {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        if self.tx.send((shard, m)).is_err() {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// PeerLink owns the connection to one remote host and frames whatever is queued for it:
/// every message waiting when it wakes goes out in one frame.
pub(super) struct PeerLink {
    pub(super) tls: Option<Arc<super::tls::Tls>>,
    pub(super) addr: String,
    pub(super) local_addr: String,
    pub(super) cluster_id: u64,
    pub(super) max_frame: usize,
    pub(super) router: Arc<Router>,
    /// Bytes in the queue; the link takes off what it takes out.
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) counters: Arc<crate::metrics::PeerCounters>,
    pub(super) logs: Option<Arc<crate::log::Logs>>,
}

impl PeerLink {
    /// run sends until every sender of `rx` is gone. Messages that cannot go (no
    /// connection, a failed write, too large) are reported to Raft as unreachable.
    pub(super) async fn run(self, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
        let mut conn: Option<super::tls::Conn> = None;
        let mut backoff = Duration::from_millis(20);
        let mut retry_at = Instant::now();
        let mut payload = Vec::new();
        let mut frame = Vec::new();
        // Room for messages in a frame: the limit less the header and the sender's address.
        let room = self
            .max_frame
            .saturating_sub(HEADER_LEN + 2 + self.local_addr.len());
        let mut carry: Option<Outgoing> = None;
        // Whether the peer could not be reached, since it last could.
        let mut down = false;
        loop {
            // A message counts in the queue until it is taken out of the channel (a carried
            // one was taken already).
            let first = match carry.take() {
                Some(m) => m,
                None => match rx.recv().await {
                    Some(m) => {
                        let size = m.1.compute_size() as usize;
                        self.queued.fetch_sub(size, Ordering::AcqRel);
                        m
                    }
                    None => break,
                },
            };
            let first_size = first.1.compute_size() as usize + MESSAGE_OVERHEAD;
            if first_size > room {
                // No frame the peer accepts can carry it; Raft sends it again, or smaller.
                self.report(std::slice::from_ref(&first));
                continue;
            }
            let mut batch = vec![first];
            let mut size = first_size;
            while let Ok(m) = rx.try_recv() {
                let s = m.1.compute_size() as usize + MESSAGE_OVERHEAD;
                self.queued
                    .fetch_sub(s - MESSAGE_OVERHEAD, Ordering::AcqRel);
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
                match super::dial(&self.addr, self.tls.as_deref()).await {
                    Ok(s) => {
                        conn = Some(s);
                        backoff = Duration::from_millis(20);
                        if std::mem::take(&mut down) {
                            self.log(Level::Info, "peer reachable again", None);
                        }
                    }
                    Err(e) => {
                        // Once per outage, not per attempt.
                        if !std::mem::replace(&mut down, true) {
                            self.log(Level::Warn, "peer unreachable", Some(&e));
                        }
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        self.report(&batch);
                        continue;
                    }
                }
            }
            encode_messages(&mut payload, &self.local_addr, &batch);
            frame.clear();
            frame.extend_from_slice(&header(MAGIC_MESSAGES, self.cluster_id, &payload));
            frame.extend_from_slice(&payload);
            let s = conn.as_mut().unwrap();
            let written = tokio::time::timeout(WRITE_TIMEOUT, s.write_all(&frame)).await;
            if matches!(written, Ok(Ok(()))) {
                self.counters.sent(frame.len());
            } else {
                conn = None;
                self.report(&batch);
            }
        }
    }

    /// log logs an event of this link.
    fn log(&self, level: Level, msg: &str, error: Option<&std::io::Error>) {
        crate::log::emit(&self.logs, level, 0, 0, || {
            let mut fields = vec![crate::log::field("peer", &self.addr)];
            if let Some(e) = error {
                fields.push(crate::log::field("error", e));
            }
            (msg.to_string(), fields)
        });
    }

    /// report tells each sending replica, once per destination, that it was unreachable.
    fn report(&self, batch: &[Outgoing]) {
        let seen: HashSet<(u64, u64)> = batch.iter().map(|(s, m)| (*s, m.to)).collect();
        for (shard, to) in seen {
            self.router.send(shard, Cmd::Unreachable { shard, to });
        }
    }
}
