//! The broker's side of the group coordinator: the `__consumer_offsets`
//! topic (created on first use, compacted, internal), appending the
//! coordinator's records to it, and replaying it on start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use wharf_coordinator::{partition_for, OffsetsRecord, OFFSETS_TOPIC};
use wharf_protocol::batch::{self, BatchOptions, NewRecord};

use super::{Broker, BrokerError, Topic};

/// Milliseconds since the epoch: the coordinator's clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// True for topics clients must see as internal.
pub fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC || topic == wharf_coordinator::txn::TRANSACTION_STATE_TOPIC
}

/// An append to an internal partition, to wait on until it is committed.
#[derive(Debug, Clone)]
pub struct PendingCommit {
    pub partition: std::sync::Arc<super::Partition>,
    /// The offset after the appended records.
    pub end: i64,
    /// The leader epoch the append was made under.
    pub epoch: i32,
}

impl Broker {
    /// `__consumer_offsets`, once created (by FindCoordinator, see
    /// `ensure_internal_topic`) and hosted here.
    pub fn offsets_topic(&self) -> Result<Arc<Topic>, BrokerError> {
        self.existing_internal_topic(OFFSETS_TOPIC)
    }

    /// Appends records to the `__consumer_offsets` partitions of their
    /// groups, one batch per partition.
    pub fn write_offsets_records(
        &self,
        records: &[OffsetsRecord],
    ) -> Result<Vec<PendingCommit>, BrokerError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let topic = self.offsets_topic()?;
        let partitions = topic.partition_count();
        let mut by_partition: BTreeMap<i32, Vec<&OffsetsRecord>> = BTreeMap::new();
        for record in records {
            by_partition
                .entry(partition_for(&record.group, partitions))
                .or_default()
                .push(record);
        }
        let mut pending = Vec::new();
        for (index, records) in by_partition {
            pending.extend(self.append_offsets_batch(
                &topic,
                index,
                &records,
                &BatchOptions::default(),
            )?);
        }
        Ok(pending)
    }

    /// Waits until every coordinator append in `pending` is committed
    /// (replicated to the ISR), within `timeout`: NOT_COORDINATOR when
    /// leadership of a partition moved first (the records may be lost),
    /// else COORDINATOR_NOT_AVAILABLE when time ran out (retriable).
    pub async fn wait_replicated(
        &self,
        pending: Vec<PendingCommit>,
        timeout: std::time::Duration,
    ) -> Result<(), kafka_protocol::ResponseError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for p in pending {
            match tokio::time::timeout_at(deadline, p.partition.wait_committed(p.end, p.epoch))
                .await
            {
                Ok(true) => {}
                Ok(false) => return Err(kafka_protocol::ResponseError::NotCoordinator),
                Err(_) => return Err(kafka_protocol::ResponseError::CoordinatorNotAvailable),
            }
        }
        Ok(())
    }

    /// Appends `records` to partition `index` of `__consumer_offsets` as
    /// one batch with `options` (plain, or a producer's transactional
    /// batch). A partition that does not exist is skipped.
    pub(super) fn append_offsets_batch(
        &self,
        topic: &Topic,
        index: i32,
        records: &[&OffsetsRecord],
        options: &BatchOptions,
    ) -> Result<Option<PendingCommit>, BrokerError> {
        // Only the partition's leader writes it (a former coordinator's
        // leftover records are dropped).
        let Some(partition) = topic.partition(index).filter(|p| self.leads(p)) else {
            return Ok(None);
        };
        let now = now_ms();
        let new: Vec<NewRecord<'_>> = records
            .iter()
            .map(|r| NewRecord {
                key: Some(&r.key),
                value: r.value.as_deref(),
                timestamp: now,
                headers: Vec::new(),
            })
            .collect();
        let mut bytes = batch::build_batch_with(0, &new, options).map_err(|e| {
            BrokerError::InvalidConfig(format!("building a {OFFSETS_TOPIC} batch: {e}"))
        })?;
        let epoch = partition.leader_epoch();
        let info = partition
            .append(&mut bytes)
            .map_err(|source| BrokerError::Storage {
                context: format!("appending to {OFFSETS_TOPIC}-{index}"),
                source,
            })?;
        Ok(Some(PendingCommit {
            partition: partition.clone(),
            end: info.last_offset.saturating_add(1),
            epoch,
        }))
    }

    /// Writes whatever group metadata the coordinator produced; failures are
    /// logged (the in-memory state stays authoritative until restart).
    pub fn flush_group_records(&self) {
        let records = self.groups.take_records();
        if let Err(e) = self.write_offsets_records(&records).map(|_| ()) {
            tracing::error!("could not persist group metadata: {e}");
        }
    }

    /// Replays `__consumer_offsets` into the coordinator, then lets it
    /// serve requests. Transactional offsets count from their COMMIT
    /// marker; those of transactions still open become pending again.
    pub fn load_groups(&self) -> Result<(), BrokerError> {
        let now = now_ms();
        let mut count = 0usize;
        if let Some(topic) = self.topic(OFFSETS_TOPIC) {
            for partition in &topic.partitions {
                if partition.leader() == self.settings.node_id {
                    count += self.replay_offsets(partition, now)?;
                }
            }
        }
        self.groups.finish_loading(now);
        tracing::info!(records = count, "group coordinator loaded");
        Ok(())
    }

    /// Replays partition `index` of `__consumer_offsets` into the
    /// coordinator (this broker has come to lead it); returns the records.
    pub fn load_groups_partition(&self, index: i32) -> Result<usize, BrokerError> {
        let topic = self.offsets_topic()?;
        match topic.partition(index) {
            Some(partition) => self.replay_offsets(partition, now_ms()),
            None => Ok(0),
        }
    }

    fn replay_offsets(&self, partition: &super::Partition, now: i64) -> Result<usize, BrokerError> {
        let (applied, open) = super::replay::replay_partition(
            OFFSETS_TOPIC,
            partition,
            |key, value| self.groups.replay(key, value, now),
            |_, _| {},
        )?;
        for (producer_id, held) in open {
            for (key, value) in held {
                self.groups
                    .replay_pending(producer_id, &key, value.as_deref(), now);
            }
        }
        Ok(applied)
    }
}

