//! What a step worker does with each command the router hands it: starting and stopping
//! replicas, proposals, reads, membership calls, messages from peers, status and snapshots.

use super::*;

impl Worker {
    /// handle takes one command into the replica it is for.
    pub(crate) fn handle(&mut self, cmd: Cmd) {
        if let Cmd::Lag { reply } = cmd {
            let _ = reply.send(self.apply_lag());
            return;
        }
        let Some(shard) = cmd.shard() else {
            return;
        };
        if let Cmd::Start(r) = cmd {
            // The host checks this before sending; otherwise keep the running one.
            if let std::collections::hash_map::Entry::Vacant(e) = self.replicas.entry(shard) {
                let mut r = *r;
                r.quiet.count = self.quiesced.clone();
                e.insert(r);
                self.dirty.insert(shard);
            }
            return;
        }
        if let Cmd::Stop { done, .. } = cmd {
            // Records of this shard waiting in the batch go to disk now, so that nothing of
            // it is written after its data has been removed.
            if let Err(e) = self.write_batch() {
                let _ = done.send(Err(Error::HostFailed(e.to_string())));
                self.fault.trip(e.to_string());
                return;
            }
            match self.replicas.remove(&shard) {
                Some(mut r) => {
                    r.fail_all(|| Error::Closed);
                    self.closing.begin(shard, r.incarnation);
                    // The stop completes once the apply thread has worked through what this
                    // incarnation was handed: only then may another start of the shard run.
                    let _ = self.apply.send(ApplyTask::Close {
                        shard,
                        incarnation: r.incarnation,
                        done: Some(done),
                    });
                }
                None => {
                    let _ = done.send(Err(Error::ShardNotFound(shard)));
                }
            }
            return;
        }
        if let Cmd::ApplyFailed {
            error, incarnation, ..
        } = &cmd
        {
            let current = self.replicas.get(&shard).map(|r| r.incarnation);
            if current != Some(*incarnation) {
                return; // about a replica of this shard that has stopped since
            }
            if let Some(mut r) = self.replicas.remove(&shard) {
                self.running.write().remove(&shard);
                let msg = error.clone();
                r.fail_all(|| Error::StateMachine(msg.clone()));
                self.closing.begin(shard, r.incarnation);
                let _ = self.apply.send(ApplyTask::Close {
                    shard,
                    incarnation: r.incarnation,
                    done: None,
                });
                self.emit(Event::ReplicaFailed {
                    shard_id: shard,
                    replica_id: r.id,
                    incarnation: r.incarnation,
                    error: error.clone(),
                });
            }
            return;
        }
        let Some(r) = self.replicas.get_mut(&shard) else {
            cmd.reject(|| Error::ShardNotFound(shard));
            return;
        };
        self.dirty.insert(shard);
        if quiesce::on_command(r, &cmd, self.ticks, self.quiesce_grace) {
            return; // a quiesce notice, handled
        }
        match cmd {
            Cmd::Propose {
                id,
                data,
                session,
                waiter,
                ..
            } => {
                r.proposals.insert(id, waiter);
                r.queued.push((id, data, session));
            }
            Cmd::ConfChange { id, cc, waiter, .. } => {
                // raft-rs turns a change proposed while another is pending into an empty
                // entry; say so now instead of letting the caller time out.
                if r.node.raft.state == raft::StateRole::Leader && r.node.raft.has_pending_conf() {
                    let _ = waiter.reply.send(Err(Error::Dropped(
                        "another membership change of this shard is in progress".into(),
                    )));
                } else if let Err(e) = r.node.propose_conf_change(id.encode(), cc) {
                    let _ = waiter.reply.send(Err(map_raft_error(e, shard)));
                } else {
                    r.confs.insert(id, waiter);
                }
            }
            Cmd::ReadIndex { waiter, .. } => r.reads_queued.push(waiter),
            Cmd::Raft { msg, .. } => {
                if !admissible(r, &msg) {
                    self.transport.count_dropped();
                    return;
                }
                // A replica whose state machine is too far behind takes no new entries
                // from followers either (they are retried by their callers).
                if msg.get_msg_type() == MessageType::MsgPropose
                    && r.saturated(self.max_applying, self.max_applying_host)
                {
                    return;
                }
                // Errors here are stale or foreign messages; raft-rs already ignores them.
                let _ = r.node.step(msg);
            }
            Cmd::Snapshot { msg, file, .. } => {
                let index = msg.get_snapshot().get_metadata().index;
                let admitted = admissible(r, &msg);
                if admitted {
                    let _ = r.node.step(msg);
                } else {
                    self.transport.count_dropped();
                }
                // The file goes into place only once Raft has taken the snapshot; a snapshot
                // it refused (stale, or forged) leaves nothing behind.
                let taken = admitted
                    && r.node
                        .raft
                        .raft_log
                        .unstable
                        .snapshot
                        .as_ref()
                        .is_some_and(|s| s.get_metadata().index == index);
                if let Some(f) = file {
                    let placed = match taken {
                        true => crate::snapshot::place(&self.root, shard, index, &f),
                        false => std::fs::remove_file(&f).map_err(Into::into),
                    };
                    if let (true, Err(e)) = (taken, placed) {
                        // Raft expects the file the snapshot names: without it the replica
                        // cannot recover, so the disk error stops the host.
                        self.fault.trip(format!("placing a received snapshot: {e}"));
                    }
                }
            }
            Cmd::Unreachable { to, .. } => r.node.report_unreachable(to),
            Cmd::SnapshotStatus { to, ok, .. } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                r.node.report_snapshot(to, status);
            }
            Cmd::Applied {
                index, incarnation, ..
            } if incarnation == r.incarnation => r.on_applied(index),
            Cmd::SnapshotTaken {
                index,
                term,
                incarnation,
                ..
            } if incarnation == r.incarnation => {
                let mut meta = raft::eraftpb::SnapshotMetadata {
                    index,
                    term,
                    ..Default::default()
                };
                meta.set_conf_state(r.node.store().conf_state_at(index));
                let overhead = self.compaction_overhead;
                // Compaction only records metadata and trims the log; an error here is a
                // log store error, which the next write reports as a host failure.
                let _ = r.node.mut_store().compact(&mut self.batch, meta, overhead);
                self.urgent = true;
                self.prune.push((shard, index));
                self.compacted = true;
            }
            Cmd::TransferLeader { to, reply, .. } => {
                r.node.transfer_leader(to);
                let _ = reply.send(Ok(()));
            }
            Cmd::Status { reply, .. } => {
                let raft = &r.node.raft;
                let _ = reply.send(Ok(ReplicaStatus {
                    shard_id: shard,
                    replica_id: r.id,
                    leader_id: raft.leader_id,
                    term: raft.term,
                    commit: raft.raft_log.committed,
                    applied: r.applied,
                    applying_bytes: r.applying,
                    membership: Membership::from_conf_state(&r.node.store().conf_state()),
                    quiesced: r.quiet.since().is_some(),
                }));
            }
            _ => {}
        }
    }
}
