//! Membership and leadership: the calls that change or inspect who serves a shard.

use std::sync::atomic::Ordering;
use std::time::Duration;

use raft::eraftpb::{ConfChange, ConfChangeType};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::event::Membership;
use crate::host::Host;
use crate::replica::ReplicaStatus;
use crate::replica::{ConfWaiter, ProposalId};
use crate::router::Cmd;

impl Host {
    async fn conf_change(
        &self,
        shard_id: u64,
        change: ConfChangeType,
        replica_id: u64,
        addr: Option<&str>,
        timeout: Duration,
    ) -> Result<Membership> {
        self.check_shard(shard_id)?;
        if replica_id == 0 {
            return Err(Error::InvalidArgument("replica id must be positive".into()));
        }
        if let Some(a) = addr {
            if a.is_empty() {
                return Err(Error::InvalidArgument("address must not be empty".into()));
            }
            self.record_address(Some(shard_id), replica_id, a)?;
        }
        let mut cc = ConfChange::default();
        cc.set_change_type(change);
        cc.node_id = replica_id;
        if let Some(a) = addr {
            cc.context = a.as_bytes().to_vec().into();
        }
        let (tx, rx) = oneshot::channel();
        let id = ProposalId {
            nonce: self.nonce,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        self.router.send(
            shard_id,
            Cmd::ConfChange {
                shard: shard_id,
                id,
                cc,
                waiter: ConfWaiter {
                    reply: tx,
                    deadline: Self::deadline(timeout),
                },
            },
        );
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// add_replica adds a voter reachable at `addr`; it also promotes a non-voting member.
    pub async fn add_replica(
        &self,
        shard_id: u64,
        replica_id: u64,
        addr: &str,
        timeout: Duration,
    ) -> Result<Membership> {
        self.conf_change(
            shard_id,
            ConfChangeType::AddNode,
            replica_id,
            Some(addr),
            timeout,
        )
        .await
    }

    /// add_non_voting adds a non-voting member (Raft learner) reachable at `addr`.
    pub async fn add_non_voting(
        &self,
        shard_id: u64,
        replica_id: u64,
        addr: &str,
        timeout: Duration,
    ) -> Result<Membership> {
        self.conf_change(
            shard_id,
            ConfChangeType::AddLearnerNode,
            replica_id,
            Some(addr),
            timeout,
        )
        .await
    }

    /// promote turns a non-voting member into a voter.
    pub async fn promote(
        &self,
        shard_id: u64,
        replica_id: u64,
        timeout: Duration,
    ) -> Result<Membership> {
        self.conf_change(shard_id, ConfChangeType::AddNode, replica_id, None, timeout)
            .await
    }

    /// remove_replica removes a member from the shard.
    pub async fn remove_replica(
        &self,
        shard_id: u64,
        replica_id: u64,
        timeout: Duration,
    ) -> Result<Membership> {
        self.conf_change(
            shard_id,
            ConfChangeType::RemoveNode,
            replica_id,
            None,
            timeout,
        )
        .await
    }

    /// status returns the local replica's view of the shard.
    pub async fn status(&self, shard_id: u64) -> Result<ReplicaStatus> {
        self.check_shard(shard_id)?;
        let (tx, rx) = oneshot::channel();
        self.router.send(
            shard_id,
            Cmd::Status {
                shard: shard_id,
                reply: tx,
            },
        );
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// membership returns the shard's current membership as known locally.
    pub async fn membership(&self, shard_id: u64) -> Result<Membership> {
        Ok(self.status(shard_id).await?.membership)
    }

    /// transfer_leader asks the current leader to hand leadership to `target`.
    pub async fn transfer_leader(&self, shard_id: u64, target: u64) -> Result<()> {
        self.check_shard(shard_id)?;
        let (tx, rx) = oneshot::channel();
        self.router.send(
            shard_id,
            Cmd::TransferLeader {
                shard: shard_id,
                to: target,
                reply: tx,
            },
        );
        rx.await.unwrap_or(Err(Error::Closed))
    }
}
