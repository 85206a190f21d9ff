//! PeerLink: the message connection to one remote host.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::frame::{encode_messages, header, HEADER_LEN, MAGIC_MESSAGES, MESSAGE_OVERHEAD};
use super::Outgoing;
use crate::router::{Cmd, Router};

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Longest a frame write may take before the connection counts as broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// PeerLink owns the connection to one remote host and frames whatever is queued for it:
/// every message waiting when it wakes goes out in one frame.
pub(super) struct PeerLink {
    pub(super) tls: Option<Arc<super::tls::Tls>>,
    pub(super) addr: String,
    pub(super) local_addr: String,
    pub(super) cluster_id: u64,
    pub(super) max_frame: usize,
    pub(super) router: Arc<Router>,
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
        loop {
            let first = match carry.take() {
                Some(m) => m,
                None => match rx.recv().await {
                    Some(m) => m,
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
                    }
                    _ => {
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
