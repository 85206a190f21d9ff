//! Proposals and reads: the calls that carry data through a shard.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::host::{Host, Proposal};
use crate::replica::{
    AppliedSink, Completion, Completions, Permit, ProposalId, ProposalWaiter, ReadWaiter,
};
use crate::router::Cmd;
use crate::session::{Session, REGISTER, UNREGISTER};
use crate::state_machine::ApplyResult;

impl Host {
    /// propose_handle submits `data` and returns channels for commit and apply.
    pub fn propose_handle(
        &self,
        shard_id: u64,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Proposal> {
        self.handle(shard_id, data, None, timeout)
    }

    fn handle(
        &self,
        shard_id: u64,
        data: Vec<u8>,
        session: Option<Session>,
        timeout: Duration,
    ) -> Result<Proposal> {
        if let Some(s) = &session {
            s.check()?;
        }
        let permit = self.admit(shard_id)?;
        self.check_size(&data)?;
        let (ctx, crx) = oneshot::channel();
        let (atx, arx) = oneshot::channel();
        self.submit(
            shard_id,
            data,
            session,
            Some(ctx),
            AppliedSink::oneshot(atx, Some(permit)),
            timeout,
        );
        Ok(Proposal {
            committed: crx,
            applied: arx,
        })
    }

    /// propose_tagged submits `data`, in `session` if given; its result (or error) arrives on
    /// `sink` as `(tag, result)` once the local replica applied it. Nothing is awaited here, so
    /// a caller can submit many proposals and collect their results in batches.
    pub fn propose_tagged(
        &self,
        shard_id: u64,
        data: Vec<u8>,
        session: Option<Session>,
        timeout: Duration,
        tag: u64,
        sink: &Completions,
    ) {
        let admitted = session
            .as_ref()
            .map_or(Ok(()), Session::check)
            .and_then(|_| self.admit(shard_id));
        let permit = match admitted.and_then(|p| self.check_size(&data).map(|_| p)) {
            Ok(p) => p,
            Err(e) => {
                let _ = sink.send(Completion::unplaced(tag, Err(e)));
                return;
            }
        };
        self.submit(
            shard_id,
            data,
            session,
            None,
            AppliedSink::tagged(tag, sink.clone(), Some(permit)),
            timeout,
        );
    }

    /// submit hands a proposal to the worker that owns the shard.
    fn submit(
        &self,
        shard_id: u64,
        data: Vec<u8>,
        session: Option<Session>,
        committed: Option<oneshot::Sender<Result<u64>>>,
        applied: AppliedSink,
        timeout: Duration,
    ) {
        let id = ProposalId {
            nonce: self.nonce,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        crate::metrics::count(&self.metrics.proposals, 1);
        self.router.send(
            shard_id,
            Cmd::Propose {
                shard: shard_id,
                id,
                data,
                session,
                waiter: ProposalWaiter {
                    committed,
                    applied: Some(applied),
                    deadline: Self::deadline(timeout),
                },
            },
        );
    }

    /// admit takes the call's place in the in-flight limits (admission control: past them,
    /// or with the replica's or the host's state machines too far behind, a call is refused
    /// at once with `Busy`, and memory stays bounded).
    pub(crate) fn admit(&self, shard_id: u64) -> Result<Permit> {
        self.refused(self.admit_within(shard_id))
    }

    /// refused counts a call refused as busy.
    fn refused<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(Error::Busy(_)) = &r {
            crate::metrics::count(&self.metrics.proposals_refused, 1);
        }
        r
    }

    fn admit_within(&self, shard_id: u64) -> Result<Permit> {
        self.check_open()?;
        let (shard, applying) = match self.replicas.read().get(&shard_id) {
            Some(r) => (r.in_flight.clone(), r.applying.load(Ordering::Acquire)),
            None => return Err(Error::ShardNotFound(shard_id)),
        };
        let host = self.applying.load(Ordering::Acquire);
        if applying > self.config.max_applying_bytes
            || (applying > 0 && host > self.config.max_applying_bytes_per_host)
        {
            return Err(Error::Busy(format!(
                "the state machines are behind: {applying} bytes of shard {shard_id} \
                 and {host} of this host wait to be applied"
            )));
        }
        Permit::acquire(
            &self.in_flight,
            self.config.max_in_flight,
            &shard,
            self.config.max_in_flight_per_shard,
        )
    }

    /// read_place takes a read's place in the in-flight limits (a state machine that is
    /// behind does not refuse reads: they add nothing to apply).
    fn read_place(&self, shard_id: u64) -> Result<Permit> {
        let shard = match self.replicas.read().get(&shard_id) {
            Some(r) => r.in_flight.clone(),
            None => return Err(Error::ShardNotFound(shard_id)),
        };
        Permit::acquire(
            &self.in_flight,
            self.config.max_in_flight,
            &shard,
            self.config.max_in_flight_per_shard,
        )
    }

    fn check_size(&self, data: &[u8]) -> Result<()> {
        if data.len() > self.config.max_proposal_bytes {
            return Err(Error::PayloadTooLarge {
                size: data.len(),
                limit: self.config.max_proposal_bytes,
            });
        }
        Ok(())
    }

    /// propose submits `data` and resolves with the state machine's result once the local
    /// replica applied it.
    pub async fn propose(
        &self,
        shard_id: u64,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<ApplyResult> {
        let p = self.propose_handle(shard_id, data, timeout)?;
        p.applied.await.unwrap_or(Err(Error::Closed))
    }

    /// propose_in submits `data` as series `session.series` of a client session and resolves
    /// with the state machine's result once the local replica applied it. Sent again with the
    /// same session and series, it applies once and answers the first result; a session the
    /// shard no longer has fails with [`crate::Error::SessionExpired`], applying nothing.
    pub async fn propose_in(
        &self,
        shard_id: u64,
        session: Session,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<ApplyResult> {
        let p = self.handle(shard_id, data, Some(session), timeout)?;
        p.applied.await.unwrap_or(Err(Error::Closed))
    }

    /// register_session registers client `client_id`'s session with a shard (again: no
    /// change). Its proposals then number their series from 1.
    pub async fn register_session(
        &self,
        shard_id: u64,
        client_id: u64,
        timeout: Duration,
    ) -> Result<()> {
        self.session_entry(shard_id, client_id, REGISTER, timeout)
            .await
    }

    /// unregister_session ends a client's session with a shard.
    pub async fn unregister_session(
        &self,
        shard_id: u64,
        client_id: u64,
        timeout: Duration,
    ) -> Result<()> {
        self.session_entry(shard_id, client_id, UNREGISTER, timeout)
            .await
    }

    /// session_entry proposes the entry that registers or ends a session (`series`).
    async fn session_entry(
        &self,
        shard_id: u64,
        client_id: u64,
        series: u64,
        timeout: Duration,
    ) -> Result<()> {
        // A registration carries the shard's session cap, so that every replica evicts by
        // the log, whatever each host is configured with.
        let cap = match series {
            REGISTER => self.config.max_sessions_per_shard as u64,
            _ => 0,
        };
        let s = Session {
            client_id,
            series,
            responded_to: cap,
        };
        self.propose_in(shard_id, s, Vec::new(), timeout)
            .await
            .map(|_| ())
    }

    /// commit submits `data` and resolves with its log index once it is committed.
    pub async fn commit(&self, shard_id: u64, data: Vec<u8>, timeout: Duration) -> Result<u64> {
        let p = self.propose_handle(shard_id, data, timeout)?;
        p.committed.await.unwrap_or(Err(Error::Closed))
    }

    /// read_index resolves once the local replica has applied everything committed before
    /// the call (a linearizable barrier; works on followers and non-voting replicas).
    pub async fn read_index(&self, shard_id: u64, timeout: Duration) -> Result<u64> {
        self.check_shard(shard_id)?;
        // A read waits in the same limits as proposals: refused with `Busy` past them.
        let place = self.refused(self.read_place(shard_id))?;
        let (tx, rx) = oneshot::channel();
        self.router.send(
            shard_id,
            Cmd::ReadIndex {
                shard: shard_id,
                waiter: ReadWaiter {
                    reply: tx,
                    deadline: Self::deadline(timeout),
                    _place: Some(place),
                },
            },
        );
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// read is a linearizable read: a read index barrier, then a local query.
    pub async fn read(&self, shard_id: u64, query: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        self.read_index(shard_id, timeout).await?;
        self.stale_read(shard_id, query)
    }

    /// stale_read looks the query up in the local state machine without a barrier.
    pub fn stale_read(&self, shard_id: u64, query: &[u8]) -> Result<Vec<u8>> {
        self.check_open()?;
        let sm = self
            .replicas
            .read()
            .get(&shard_id)
            .map(|r| r.sm.clone())
            .ok_or(Error::ShardNotFound(shard_id))?;
        let out = sm.read().query(query).map_err(|e| Error::StateMachine(e.0));
        out
    }
}
