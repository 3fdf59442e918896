//! The offsets half of the coordinator: commits, fetches, deletions, group
//! listing and deletion, retention, and the replay of `__consumer_offsets`.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::coordinator::{check_member, GroupCoordinator};
use crate::group::{Group, GroupState, Member};
use crate::records::{self, OffsetValue, RecordKey};
use crate::{GroupConfig, GroupError, GroupSummary, OffsetsRecord, CONSUMER_PROTOCOL_TYPE};

/// A committed offset as the group holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct OffsetCommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub group_id: String,
    /// -1 with an empty member id: a simple consumer outside any membership.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub entries: Vec<OffsetCommitEntry>,
}

impl GroupCoordinator {
    /// Validates a commit against the group's membership and applies it;
    /// returns the records that make it durable.
    pub fn commit(&self, req: &CommitRequest, now: i64) -> Result<Vec<OffsetsRecord>, GroupError> {
        self.check_loaded()?;
        crate::coordinator::check_group_id(&req.group_id)?;
        let mut inner = self.lock();
        if !inner.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                return Err(GroupError::IllegalGeneration);
            }
            inner
                .groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now));
        }
        let group = inner
            .groups
            .get_mut(&req.group_id)
            .ok_or(GroupError::CoordinatorNotAvailable)?;
        if group.is(GroupState::Dead) {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let simple = req.generation_id < 0 && group.is(GroupState::Empty);
        if let Some(cg) = group.consumer.as_deref_mut() {
            crate::consumer::check_commit(cg, &req.member_id, req.generation_id, now)?;
        } else if !simple {
            check_member(group, &req.member_id, req.group_instance_id.as_deref())?;
            if req.generation_id != group.generation {
                return Err(GroupError::IllegalGeneration);
            }
            if group.is(GroupState::CompletingRebalance) {
                return Err(GroupError::RebalanceInProgress);
            }
            if let Some(member) = group.members.get_mut(&req.member_id) {
                member.last_seen = now;
            }
        }
        let mut out = Vec::with_capacity(req.entries.len());
        for e in &req.entries {
            let (value, record) = offset_record(&req.group_id, e, now);
            out.push(record);
            group.offsets.insert(
                (e.topic.clone(), e.partition),
                CommittedOffset {
                    offset: value.offset,
                    leader_epoch: value.leader_epoch,
                    metadata: value.metadata,
                    commit_timestamp: now,
                },
            );
        }
        Ok(out)
    }

    /// Committed offsets of `group`: of the partitions asked for (`None`
    /// for a partition without one), or all of them when `topics` is None.
    #[allow(clippy::type_complexity)]
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>, GroupError> {
        self.check_loaded()?;
        let inner = self.lock();
        let group = inner.groups.get(group_id);
        let lookup =
            |t: &str, p: i32| group.and_then(|g| g.offsets.get(&(t.to_string(), p)).cloned());
        Ok(match topics {
            Some(topics) => topics
                .iter()
                .map(|(t, parts)| {
                    (
                        t.clone(),
                        parts.iter().map(|&p| (p, lookup(t, p))).collect(),
                    )
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                if let Some(g) = group {
                    for ((t, p), o) in &g.offsets {
                        by_topic
                            .entry(t.clone())
                            .or_default()
                            .push((*p, Some(o.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// OffsetDelete: forgets the offsets of partitions of topics the group
    /// does not consume. Returns per-partition results and the tombstones.
    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<Result<(), GroupError>>, Vec<OffsetsRecord>), GroupError> {
        self.check_loaded()?;
        let mut inner = self.lock();
        let group = inner
            .groups
            .get_mut(group_id)
            .filter(|g| !g.is(GroupState::Dead))
            .ok_or(GroupError::GroupIdNotFound)?;
        let subscribed = subscribed_topics(group);
        let mut results = Vec::with_capacity(partitions.len());
        let mut tombstones = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.iter().any(|t| t == topic) {
                results.push(Err(GroupError::GroupSubscribedToTopic));
                continue;
            }
            if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                tombstones.push(offset_tombstone(group_id, topic, *partition));
            }
            results.push(Ok(()));
        }
        Ok((results, tombstones))
    }

    /// (group id, protocol type, state) of every group whose state is in
    /// `states` (all when empty; names compared case-insensitively).
    pub fn list_groups(
        &self,
        states: &[String],
    ) -> Result<Vec<(String, String, GroupState)>, GroupError> {
        self.check_loaded()?;
        let inner = self.lock();
        let mut out: Vec<_> = inner
            .groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.name()))
            })
            .map(|g| (g.id.clone(), g.protocol_type.clone(), g.state))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The group as DescribeGroups shows it; `None` when unknown.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupSummary>, GroupError> {
        self.check_loaded()?;
        // A consumer-protocol group is not a classic one: Kafka answers
        // DescribeGroups for it as for an unknown group.
        Ok(self
            .lock()
            .groups
            .get(group_id)
            .filter(|g| g.consumer.is_none())
            .map(Group::summary))
    }

    /// DeleteGroups: only an empty group can go. Returns the tombstones of
    /// its offsets and metadata.
    pub fn delete_group(&self, group_id: &str, now: i64) -> Result<Vec<OffsetsRecord>, GroupError> {
        self.check_loaded()?;
        let mut inner = self.lock();
        let group = inner
            .groups
            .get_mut(group_id)
            .filter(|g| !g.is(GroupState::Dead))
            .ok_or(GroupError::GroupIdNotFound)?;
        if !group.is(GroupState::Empty) || group.has_members() {
            return Err(GroupError::NonEmptyGroup);
        }
        group.transition(GroupState::Dead, now);
        let mut out: Vec<OffsetsRecord> = group
            .offsets
            .keys()
            .map(|(t, p)| offset_tombstone(group_id, t, *p))
            .collect();
        out.push(group_tombstone(group_id));
        inner.groups.remove(group_id);
        tracing::info!(group = group_id, "group deleted");
        Ok(out)
    }

    /// Applies one record of `__consumer_offsets` while loading. Records
    /// that cannot be read are logged and skipped.
    pub fn replay(&self, key: &[u8], value: Option<&[u8]>, now: i64) {
        let key = match records::decode_key(key) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("skipping an unreadable __consumer_offsets key: {e}");
                return;
            }
        };
        let mut inner = self.lock();
        let group_id = key.group().to_string();
        match (key, value) {
            (
                RecordKey::Offset {
                    topic, partition, ..
                },
                None,
            ) => {
                if let Some(g) = inner.groups.get_mut(&group_id) {
                    g.offsets.remove(&(topic, partition));
                }
            }
            (
                RecordKey::Offset {
                    topic, partition, ..
                },
                Some(value),
            ) => match records::decode_offset_value(value) {
                Ok(v) => {
                    let g = inner
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, now));
                    g.offsets.insert(
                        (topic, partition),
                        CommittedOffset {
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_timestamp: v.commit_timestamp,
                        },
                    );
                }
                Err(e) => tracing::warn!(group = %group_id, "skipping an unreadable offset: {e}"),
            },
            (RecordKey::Group { .. }, None) => {
                inner.groups.remove(&group_id);
            }
            (RecordKey::Group { .. }, Some(value)) => match records::decode_group_value(value) {
                Ok(v) => {
                    let g = inner
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, now));
                    g.protocol_type = v.protocol_type;
                    g.generation = v.generation;
                    g.protocol = v.protocol.clone();
                    g.leader = v.leader;
                    g.members.clear();
                    g.instances.clear();
                    let protocol = v.protocol.unwrap_or_default();
                    for m in v.members {
                        if let Some(instance) = &m.group_instance_id {
                            g.instances.insert(instance.clone(), m.member_id.clone());
                        }
                        g.members.insert(
                            m.member_id.clone(),
                            Member {
                                id: m.member_id,
                                instance_id: m.group_instance_id,
                                client_id: m.client_id,
                                client_host: m.client_host,
                                session_timeout_ms: m.session_timeout,
                                rebalance_timeout_ms: m.rebalance_timeout,
                                protocols: vec![(protocol.clone(), m.subscription)],
                                assignment: m.assignment,
                                last_seen: now,
                                join_waiter: None,
                                sync_waiter: None,
                            },
                        );
                    }
                    let state = if g.members.is_empty() {
                        GroupState::Empty
                    } else {
                        GroupState::Stable
                    };
                    let since = if v.current_state_timestamp > 0 {
                        v.current_state_timestamp
                    } else {
                        now
                    };
                    g.transition(state, since);
                }
                Err(e) => {
                    tracing::warn!(group = %group_id, "skipping unreadable group metadata: {e}")
                }
            },
        }
    }
}

