//! Offsets committed inside a transaction (TxnOffsetCommit): held apart
//! from the group's committed offsets until the transaction ends. A COMMIT
//! marker makes them the group's offsets; an ABORT drops them. While they
//! wait, OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT
//! for their partitions.
//!
//! Their records go to `__consumer_offsets` at once, in a transactional
//! batch of the producer; the broker's replay applies them only when the
//! marker that follows them in that partition is a COMMIT.

use crate::coordinator::{check_member, GroupCoordinator};
use crate::offsets::{CommitRequest, CommittedOffset};
use crate::records::{self, RecordKey};
use crate::{GroupError, OffsetsRecord};

/// One offset waiting for its transaction.
#[derive(Debug, Clone)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: CommittedOffset,
}

impl GroupCoordinator {
    /// TxnOffsetCommit for `producer_id`: checks the member (when the
    /// request names one, v3+) and holds the offsets until the transaction
    /// ends. Returns the records to write in the producer's transactional
    /// batch.
    pub fn txn_commit(
        &self,
        producer_id: i64,
        req: &CommitRequest,
        now: i64,
    ) -> Result<Vec<OffsetsRecord>, GroupError> {
        self.check_loaded()?;
        crate::coordinator::check_group_id(&req.group_id)?;
        let mut inner = self.lock();
        if let Some(group) = inner.groups.get(&req.group_id) {
            if !req.member_id.is_empty() {
                check_member(group, &req.member_id, req.group_instance_id.as_deref())?;
            }
            if req.generation_id >= 0 && req.generation_id != group.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if req.generation_id >= 0 {
            return Err(GroupError::IllegalGeneration);
        }
        let mut out = Vec::with_capacity(req.entries.len());
        let pending = inner.pending_txn.entry(producer_id).or_default();
        for e in &req.entries {
            let (value, record) = crate::offsets::offset_record(&req.group_id, e, now);
            out.push(record);
            pending.retain(|p| {
                !(p.group == req.group_id && p.topic == e.topic && p.partition == e.partition)
            });
            pending.push(PendingOffset {
                group: req.group_id.clone(),
                topic: e.topic.clone(),
                partition: e.partition,
                offset: CommittedOffset {
                    offset: value.offset,
                    leader_epoch: value.leader_epoch,
                    metadata: value.metadata,
                    commit_timestamp: now,
                },
            });
        }
        Ok(out)
    }

    /// The marker of `producer_id`'s transaction was written to
    /// `__consumer_offsets`: its offsets become committed (or are dropped).
    pub fn end_txn_offsets(&self, producer_id: i64, commit: bool, now: i64) {
        let mut inner = self.lock();
        let Some(pending) = inner.pending_txn.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for p in pending {
            let group = inner
                .groups
                .entry(p.group.clone())
                .or_insert_with(|| crate::group::Group::new(&p.group, now));
            group.offsets.insert((p.topic, p.partition), p.offset);
        }
    }

    /// Replay of a transactional offset record whose transaction had not
    /// ended when the broker stopped: it waits for its marker again.
    pub fn replay_pending(&self, producer_id: i64, key: &[u8], value: Option<&[u8]>, now: i64) {
        let Ok(RecordKey::Offset {
            group,
            topic,
            partition,
        }) = records::decode_key(key)
        else {
            return;
        };
        let Some(Ok(v)) = value.map(records::decode_offset_value) else {
            return;
        };
        let mut inner = self.lock();
        let pending = inner.pending_txn.entry(producer_id).or_default();
        pending.retain(|p| !(p.group == group && p.topic == topic && p.partition == partition));
        pending.push(PendingOffset {
            group,
            topic,
            partition,
            offset: CommittedOffset {
                offset: v.offset,
                leader_epoch: v.leader_epoch,
                metadata: v.metadata,
                commit_timestamp: now,
            },
        });
    }

    /// Whether a transaction holds an uncommitted offset for this
    /// partition of `group`.
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.lock()
            .pending_txn
            .values()
            .flatten()
            .any(|p| p.group == group && p.topic == topic && p.partition == partition)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::offsets::{CommitRequest, OffsetCommitEntry};
    use crate::{GroupConfig, GroupCoordinator};

    fn request(offset: i64) -> CommitRequest {
        CommitRequest {
            group_id: "g".to_string(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            entries: vec![OffsetCommitEntry {
                topic: "t".to_string(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: None,
            }],
        }
    }

    fn committed(c: &GroupCoordinator) -> Option<i64> {
        let asked = vec![("t".to_string(), vec![0])];
        let found = c.fetch_offsets("g", Some(&asked)).unwrap();
        found[0].1[0].1.as_ref().map(|o| o.offset)
    }

    #[test]
    fn transactional_offsets_appear_only_after_commit() {
        let c = GroupCoordinator::new(GroupConfig::default());
        c.finish_loading(0);
        let records = c.txn_commit(9, &request(5), 0).unwrap();
        assert_eq!(records.len(), 1);
        assert!(c.has_pending_offset("g", "t", 0));
        assert_eq!(committed(&c), None);
        c.end_txn_offsets(9, true, 0);
        assert!(!c.has_pending_offset("g", "t", 0));
        assert_eq!(committed(&c), Some(5));
    }

    #[test]
    fn aborted_transactional_offsets_are_dropped() {
        let c = GroupCoordinator::new(GroupConfig::default());
        c.finish_loading(0);
        c.txn_commit(9, &request(5), 0).unwrap();
        c.end_txn_offsets(9, false, 0);
        assert!(!c.has_pending_offset("g", "t", 0));
        assert_eq!(committed(&c), None);
    }
}
