//! What a step worker does with committed entries: membership changes applied to the
//! replica, local proposers told, and the entries handed to the apply thread within its
//! limits.

use super::*;

impl Worker {
    /// handle_committed applies membership changes, tells local proposers their entry
    /// committed, and queues the entries for the apply thread (`after_sync`: only once this
    /// cycle's batch is on disk).
    pub(super) fn handle_committed(
        &mut self,
        r: &mut Replica,
        entries: Vec<Entry>,
        after_sync: bool,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        count(&self.metrics.entries_committed, entries.len() as u64);
        let mut waiters = Vec::new();
        for e in &entries {
            let id = ProposalId::decode(&e.context).filter(|id| id.nonce == self.nonce);
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    if let Some(w) = id.and_then(|id| r.proposals.remove(&id)) {
                        if let Some(c) = w.committed {
                            let _ = c.send(Ok(e.index));
                        }
                        if let Some(a) = w.applied {
                            waiters.push((e.index, a));
                        }
                    } else if let Some(p) = id.and_then(|id| r.expired.remove(&id)) {
                        // Its caller stopped waiting; its place goes once it is applied.
                        waiters.push((e.index, AppliedSink::place(p)));
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let res = self.apply_conf_change(r, e);
                    if let Some(w) = id.and_then(|id| r.confs.remove(&id)) {
                        r.confs_committed.push((e.index, w, res));
                    }
                }
            }
        }
        let bytes = entries
            .iter()
            .map(|e| (e.data.len() + e.context.len()) as u64)
            .sum();
        r.hand_over(entries[entries.len() - 1].index, bytes);
        let membership = entries
            .iter()
            .any(|e| e.get_entry_type() != EntryType::EntryNormal);
        let task = ApplyTask::Entries {
            shard: r.shard,
            incarnation: r.incarnation,
            entries,
            waiters,
        };
        // A membership change is recorded in this cycle's batch. A persistent state machine
        // that made an entry past it durable before the record was on disk would reopen past
        // a change its log never recorded, and never apply it: the entries go to the apply
        // thread only once the batch is written, and so does all that follows them.
        if after_sync || membership || self.defer_shards.contains(&r.shard) {
            self.defer_shards.insert(r.shard);
            self.after_sync.push(task);
        } else {
            self.hand(task);
        }
        Ok(())
    }

    /// hand gives the apply thread a task, behind any of the shard's tasks that wait for
    /// this cycle's write.
    pub(super) fn hand(&mut self, task: ApplyTask) {
        let shard = match &task {
            ApplyTask::Entries { shard, .. }
            | ApplyTask::Snapshot { shard, .. }
            | ApplyTask::Close { shard, .. } => Some(*shard),
            _ => None,
        };
        if shard.is_some_and(|s| self.defer_shards.contains(&s)) {
            self.after_sync.push(task);
        } else {
            self.send_apply(task);
        }
    }

    /// release hands the apply thread what waited for the batch, once it is on disk.
    pub(super) fn release(&mut self) {
        self.defer_shards.clear();
        for task in std::mem::take(&mut self.after_sync) {
            self.send_apply(task);
        }
    }

    pub(super) fn send_apply(&self, task: ApplyTask) {
        let membership = matches!(&task, ApplyTask::Entries { entries, .. }
            if entries.iter().any(|e| e.get_entry_type() != EntryType::EntryNormal));
        let _ = self.apply.send(task);
        if membership {
            // A crash test stops here: a membership change is with the apply thread.
            crate::failpoint::hit("membership-handed");
        }
    }

    pub(super) fn apply_conf_change(&mut self, r: &mut Replica, e: &Entry) -> Result<Membership> {
        let (cs, target, context) = if e.get_entry_type() == EntryType::EntryConfChange {
            let cc =
                ConfChange::parse_from_bytes(&e.data).map_err(|x| Error::Raft(x.to_string()))?;
            let cs = r
                .node
                .apply_conf_change(&cc)
                .map_err(|x| map_raft_error(x, r.shard))?;
            let removed = cc.get_change_type() == raft::eraftpb::ConfChangeType::RemoveNode;
            (
                cs,
                removed.then_some(cc.node_id),
                Some((cc.node_id, cc.context.to_vec())),
            )
        } else {
            let cc =
                ConfChangeV2::parse_from_bytes(&e.data).map_err(|x| Error::Raft(x.to_string()))?;
            let cs = r
                .node
                .apply_conf_change(&cc)
                .map_err(|x| map_raft_error(x, r.shard))?;
            (cs, None, None)
        };
        if let Some((node, ctx)) = context {
            if let Ok(addr) = String::from_utf8(ctx) {
                if !addr.is_empty() && self.transport.set_address(Some(r.shard), node, &addr) {
                    self.store.save_address(Some(r.shard), node, &addr)?;
                }
            }
        }
        r.node
            .mut_store()
            .record_conf_change(&mut self.batch, e.index, cs.clone())?;
        self.urgent = true;
        let membership = Membership::from_conf_state(&cs);
        self.emit(Event::MembershipChanged {
            shard_id: r.shard,
            replica_id: r.id,
            membership: membership.clone(),
        });
        if target == Some(r.id) {
            r.removed = true;
            self.emit(Event::ReplicaRemoved {
                shard_id: r.shard,
                replica_id: r.id,
                incarnation: r.incarnation,
            });
        }
        Ok(membership)
    }
}