fn offset_tombstone(group: &str, topic: &str, partition: i32) -> OffsetsRecord {
    OffsetsRecord {
        group: group.to_string(),
        key: records::encode_key(&RecordKey::Offset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        }),
        value: None,
    }
}

fn group_tombstone(group: &str) -> OffsetsRecord {
    OffsetsRecord {
        group: group.to_string(),
        key: records::encode_key(&RecordKey::Group {
            group: group.to_string(),
        }),
        value: None,
    }
}

/// Removes the offsets of an empty group older than the retention period
/// (counted from the later of the commit and the group becoming empty).
/// True when the group is left with nothing and can be forgotten.
pub(crate) fn expire_offsets(
    group: &mut Group,
    now: i64,
    cfg: &GroupConfig,
    pending: &mut Vec<OffsetsRecord>,
) -> bool {
    if !group.is(GroupState::Empty) || group.has_members() {
        return false;
    }
    let since = group.state_since;
    let expired: Vec<(String, i32)> = group
        .offsets
        .iter()
        .filter(|(_, o)| {
            now.saturating_sub(o.commit_timestamp.max(since)) > cfg.offsets_retention_ms
        })
        .map(|(k, _)| k.clone())
        .collect();
    for (topic, partition) in &expired {
        group.offsets.remove(&(topic.clone(), *partition));
        pending.push(offset_tombstone(&group.id, topic, *partition));
    }
    if !expired.is_empty() {
        tracing::info!(group = %group.id, count = expired.len(), "expired committed offsets");
    }
    if group.offsets.is_empty() && group.members.is_empty() && !expired.is_empty() {
        pending.push(group_tombstone(&group.id));
        return true;
    }
    false
}