/// The one place coordinator errors become Kafka error codes.
pub fn group_error(e: wharf_coordinator::GroupError) -> kafka_protocol::ResponseError {
    use kafka_protocol::ResponseError as R;
    use wharf_coordinator::GroupError as G;
    match e {
        G::CoordinatorLoadInProgress => R::CoordinatorLoadInProgress,
        G::CoordinatorNotAvailable => R::CoordinatorNotAvailable,
        G::NotCoordinator => R::NotCoordinator,
        G::InvalidGroupId => R::InvalidGroupId,
        G::TooLong(_) => R::InvalidRequest,
        G::MemberIdRequired => R::MemberIdRequired,
        G::UnknownMemberId => R::UnknownMemberId,
        G::IllegalGeneration => R::IllegalGeneration,
        G::RebalanceInProgress => R::RebalanceInProgress,
        G::FencedInstanceId => R::FencedInstanceId,
        G::InconsistentGroupProtocol => R::InconsistentGroupProtocol,
        G::InvalidSessionTimeout => R::InvalidSessionTimeout,
        G::GroupIdNotFound => R::GroupIdNotFound,
        G::NonEmptyGroup => R::NonEmptyGroup,
        G::GroupSubscribedToTopic => R::GroupSubscribedToTopic,
        G::FencedMemberEpoch => R::FencedMemberEpoch,
        G::StaleMemberEpoch => R::StaleMemberEpoch,
        G::UnreleasedInstanceId => R::UnreleasedInstanceId,
        G::GroupMaxSizeReached => R::GroupMaxSizeReached,
        G::UnsupportedAssignor => R::UnsupportedAssignor,
        G::InvalidRequest => R::InvalidRequest,
        G::InvalidRegularExpression => R::InvalidRegularExpression,
    }
}

/// The wire code of an optional coordinator error (0 for none).
pub fn group_error_code(e: Option<wharf_coordinator::GroupError>) -> i16 {
    e.map_or(0, |e| group_error(e).code())
}

/// Waits for a delayed JoinGroup/SyncGroup answer; `None` when the broker
/// shuts down first or the coordinator dropped the waiter.
pub async fn wait_answer<T>(
    rx: tokio::sync::oneshot::Receiver<T>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<T> {
    tokio::select! {
        answer = rx => answer.ok(),
        _ = shutdown.wait_for(|s| *s) => None,
    }
}
