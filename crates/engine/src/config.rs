//! Host configuration.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::event::EventListener;
use crate::state_machine::BatchUpdater;

/// LinkFilter decides whether a message may be sent to a peer address. Returning `false`
/// drops the message as if the link were cut; tests use it to partition hosts.
pub type LinkFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// TlsFiles names the PEM files of the transport's mutual TLS: the cluster CA's
/// certificate(s), this host's certificate chain (which must name the host part of its
/// advertised address, an IP or a DNS name) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificates that sign every host certificate of the cluster.
    pub ca: PathBuf,
    /// This host's certificate chain.
    pub cert: PathBuf,
    /// This host's private key.
    pub key: PathBuf,
}

/// HostConfig configures one engine host.
#[derive(Clone)]
pub struct HostConfig {
    /// Identity of the cluster; frames carrying another id are refused.
    pub cluster_id: u64,
    /// Directory for the log store and snapshots.
    pub data_dir: PathBuf,
    /// Address the Raft transport listens on, e.g. `127.0.0.1:0` for an ephemeral port.
    pub raft_address: String,
    /// Address peers use to reach this host; defaults to the bound listen address.
    pub advertise_address: Option<String>,
    /// Length of one Raft tick in milliseconds.
    pub tick_ms: u64,
    /// Ticks without a leader before a replica starts an election.
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Number of step workers; replicas are sharded across them by shard id.
    pub workers: usize,
    /// Largest proposal payload accepted, in bytes.
    pub max_proposal_bytes: usize,
    /// Largest transport frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Take a snapshot every this many applied entries (0 disables automatic snapshots). Once
    /// a snapshot is over 1 MiB, the next also waits until the log since has grown to its size,
    /// and comes at the latest after 100 times this many entries (a restart knows the size of
    /// the snapshot it started from).
    pub snapshot_entries: u64,
    /// Entries kept in the log behind a snapshot, so slightly lagging followers need no snapshot.
    pub compaction_overhead: u64,
    /// Whether log writes are synced to disk before they are acknowledged. Only tests of
    /// throughput without durability should turn this off.
    pub fsync: bool,
    /// Mutual TLS on the transport; `None` sends plain TCP (trusted networks only).
    pub tls: Option<TlsFiles>,
    /// Receives leader, membership and failure events.
    pub event_listener: Option<EventListener>,
    /// Most proposals of this host that may be waiting for their result at once (queued,
    /// in Raft, or committed and not yet applied); more are refused with `Error::Busy`.
    pub max_in_flight: usize,
    /// Most proposals of one shard that may be waiting at once on this host.
    pub max_in_flight_per_shard: usize,
    /// Most bytes of uncommitted entries a leader accepts (raft-rs `max_uncommitted_size`);
    /// a proposal beyond it is dropped by Raft and fails with `Error::Dropped`.
    pub max_uncommitted_bytes: u64,
    /// Most bytes of committed entries a follower hands to its state machine ahead of what
    /// it has applied. Past it the follower stops taking entries from the leader until its
    /// state machine catches up (the leader goes on with the other replicas), so a slow
    /// state machine does not fill memory. Also the most one step hands over at once. A
    /// replica past it, leader or follower, takes no new proposals: local ones fail with
    /// `Error::Busy`, and a leader drops those forwarded to it (their callers time out).
    pub max_applying_bytes: u64,
    /// Most bytes of committed entries all of the host's replicas together hand to their
    /// state machines ahead of what they applied; past it the host's followers stop taking
    /// entries and its replicas take no new proposals, as with `max_applying_bytes`.
    pub max_applying_bytes_per_host: u64,
    /// Largest snapshot a follower accepts from a leader, in bytes.
    pub max_snapshot_bytes: u64,
    /// Most client sessions a shard keeps; registering one more evicts the least recently
    /// used (by log index, the same on every replica).
    pub max_sessions_per_shard: usize,
    /// Applies entries of many shards per call instead of each replica's `update`.
    pub batch_updater: Option<Arc<dyn BatchUpdater>>,
    /// Quiesce idle shards: a shard with no work for three election timeouts stops ticking
    /// and sending heartbeats on every replica until work arrives (a proposal, a read, a
    /// membership change, a leader transfer or a Raft message other than a heartbeat). A
    /// quiesced follower starts no election until it is woken, so the crash of a quiesced
    /// leader is noticed once the shard has work again. On by default.
    pub quiesce: bool,
    /// Receives the host's log records in batches (about every 100 ms), on an engine thread:
    /// raft-rs's own records and the engine's events (leader and membership changes, replicas
    /// started, stopped, failed or removed, transport and snapshot transfer errors, the host's
    /// failure). Records are queued without waiting; past a bound they are dropped and counted
    /// ([`crate::Host::log_records_dropped`]). `None` (the default) logs nothing.
    pub log_sink: Option<crate::log::LogSink>,
    /// The least severe level logged (default `Info`): records below it are never built.
    pub log_level: crate::log::Level,
}

impl HostConfig {
    /// new returns a configuration with defaults for the given cluster and directory.
    pub fn new(cluster_id: u64, data_dir: impl Into<PathBuf>) -> Self {
        HostConfig {
            cluster_id,
            data_dir: data_dir.into(),
            raft_address: "127.0.0.1:0".to_string(),
            advertise_address: None,
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            workers: 2,
            max_proposal_bytes: 8 << 20,
            max_frame_bytes: 64 << 20,
            snapshot_entries: 10_000,
            compaction_overhead: 1_000,
            fsync: true,
            max_in_flight: 65_536,
            max_in_flight_per_shard: 16_384,
            max_uncommitted_bytes: 64 << 20,
            max_applying_bytes: 64 << 20,
            max_applying_bytes_per_host: 256 << 20,
            max_snapshot_bytes: 16 << 30,
            max_sessions_per_shard: 4096,
            tls: None,
            event_listener: None,
            batch_updater: None,
            quiesce: true,
            log_sink: None,
            log_level: crate::log::Level::Info,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
        if self.tick_ms == 0 {
            return bad("tick_ms must be positive");
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return bad("election_ticks must exceed heartbeat_ticks, which must be positive");
        }
        if self.workers == 0 || self.workers > 64 {
            return bad("workers must be between 1 and 64");
        }
        if self.max_proposal_bytes == 0 || self.max_proposal_bytes + 4096 > self.max_frame_bytes {
            return bad("max_proposal_bytes must be positive and fit in a frame");
        }
        if self.max_in_flight == 0 || self.max_in_flight_per_shard == 0 {
            return bad("max_in_flight and max_in_flight_per_shard must be positive");
        }
        if self.max_sessions_per_shard == 0 {
            return bad("max_sessions_per_shard must be positive");
        }
        if self.max_applying_bytes == 0 || self.max_applying_bytes_per_host == 0 {
            return bad("max_applying_bytes and max_applying_bytes_per_host must be positive");
        }
        if self.max_uncommitted_bytes < self.max_proposal_bytes as u64 {
            return bad("max_uncommitted_bytes must be at least max_proposal_bytes");
        }
        Ok(())
    }
}

impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostConfig")
            .field("cluster_id", &self.cluster_id)
            .field("data_dir", &self.data_dir)
            .field("raft_address", &self.raft_address)
            .field("tick_ms", &self.tick_ms)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// StartMode says how a replica begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartMode {
    /// Create the shard with these initial voters (replica id → transport address). Every
    /// initial voter must be started with the same map.
    Bootstrap(Vec<(u64, String)>),
    /// Join a shard whose members have already added this replica through a membership
    /// change; the replica waits to be contacted by the leader.
    Join,
    /// Restart from what is on disk.
    Restart,
}