/// Topics the members of a consumer group subscribe to, read from their
/// ConsumerProtocolSubscription metadata (int16 version, then an array of
/// topic names).
fn subscribed_topics(group: &Group) -> Vec<String> {
    if group.protocol_type != CONSUMER_PROTOCOL_TYPE || group.is(GroupState::Empty) {
        return Vec::new();
    }
    let protocol = group.protocol.clone().unwrap_or_default();
    let mut out = Vec::new();
    for member in group.members.values() {
        out.extend(parse_subscription(&member.metadata_for(&protocol)));
    }
    out
}

fn parse_subscription(meta: &Bytes) -> Vec<String> {
    let mut out = Vec::new();
    let Some(count) = meta.get(2..6) else {
        return out;
    };
    let count = i32::from_be_bytes([count[0], count[1], count[2], count[3]]);
    let mut pos = 6usize;
    for _ in 0..count.max(0) {
        let Some(len) = meta.get(pos..pos + 2) else {
            break;
        };
        let len = usize::try_from(i16::from_be_bytes([len[0], len[1]])).unwrap_or(0);
        let Some(name) = meta.get(pos + 2..pos + 2 + len) else {
            break;
        };
        out.push(String::from_utf8_lossy(name).into_owned());
        pos += 2 + len;
    }
    out
}

/// The committed value of one entry at `now`, and its `__consumer_offsets` record.
pub(crate) fn offset_record(
    group_id: &str,
    e: &OffsetCommitEntry,
    now: i64,
) -> (OffsetValue, OffsetsRecord) {
    let value = OffsetValue {
        offset: e.offset,
        leader_epoch: e.leader_epoch,
        metadata: e.metadata.clone().unwrap_or_default(),
        commit_timestamp: now,
    };
    let record = OffsetsRecord {
        group: group_id.to_string(),
        key: records::encode_key(&RecordKey::Offset {
            group: group_id.to_string(),
            topic: e.topic.clone(),
            partition: e.partition,
        }),
        value: Some(records::encode_offset_value(&value)),
    };
    (value, record)
}
