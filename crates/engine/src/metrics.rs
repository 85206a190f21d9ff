//! Metrics: counters and histograms the host keeps as it works, read as one snapshot.
//!
//! Everything on a hot path is a relaxed atomic add; the only lock is the table of peers,
//! taken when a link or a connection first meets a peer's address, never per message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Bounds of the fsync latency histogram, in seconds.
const FSYNC_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Bounds of the entries-per-fsync histogram.
const ENTRIES_PER_FSYNC: &[f64] = &[
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];
/// Bounds of the apply lag histogram, in entries committed and not yet applied.
pub(crate) const APPLY_LAG: &[f64] = &[0.0, 1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0];

/// Histogram counts observations into fixed buckets.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, and one for what exceeds them all.
    counts: Box<[AtomicU64]>,
    /// Sum of the observations, in units of `1 / scale`.
    sum: AtomicU64,
    scale: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64], scale: f64) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
        }
    }

    /// observe counts one value.
    pub(crate) fn observe(&self, v: f64) {
        let i = bucket(self.bounds, v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum
            .fetch_add((v * self.scale).max(0.0) as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            count: counts.iter().sum(),
            counts,
            sum: self.sum.load(Ordering::Relaxed) as f64 / self.scale,
        }
    }
}

/// bucket is the index of the bucket `v` falls in: the first bound at or above it.
fn bucket(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

/// HistogramSnapshot is a histogram at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the buckets, ascending.
    pub bounds: Vec<f64>,
    /// Observations per bucket, not cumulative: `counts[i]` is the number of values at most
    /// `bounds[i]` and above `bounds[i - 1]`; the last (`counts[bounds.len()]`) counts those
    /// above every bound.
    pub counts: Vec<u64>,
    /// Sum of all observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl HistogramSnapshot {
    /// of counts values into buckets of `bounds` (a histogram over a set, such as replicas).
    pub(crate) fn of(bounds: &'static [f64], values: impl IntoIterator<Item = f64>) -> Self {
        let mut counts = vec![0u64; bounds.len() + 1];
        let (mut sum, mut count) = (0.0, 0);
        for v in values {
            counts[bucket(bounds, v)] += 1;
            sum += v;
            count += 1;
        }
        HistogramSnapshot {
            bounds: bounds.to_vec(),
            counts,
            sum,
            count,
        }
    }

    /// add adds another histogram of the same bounds.
    pub(crate) fn add(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// PeerCounters count the Raft traffic with one peer host.
#[derive(Default)]
pub(crate) struct PeerCounters {
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) frames_received: AtomicU64,
}

impl PeerCounters {
    /// sent counts one frame of `bytes` sent.
    pub(crate) fn sent(&self, bytes: usize) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// received counts one frame of `bytes` received.
    pub(crate) fn received(&self, bytes: usize) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Metrics is what a host counts.
pub(crate) struct Metrics {
    pub(crate) proposals: AtomicU64,
    pub(crate) proposals_refused: AtomicU64,
    pub(crate) entries_committed: AtomicU64,
    pub(crate) entries_applied: AtomicU64,
    pub(crate) leader_changes: AtomicU64,
    pub(crate) snapshots_sent: AtomicU64,
    pub(crate) snapshot_bytes_sent: AtomicU64,
    pub(crate) snapshots_received: AtomicU64,
    pub(crate) snapshot_bytes_received: AtomicU64,
    pub(crate) fsync_seconds: Histogram,
    pub(crate) entries_per_fsync: Histogram,
    peers: Mutex<HashMap<String, Arc<PeerCounters>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            proposals: Default::default(),
            proposals_refused: Default::default(),
            entries_committed: Default::default(),
            entries_applied: Default::default(),
            leader_changes: Default::default(),
            snapshots_sent: Default::default(),
            snapshot_bytes_sent: Default::default(),
            snapshots_received: Default::default(),
            snapshot_bytes_received: Default::default(),
            fsync_seconds: Histogram::new(FSYNC_SECONDS, 1e9),
            entries_per_fsync: Histogram::new(ENTRIES_PER_FSYNC, 1.0),
            peers: Default::default(),
        }
    }
}

