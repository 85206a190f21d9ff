//! The host's metrics as one JavaScript object, read in one call.

use napi_derive::napi;

use crate::error::{answer, to_js, Answer};
use crate::host::NativeHost;

/// Histogram is a histogram at one moment. `counts[i]` counts the values at most
/// `bounds[i]` (and above `bounds[i - 1]`), not cumulatively; the last count is of those
/// above every bound.
#[napi(object)]
pub struct Histogram {
    /// Upper bounds of the buckets, ascending.
    pub bounds: Vec<f64>,
    /// Observations per bucket, one more than `bounds`.
    pub counts: Vec<f64>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

/// PeerTraffic is the Raft traffic with one peer host since this host opened.
#[napi(object)]
pub struct PeerTraffic {
    /// The peer's Raft address.
    pub address: String,
    /// Bytes of message frames sent to it.
    pub bytes_sent: f64,
    /// Message frames sent to it.
    pub frames_sent: f64,
    /// Bytes of message frames received from it.
    pub bytes_received: f64,
    /// Message frames received from it.
    pub frames_received: f64,
}

/// QueueDepths is how much waits at each stage of the host.
#[napi(object)]
pub struct QueueDepths {
    /// Commands waiting for the step workers.
    pub step_commands: f64,
    /// Tasks waiting for the apply threads.
    pub apply_tasks: f64,
    /// Bytes of received Raft messages not yet stepped.
    pub inbox_bytes: f64,
    /// Bytes of Raft messages queued for peers.
    pub outgoing_bytes: f64,
    /// Proposals and reads waiting for their result.
    pub in_flight: f64,
    /// Bytes of committed entries handed to state machines and not applied.
    pub applying_bytes: f64,
}

/// HostMetrics is what a host counted since it opened, with its queues and apply lag now.
#[napi(object)]
pub struct HostMetrics {
    /// Proposals accepted.
    pub proposals: f64,
    /// Proposals and reads refused as busy (ERR_BUSY).
    pub proposals_refused: f64,
    /// Entries the local replicas saw committed.
    pub entries_committed: f64,
    /// Entries the local state machines applied.
    pub entries_applied: f64,
    /// Times a local replica learned of a new leader.
    pub leader_changes: f64,
    /// Snapshots sent.
    pub snapshots_sent: f64,
    /// Bytes of snapshots sent.
    pub snapshot_bytes_sent: f64,
    /// Snapshots received.
    pub snapshots_received: f64,
    /// Bytes of snapshots received.
    pub snapshot_bytes_received: f64,
    /// Received Raft messages refused.
    pub messages_dropped: f64,
    /// Log records dropped because the logger's buffer was full.
    pub log_records_dropped: f64,
    /// Seconds per synced log write.
    pub fsync_seconds: Histogram,
    /// Entries per synced log write.
    pub entries_per_fsync: Histogram,
    /// Over the running replicas: entries committed and not yet applied.
    pub apply_lag: Histogram,
    /// Traffic per peer host.
    pub peers: Vec<PeerTraffic>,
    /// Queue depths.
    pub queues: QueueDepths,
    /// Replicas running.
    pub replicas: f64,
    /// Replicas quiesced.
    pub quiesced_replicas: f64,
}

fn histogram(h: zongzi_engine::HistogramSnapshot) -> Histogram {
    Histogram {
        bounds: h.bounds,
        counts: h.counts.into_iter().map(|c| c as f64).collect(),
        sum: h.sum,
        count: h.count as f64,
    }
}

/// to_js converts the engine's snapshot.
pub(crate) fn to_object(
    m: zongzi_engine::MetricsSnapshot,
    log_records_dropped: u64,
) -> HostMetrics {
    let q = m.queues;
    HostMetrics {
        proposals: m.proposals as f64,
        proposals_refused: m.proposals_refused as f64,
        entries_committed: m.entries_committed as f64,
        entries_applied: m.entries_applied as f64,
        leader_changes: m.leader_changes as f64,
        snapshots_sent: m.snapshots_sent as f64,
        snapshot_bytes_sent: m.snapshot_bytes_sent as f64,
        snapshots_received: m.snapshots_received as f64,
        snapshot_bytes_received: m.snapshot_bytes_received as f64,
        messages_dropped: m.messages_dropped as f64,
        log_records_dropped: log_records_dropped as f64,
        fsync_seconds: histogram(m.fsync_seconds),
        entries_per_fsync: histogram(m.entries_per_fsync),
        apply_lag: histogram(m.apply_lag),
        peers: m
            .peers
            .into_iter()
            .map(|p| PeerTraffic {
                address: p.address,
                bytes_sent: p.bytes_sent as f64,
                frames_sent: p.frames_sent as f64,
                bytes_received: p.bytes_received as f64,
                frames_received: p.frames_received as f64,
            })
            .collect(),
        queues: QueueDepths {
            step_commands: q.step_commands as f64,
            apply_tasks: q.apply_tasks as f64,
            inbox_bytes: q.inbox_bytes as f64,
            outgoing_bytes: q.outgoing_bytes as f64,
            in_flight: q.in_flight as f64,
            applying_bytes: q.applying_bytes as f64,
        },
        replicas: m.replicas as f64,
        quiesced_replicas: m.quiesced_replicas as f64,
    }
}

#[napi]
impl NativeHost {
    /// metrics returns the host's counters, histograms, queue depths and apply lag.
    #[napi(ts_return_type = "Promise<HostMetrics>")]
    pub async fn metrics(&self) -> napi::Result<Answer<HostMetrics>> {
        Ok(answer(async move {
            let m = self.host()?.metrics().await.map_err(to_js)?;
            Ok(to_object(m, self.log_records_dropped()))
        })
        .await)
    }
}
