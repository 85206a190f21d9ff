//! The plain objects that cross between JavaScript and the binding.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use zongzi_engine::Membership;

/// HostOptions configures a native host. Absent fields take the engine's defaults.
#[napi(object)]
pub struct HostOptions {
    /// Cluster identity; frames of other clusters are refused.
    pub cluster_id: f64,
    /// Directory for the log and snapshots.
    pub data_dir: String,
    /// Raft transport listen address, e.g. `127.0.0.1:0`.
    pub raft_address: Option<String>,
    /// Address peers use to reach this host.
    pub advertise_address: Option<String>,
    /// Milliseconds per Raft tick.
    pub tick_ms: Option<u32>,
    /// Election timeout in ticks.
    pub election_ticks: Option<u32>,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: Option<u32>,
    /// Number of step workers.
    pub workers: Option<u32>,
    /// Largest proposal in bytes.
    pub max_proposal_bytes: Option<u32>,
    /// Automatic snapshot interval in applied entries (0 disables).
    pub snapshot_entries: Option<f64>,
    /// Entries kept behind a snapshot.
    pub compaction_overhead: Option<f64>,
    /// Sync the log before acknowledging (default true).
    pub fsync: Option<bool>,
    /// Most proposals waiting for their result on this host (default 65,536).
    pub max_in_flight: Option<u32>,
    /// Most proposals of one shard waiting for their result on this host (default 16,384).
    pub max_in_flight_per_shard: Option<u32>,
    /// Most client sessions a shard keeps (default 4,096).
    pub max_sessions_per_shard: Option<u32>,
    /// Mutual TLS on the Raft transport; absent means plain TCP.
    pub tls: Option<TlsFiles>,
    /// Quiesce idle shards (default true).
    pub quiesce: Option<bool>,
    /// The least severe level handed to the `logs` callback, as pino names levels (default
    /// `info`; `silent` logs nothing).
    pub log_level: Option<String>,
}

/// TlsFiles names PEM files: the cluster CA's certificate, this host's certificate (which
/// must name the host part of its advertised address) and its private key.
#[napi(object)]
pub struct TlsFiles {
    /// The cluster CA's certificate.
    pub ca: String,
    /// This host's certificate chain.
    pub cert: String,
    /// This host's private key.
    pub key: String,
}

/// Pem is a certificate and its private key, PEM encoded.
#[napi(object)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key.
    pub key: String,
}

/// Voter is one initial member of a shard.
#[napi(object)]
pub struct Voter {
    /// Replica id.
    pub replica_id: f64,
    /// Transport address of its host.
    pub address: String,
}

/// ApplyResult is a state machine's result for one entry.
#[napi(object)]
pub struct ApplyResult {
    /// Number chosen by the state machine.
    pub value: f64,
    /// Bytes chosen by the state machine.
    pub data: Buffer,
}

/// MembershipInfo lists a shard's members.
#[napi(object)]
pub struct MembershipInfo {
    /// Voting replica ids.
    pub voters: Vec<f64>,
    /// Non-voting replica ids.
    pub non_voters: Vec<f64>,
}

/// ReplicaStatus is the local view of a shard.
#[napi(object)]
pub struct ReplicaStatus {
    /// Shard id.
    pub shard_id: f64,
    /// Local replica id.
    pub replica_id: f64,
    /// Leader replica id, 0 if unknown.
    pub leader_id: f64,
    /// Current term.
    pub term: f64,
    /// Commit index known locally.
    pub commit: f64,
    /// Index applied locally.
    pub applied: f64,
    /// Current members.
    pub membership: MembershipInfo,
    /// Whether the local replica has quiesced.
    pub quiesced: bool,
}

/// StoredReplica is a replica found on disk.
#[napi(object)]
pub struct StoredReplica {
    /// Shard id.
    pub shard_id: f64,
    /// Replica id.
    pub replica_id: f64,
}

pub(crate) fn membership(m: Membership) -> MembershipInfo {
    MembershipInfo {
        voters: m.voters.into_iter().map(|v| v as f64).collect(),
        non_voters: m.non_voters.into_iter().map(|v| v as f64).collect(),
    }
}
