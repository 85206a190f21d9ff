//! NativeHost: the engine's `Host` as a JavaScript class. Each method checks its arguments,
//! calls the engine and maps the error; nothing else happens here.

use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, Float64Array, Int32Array, Uint32Array};
use napi::threadsafe_function::{ErrorStrategy, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsFunction};
use napi_derive::napi;
use parking_lot::Mutex;
use zongzi_engine::{Completion, Completions, Event, Host, HostConfig, StartMode};

use crate::boundary::{call_to_js, event_to_js, results_to_js, Finished};
use crate::error::{
    answer, closed, id, internal, invalid, timeout, to_js, Answer, Error, Result, INTERNAL,
};
use crate::machines::{Bridge, Call, JsStateMachine, Reply};
use crate::types::{
    membership, ApplyResult, HostOptions, MembershipInfo, ReplicaStatus, StoredReplica, Voter,
};

/// The thread-safe function that delivers finished proposals to JavaScript.
type ResultsFn = ThreadsafeFunction<Finished, ErrorStrategy::Fatal>;

/// Change is a membership change requested from JavaScript.
enum Change {
    AddVoter(String),
    AddNonVoting(String),
    Promote,
    Remove,
}

/// NativeHost owns one engine host and the bridge to the JavaScript state machines.
#[napi]
pub struct NativeHost {
    /// Where tagged proposals report their results; drained by one task into batches.
    completions: Completions,
    /// Delivers finished proposals to JavaScript.
    results: Mutex<Option<ResultsFn>>,
    /// Taken on close, so that the engine (and its directory lock) goes away right then
    /// rather than when the JavaScript object is collected.
    host: parking_lot::RwLock<Option<Arc<Host>>>,
    bridge: Arc<Bridge>,
    events: Mutex<Option<ThreadsafeFunction<Event, ErrorStrategy::Fatal>>>,
}