/// count adds `n` to a counter.
pub(crate) fn count(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// peer returns the counters of the peer at `addr`, made on first use. Callers keep the
    /// counters they get rather than asking per message.
    pub(crate) fn peer(&self, addr: &str) -> Arc<PeerCounters> {
        self.peers
            .lock()
            .entry(addr.to_string())
            .or_default()
            .clone()
    }

    /// snapshot reads the counters; `queues`, `apply_lag` and the replica counts come from
    /// the host.
    pub(crate) fn snapshot(
        &self,
        queues: QueueDepths,
        apply_lag: HistogramSnapshot,
        replicas: u64,
        quiesced_replicas: u64,
        messages_dropped: u64,
    ) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut peers: Vec<PeerSnapshot> = self
            .peers
            .lock()
            .iter()
            .map(|(addr, p)| PeerSnapshot {
                address: addr.clone(),
                bytes_sent: load(&p.bytes_sent),
                frames_sent: load(&p.frames_sent),
                bytes_received: load(&p.bytes_received),
                frames_received: load(&p.frames_received),
            })
            .collect();
        peers.sort_by(|a, b| a.address.cmp(&b.address));
        MetricsSnapshot {
            proposals: load(&self.proposals),
            proposals_refused: load(&self.proposals_refused),
            entries_committed: load(&self.entries_committed),
            entries_applied: load(&self.entries_applied),
            leader_changes: load(&self.leader_changes),
            snapshots_sent: load(&self.snapshots_sent),
            snapshot_bytes_sent: load(&self.snapshot_bytes_sent),
            snapshots_received: load(&self.snapshots_received),
            snapshot_bytes_received: load(&self.snapshot_bytes_received),
            messages_dropped,
            fsync_seconds: self.fsync_seconds.snapshot(),
            entries_per_fsync: self.entries_per_fsync.snapshot(),
            apply_lag,
            peers,
            queues,
            replicas,
            quiesced_replicas,
        }
    }
}

/// PeerSnapshot is the Raft traffic with one peer host (by its transport address) since the
/// host opened: message frames only, not snapshot streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// The peer's Raft transport address.
    pub address: String,
    /// Bytes of frames sent to it.
    pub bytes_sent: u64,
    /// Frames sent to it.
    pub frames_sent: u64,
    /// Bytes of frames received from it.
    pub bytes_received: u64,
    /// Frames received from it.
    pub frames_received: u64,
}

/// QueueDepths is how much waits at each stage of the host, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueDepths {
    /// Commands waiting for the step workers.
    pub step_commands: u64,
    /// Tasks waiting for the apply threads.
    pub apply_tasks: u64,
    /// Bytes of received Raft messages not yet stepped.
    pub inbox_bytes: u64,
    /// Bytes of Raft messages queued for peers and not yet sent.
    pub outgoing_bytes: u64,
    /// Proposals and reads waiting for their result on this host.
    pub in_flight: u64,
    /// Bytes of committed entries handed to state machines and not yet applied.
    pub applying_bytes: u64,
}

/// MetricsSnapshot is what a host has counted since it opened, with its queues and its
/// replicas' apply lag at the moment it was taken. Counters only grow.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Proposals this host accepted from its callers (membership changes and reads aside).
    pub proposals: u64,
    /// Proposals and reads refused at once because the host was busy (`Error::Busy`).
    pub proposals_refused: u64,
    /// Entries the local replicas saw committed.
    pub entries_committed: u64,
    /// Entries the local state machines applied.
    pub entries_applied: u64,
    /// Times a local replica learned of a new leader.
    pub leader_changes: u64,
    /// Snapshots sent to followers, and their bytes.
    pub snapshots_sent: u64,
    /// Bytes of the snapshots sent.
    pub snapshot_bytes_sent: u64,
    /// Snapshots received from leaders, and their bytes.
    pub snapshots_received: u64,
    /// Bytes of the snapshots received.
    pub snapshot_bytes_received: u64,
    /// Received Raft messages refused (not for a local replica, or the inbox full).
    pub messages_dropped: u64,
    /// Time each synced log write took, in seconds.
    pub fsync_seconds: HistogramSnapshot,
    /// Entries each synced log write carried.
    pub entries_per_fsync: HistogramSnapshot,
    /// Over the running replicas: entries committed and not yet applied.
    pub apply_lag: HistogramSnapshot,
    /// Raft traffic per peer host.
    pub peers: Vec<PeerSnapshot>,
    /// Queue depths.
    pub queues: QueueDepths,
    /// Replicas running on this host.
    pub replicas: u64,
    /// Of them, those quiesced.
    pub quiesced_replicas: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_falls_in_the_first_bucket_whose_bound_holds_it() {
        let h = Histogram::new(&[1.0, 10.0], 1.0);
        for v in [0.0, 1.0, 2.0, 10.0, 11.0, 1e9] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 2, 2]);
        assert_eq!(s.count, 6);
        let over = HistogramSnapshot::of(APPLY_LAG, [0.0, 5.0, 1e6]);
        assert_eq!(over.counts[0], 1);
        assert_eq!(over.counts[2], 1);
        assert_eq!(over.counts[APPLY_LAG.len()], 1);
    }
}
