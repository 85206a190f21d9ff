//! The host's metrics, read as one snapshot.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::host::Host;
use crate::metrics::{HistogramSnapshot, MetricsSnapshot, QueueDepths, APPLY_LAG};
use crate::router::Cmd;

impl Host {
    /// metrics returns what the host has counted since it opened (counters only grow), with
    /// its queue depths and its replicas' apply lag at this moment. Counting costs an atomic
    /// add where it happens; this call asks each step worker for its replicas' lag.
    pub async fn metrics(&self) -> Result<MetricsSnapshot> {
        self.check_open()?;
        let mut waits = Vec::new();
        for i in 0..self.router.workers() {
            let (reply, rx) = oneshot::channel();
            self.router.send_to(i, Cmd::Lag { reply });
            waits.push(rx);
        }
        let mut apply_lag = HistogramSnapshot::of(APPLY_LAG, []);
        for rx in waits {
            apply_lag.add(&rx.await.map_err(|_| Error::Closed)?);
        }
        let queues = QueueDepths {
            step_commands: self.router.queued() as u64,
            apply_tasks: self.applies.read().iter().map(|a| a.len() as u64).sum(),
            inbox_bytes: self.router.inbox_bytes() as u64,
            outgoing_bytes: self.transport.queued_bytes(),
            in_flight: self.in_flight.load(Ordering::Relaxed) as u64,
            applying_bytes: self.applying.load(Ordering::Relaxed),
        };
        Ok(self.metrics.snapshot(
            queues,
            apply_lag,
            self.replicas.read().len() as u64,
            self.quiesced_replicas() as u64,
            self.dropped_messages(),
        ))
    }
}