#[napi]
impl NativeHost {
    /// open starts a host. `apply` receives state machine calls; `events` receives events;
    /// `logs`, when given, receives arrays of log records (`{ level, msg, source, shard,
    /// replica, fields }`) about every 100 ms. None keeps the Node.js event loop alive.
    #[napi(factory, catch_unwind)]
    pub fn open(
        env: Env,
        options: HostOptions,
        apply: JsFunction,
        events: JsFunction,
        results: JsFunction,
        logs: Option<JsFunction>,
    ) -> Result<NativeHost> {
        let cluster = id(options.cluster_id, "clusterId")?;
        if options.data_dir.is_empty() {
            return Err(invalid("dataDir must not be empty"));
        }
        let mut cfg = HostConfig::new(cluster, &options.data_dir);
        if let Some(a) = options.raft_address {
            cfg.raft_address = a;
        }
        cfg.advertise_address = options.advertise_address;
        cfg.tls = options.tls.map(|t| zongzi_engine::TlsFiles {
            ca: t.ca.into(),
            cert: t.cert.into(),
            key: t.key.into(),
        });
        if let Some(v) = options.tick_ms {
            cfg.tick_ms = v as u64;
        }
        if let Some(v) = options.election_ticks {
            cfg.election_ticks = v as usize;
        }
        if let Some(v) = options.heartbeat_ticks {
            cfg.heartbeat_ticks = v as usize;
        }
        if let Some(v) = options.workers {
            cfg.workers = v as usize;
        }
        if let Some(v) = options.max_proposal_bytes {
            cfg.max_proposal_bytes = v as usize;
        }
        if let Some(v) = options.snapshot_entries {
            cfg.snapshot_entries = id(v, "snapshotEntries")?;
        }
        if let Some(v) = options.compaction_overhead {
            cfg.compaction_overhead = id(v, "compactionOverhead")?;
        }
        if let Some(v) = options.fsync {
            cfg.fsync = v;
        }
        if let Some(v) = options.max_in_flight {
            cfg.max_in_flight = v as usize;
        }
        if let Some(v) = options.max_in_flight_per_shard {
            cfg.max_in_flight_per_shard = v as usize;
        }
        if let Some(v) = options.max_sessions_per_shard {
            cfg.max_sessions_per_shard = v as usize;
        }
        if let Some(v) = options.quiesce {
            cfg.quiesce = v;
        }
        let level = crate::logs::level_of(options.log_level.as_deref().unwrap_or("info"))?;
        if let (Some(f), Some(level)) = (logs, level) {
            let mut tsfn: ThreadsafeFunction<Vec<zongzi_engine::LogRecord>, ErrorStrategy::Fatal> =
                f.create_threadsafe_function(0, crate::logs::records_to_js)
                    .map_err(internal)?;
            // Weak: logging never keeps the process alive, and the engine's copy goes with
            // the engine when the host closes.
            tsfn.unref(&env).map_err(internal)?;
            cfg.log_level = level;
            cfg.log_sink = Some(Arc::new(move |batch| {
                tsfn.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
            }));
        }
        let mut ev: ThreadsafeFunction<Event, ErrorStrategy::Fatal> = events
            .create_threadsafe_function(0, event_to_js)
            .map_err(internal)?;
        ev.unref(&env).map_err(internal)?;
        let sink = ev.clone();
        cfg.event_listener = Some(Arc::new(move |e| {
            sink.call(e, ThreadsafeFunctionCallMode::NonBlocking);
        }));
        let mut tsfn: ThreadsafeFunction<(u64, Call), ErrorStrategy::Fatal> = apply
            .create_threadsafe_function(0, call_to_js)
            .map_err(internal)?;
        tsfn.unref(&env).map_err(internal)?;
        let tmp = PathBuf::from(&options.data_dir).join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| invalid(format!("dataDir: {e}")))?;
        let bridge = Arc::new(Bridge::new(tsfn, tmp));
        cfg.batch_updater = Some(bridge.clone());
        let host = Host::open(cfg).map_err(to_js)?;
        let mut results: ThreadsafeFunction<_, ErrorStrategy::Fatal> = results
            .create_threadsafe_function(0, results_to_js)
            .map_err(internal)?;
        results.unref(&env).map_err(internal)?;
        let (completions, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = results.clone();
        // One task moves finished proposals to JavaScript, as many per call as are ready.
        napi::bindgen_prelude::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < 8192 {
                    match rx.try_recv() {
                        Ok(x) => batch.push(x),
                        Err(_) => break,
                    }
                }
                sink.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
            }
        });
        Ok(NativeHost {
            completions,
            results: Mutex::new(Some(results)),
            host: parking_lot::RwLock::new(Some(Arc::new(host))),
            bridge,
            events: Mutex::new(Some(ev)),
        })
    }

    pub(crate) fn host(&self) -> Result<Arc<Host>> {
        self.host.read().clone().ok_or_else(closed)
    }

    /// log_records_dropped counts the log records dropped because the buffer was full.
    pub(crate) fn log_records_dropped(&self) -> u64 {
        self.host().map_or(0, |h| h.log_records_dropped())
    }

    /// reloadTls reads the TLS files again; new connections use the new certificates.
    #[napi(catch_unwind)]
    pub fn reload_tls(&self) -> Result<()> {
        self.host()?.reload_tls().map_err(to_js)
    }

    /// raftAddress is the Raft transport address of this host.
    #[napi(getter)]
    pub fn raft_address(&self) -> Result<String> {
        Ok(self.host()?.raft_address().to_string())
    }

    /// storedReplicas lists replicas with data on disk.
    #[napi(catch_unwind)]
    pub fn stored_replicas(&self) -> Result<Vec<StoredReplica>> {
        Ok(self
            .host()?
            .stored_replicas()
            .into_iter()
            .map(|(s, r)| StoredReplica {
                shard_id: s as f64,
                replica_id: r as f64,
            })
            .collect())
    }

    /// setAddress records where a replica can be reached.
    #[napi(catch_unwind)]
    pub fn set_address(&self, replica_id: f64, address: String) -> Result<()> {
        self.host()?
            .set_address(id(replica_id, "replicaId")?, &address)
            .map_err(to_js)
    }

    /// startReplica starts a replica; `mode` is `bootstrap`, `join` or `restart`. `applied` is
    /// what the state machine's `open()` reported; `incarnation` is a number no earlier start
    /// of the shard on this host used, and every state machine call of this start carries it.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn start_replica(
        &self,
        shard_id: f64,
        replica_id: f64,
        mode: String,
        voters: Option<Vec<Voter>>,
        applied: f64,
        incarnation: f64,
    ) -> napi::Result<Answer<()>> {
        Ok(answer(async move {
            let shard = id(shard_id, "shardId")?;
            let replica = id(replica_id, "replicaId")?;
            let applied = id(applied, "applied")?;
            let incarnation = id(incarnation, "incarnation")?;
            let mode = match mode.as_str() {
                "bootstrap" => {
                    let voters = voters.ok_or_else(|| invalid("bootstrap needs voters"))?;
                    let mut v = Vec::with_capacity(voters.len());
                    for x in voters {
                        v.push((id(x.replica_id, "voter replicaId")?, x.address));
                    }
                    StartMode::Bootstrap(v)
                }
                "join" => StartMode::Join,
                "restart" => StartMode::Restart,
                other => return Err(invalid(format!("unknown start mode {other:?}"))),
            };
            let sm = Box::new(JsStateMachine {
                shard,
                incarnation,
                applied,
                bridge: self.bridge.clone(),
            });
            let host = self.host()?.clone();
            // Starting may recover a snapshot through JavaScript, so it must not run on the
            // JavaScript thread.
            napi::tokio::task::spawn_blocking(move || {
                host.start_replica_as(shard, replica, mode, sm, incarnation)
            })
            .await
            .map_err(|e| Error::new(INTERNAL, format!("start failed: {e}")))?
            .map_err(to_js)
        })
        .await)
    }

    /// stopReplica stops the local replica of a shard, keeping its data.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn stop_replica(&self, shard_id: f64) -> napi::Result<Answer<()>> {
        Ok(answer(async move {
            self.host()?
                .stop_replica(id(shard_id, "shardId")?)
                .await
                .map_err(to_js)
        })
        .await)
    }

    /// removeData deletes a stopped replica's data.
    #[napi(catch_unwind)]
    pub fn remove_data(&self, shard_id: f64) -> Result<()> {
        self.host()?
            .remove_data(id(shard_id, "shardId")?)
            .map_err(to_js)
    }

    /// propose resolves with the state machine's result once applied locally.
    #[napi(ts_return_type = "Promise<ApplyResult>")]
    pub async fn propose(
        &self,
        shard_id: f64,
        data: Buffer,
        timeout_ms: f64,
    ) -> napi::Result<Answer<ApplyResult>> {
        Ok(answer(async move {
            let shard = id(shard_id, "shardId")?;
            let t = timeout(timeout_ms)?;
            let r: zongzi_engine::ApplyResult = self
                .host()?
                .propose(shard, data.to_vec(), t)
                .await
                .map_err(to_js)?;
            Ok(ApplyResult {
                value: r.value as f64,
                data: r.data.into(),
            })
        })
        .await)
    }

    /// proposeMany submits proposals without waiting; each result is delivered to the
    /// `results` callback under its tag, in batches. `sessions`, when given, holds three
    /// numbers per proposal: client id (0: no session), series and responded-to series.
    #[napi(catch_unwind)]
    pub fn propose_many(
        &self,
        shard_ids: Float64Array,
        tags: Float64Array,
        lengths: Uint32Array,
        data: Buffer,
        timeout_ms: f64,
        sessions: Option<Float64Array>,
    ) -> Result<()> {
        let total: u64 = lengths.iter().map(|l| *l as u64).sum();
        if shard_ids.len() != tags.len()
            || tags.len() != lengths.len()
            || total != data.len() as u64
            || sessions.as_ref().is_some_and(|s| s.len() != 3 * tags.len())
        {
            return Err(invalid(
                "shardIds, tags, lengths and sessions must match, and lengths must sum to data",
            ));
        }
        let t = timeout(timeout_ms)?;
        let host = self.host()?;
        let mut at = 0usize;
        for (i, ((s, tag), len)) in shard_ids
            .iter()
            .zip(tags.iter())
            .zip(lengths.iter())
            .enumerate()
        {
            let tag = id(*tag, "tag")?;
            let bytes = data[at..at + *len as usize].to_vec();
            at += *len as usize;
            let session = sessions.as_ref().map(|s| session_at(s, i)).transpose();
            match id(*s, "shardId").and_then(|shard| Ok((shard, session?.flatten()))) {
                Ok((shard, session)) => {
                    host.propose_tagged(shard, bytes, session, t, tag, &self.completions)
                }
                Err(e) => {
                    let _ = self.completions.send(Completion::unplaced(
                        tag,
                        Err(zongzi_engine::Error::InvalidArgument(e.reason.clone())),
                    ));
                }
            }
        }
        Ok(())
    }

    /// setActive keeps the Node.js event loop alive while proposals are outstanding.
    #[napi(catch_unwind)]
    pub fn set_active(&self, env: Env, active: bool) -> Result<()> {
        if let Some(r) = self.results.lock().as_mut() {
            if active {
                r.refer(&env).map_err(internal)?;
            } else {
                r.unref(&env).map_err(internal)?;
            }
        }
        Ok(())
    }

    /// cutLinks drops this host's outgoing Raft messages to `addresses`, as if the links were
    /// cut (fault injection for tests); an empty list mends every link.
    #[napi(catch_unwind)]
    pub fn cut_links(&self, addresses: Vec<String>) -> Result<()> {
        let host = self.host()?;
        if addresses.is_empty() {
            host.set_link_filter(None);
        } else {
            let cut: std::collections::HashSet<String> = addresses.into_iter().collect();
            host.set_link_filter(Some(Arc::new(move |a: &str| !cut.contains(a))));
        }
        Ok(())
    }

    /// session registers (`register` true) or ends a client's session with a shard.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn session(
        &self,
        shard_id: f64,
        client_id: f64,
        register: bool,
        timeout_ms: f64,
    ) -> napi::Result<Answer<()>> {
        Ok(answer(async move {
            let shard = id(shard_id, "shardId")?;
            let client = id(client_id, "clientId")?;
            let t = timeout(timeout_ms)?;
            let host = self.host()?;
            let done = match register {
                true => host.register_session(shard, client, t).await,
                false => host.unregister_session(shard, client, t).await,
            };
            done.map_err(to_js)
        })
        .await)
    }

    /// commit resolves with the entry's index once committed.
    #[napi(ts_return_type = "Promise<number>")]
    pub async fn commit(
        &self,
        shard_id: f64,
        data: Buffer,
        timeout_ms: f64,
    ) -> napi::Result<Answer<f64>> {
        Ok(answer(async move {
            let shard = id(shard_id, "shardId")?;
            let t = timeout(timeout_ms)?;
            let i = self
                .host()?
                .commit(shard, data.to_vec(), t)
                .await
                .map_err(to_js)?;
            Ok(i as f64)
        })
        .await)
    }

    /// readIndex resolves once the local replica applied everything committed before it.
    #[napi(ts_return_type = "Promise<number>")]
    pub async fn read_index(&self, shard_id: f64, timeout_ms: f64) -> napi::Result<Answer<f64>> {
        Ok(answer(async move {
            let shard = id(shard_id, "shardId")?;
            let t = timeout(timeout_ms)?;
            Ok(self.host()?.read_index(shard, t).await.map_err(to_js)? as f64)
        })
        .await)
    }

    /// addReplica adds (or promotes to) a voter.
    #[napi(ts_return_type = "Promise<MembershipInfo>")]
    pub async fn add_replica(
        &self,
        shard_id: f64,
        replica_id: f64,
        address: String,
        timeout_ms: f64,
    ) -> napi::Result<Answer<MembershipInfo>> {
        Ok(answer(async move {
            self.change(Change::AddVoter(address), shard_id, replica_id, timeout_ms)
                .await
        })
        .await)
    }

    /// addNonVoting adds a non-voting member.
    #[napi(ts_return_type = "Promise<MembershipInfo>")]
    pub async fn add_non_voting(
        &self,
        shard_id: f64,
        replica_id: f64,
        address: String,
        timeout_ms: f64,
    ) -> napi::Result<Answer<MembershipInfo>> {
        Ok(answer(async move {
            self.change(
                Change::AddNonVoting(address),
                shard_id,
                replica_id,
                timeout_ms,
            )
            .await
        })
        .await)
    }

    /// promote turns a non-voting member into a voter.
    #[napi(ts_return_type = "Promise<MembershipInfo>")]
    pub async fn promote(
        &self,
        shard_id: f64,
        replica_id: f64,
        timeout_ms: f64,
    ) -> napi::Result<Answer<MembershipInfo>> {
        Ok(answer(async move {
            self.change(Change::Promote, shard_id, replica_id, timeout_ms)
                .await
        })
        .await)
    }

    /// removeReplica removes a member.
    #[napi(ts_return_type = "Promise<MembershipInfo>")]
    pub async fn remove_replica(
        &self,
        shard_id: f64,
        replica_id: f64,
        timeout_ms: f64,
    ) -> napi::Result<Answer<MembershipInfo>> {
        Ok(answer(async move {
            self.change(Change::Remove, shard_id, replica_id, timeout_ms)
                .await
        })
        .await)
    }

    async fn change(
        &self,
        change: Change,
        shard_id: f64,
        replica_id: f64,
        timeout_ms: f64,
    ) -> Result<MembershipInfo> {
        let (s, r, t) = (
            id(shard_id, "shardId")?,
            id(replica_id, "replicaId")?,
            timeout(timeout_ms)?,
        );
        let host = self.host()?;
        let m = match change {
            Change::AddVoter(a) => host.add_replica(s, r, &a, t).await,
            Change::AddNonVoting(a) => host.add_non_voting(s, r, &a, t).await,
            Change::Promote => host.promote(s, r, t).await,
            Change::Remove => host.remove_replica(s, r, t).await,
        };
        Ok(membership(m.map_err(to_js)?))
    }

    /// status returns the local view of a shard.
    #[napi(ts_return_type = "Promise<ReplicaStatus>")]
    pub async fn status(&self, shard_id: f64) -> napi::Result<Answer<ReplicaStatus>> {
        Ok(answer(async move {
            let st = self
                .host()?
                .status(id(shard_id, "shardId")?)
                .await
                .map_err(to_js)?;
            Ok(ReplicaStatus {
                shard_id: st.shard_id as f64,
                replica_id: st.replica_id as f64,
                leader_id: st.leader_id as f64,
                term: st.term as f64,
                commit: st.commit as f64,
                applied: st.applied as f64,
                membership: membership(st.membership),
                quiesced: st.quiesced,
            })
        })
        .await)
    }

    /// transferLeader asks the leader to hand over to `target`.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn transfer_leader(&self, shard_id: f64, target: f64) -> napi::Result<Answer<()>> {
        Ok(answer(async move {
            let (s, t) = (id(shard_id, "shardId")?, id(target, "target")?);
            self.host()?.transfer_leader(s, t).await.map_err(to_js)
        })
        .await)
    }

    /// requestSnapshot takes a snapshot now; resolves with its index.
    #[napi(ts_return_type = "Promise<number>")]
    pub async fn request_snapshot(&self, shard_id: f64) -> napi::Result<Answer<f64>> {
        Ok(answer(async move {
            Ok(self
                .host()?
                .request_snapshot(id(shard_id, "shardId")?)
                .await
                .map_err(to_js)? as f64)
        })
        .await)
    }

    /// complete answers a snapshot call: `error` set means it failed.
    #[napi(catch_unwind)]
    pub fn complete(&self, token: f64, error: Option<String>) -> Result<bool> {
        let token = id(token, "token")?;
        let reply = match error {
            Some(e) => Reply::Failed(e),
            None => Reply::Done,
        };
        Ok(self.bridge.complete(token, reply))
    }

    /// completeUpdate answers an update call with one outcome per shard item, in order,
    /// packed: `counts[i]` results for item i, or -1 and the next of `errors`; result j has
    /// `values[j]` and the next `lengths[j]` bytes of `data`.
    #[napi(catch_unwind)]
    pub fn complete_update(
        &self,
        token: f64,
        counts: Int32Array,
        errors: Vec<String>,
        values: Float64Array,
        lengths: Uint32Array,
        data: Buffer,
    ) -> Result<bool> {
        let token = id(token, "token")?;
        let bad = || invalid("malformed update outcome");
        let mut outcomes = Vec::with_capacity(counts.len());
        let (mut next_error, mut j, mut at) = (0usize, 0usize, 0usize);
        for &count in counts.iter() {
            if count < 0 {
                outcomes.push(Err(errors.get(next_error).cloned().ok_or_else(bad)?));
                next_error += 1;
                continue;
            }
            let mut results = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let len = *lengths.get(j).ok_or_else(bad)? as usize;
                let value = *values.get(j).ok_or_else(bad)?;
                let bytes = data.get(at..at + len).ok_or_else(bad)?;
                results.push(zongzi_engine::ApplyResult {
                    value: value.max(0.0) as u64,
                    data: bytes.to_vec(),
                });
                j += 1;
                at += len;
            }
            outcomes.push(Ok(results));
        }
        Ok(self.bridge.complete(token, Reply::Outcomes(outcomes)))
    }

    /// close stops the host and releases everything that refers to JavaScript. Idempotent.
    #[napi(catch_unwind)]
    pub fn close(&self) -> Result<()> {
        self.bridge.close();
        if let Some(h) = self.host.write().take() {
            h.close();
        }
        self.events.lock().take();
        self.results.lock().take();
        Ok(())
    }

    /// closed reports whether close() was called.
    #[napi(getter)]
    pub fn is_closed(&self) -> bool {
        self.events.lock().is_none()
    }
}

/// session_at reads the `i`th proposal's session from `sessions` (three numbers each): none
/// when its client id is 0.
fn session_at(sessions: &Float64Array, i: usize) -> Result<Option<zongzi_engine::Session>> {
    let client_id = id(sessions[3 * i], "session client id")?;
    if client_id == 0 {
        return Ok(None);
    }
    let series = id(sessions[3 * i + 1], "session series")?;
    if series == 0 {
        return Err(invalid("a session's series starts at 1"));
    }
    Ok(Some(zongzi_engine::Session {
        client_id,
        series,
        responded_to: id(sessions[3 * i + 2], "session respondedTo")?,
    }))
}
