//! The broker's side of the transaction coordinator: the
//! `__transaction_state` topic (created on first use, compacted, internal),
//! writing its records, carrying out the end of transactions (markers into
//! every partition, then the Complete state), the timer, and the replay
//! on start.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use wharf_coordinator::txn::{Completion, TxnError, TxnRecord, TRANSACTION_STATE_TOPIC};
use wharf_coordinator::{partition_for, OffsetsRecord, OFFSETS_TOPIC};
use wharf_protocol::batch::{self, BatchOptions, NewRecord};

use super::groups::{now_ms, PendingCommit};

/// How long a transaction coordinator's state write may take to replicate
/// before the request is answered COORDINATOR_NOT_AVAILABLE (retriable).
pub const STATE_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
use super::{Broker, BrokerError, Topic};

/// The coordinator epoch written into markers: one node, never re-elected.
const COORDINATOR_EPOCH: i32 = 0;

/// Which API a coordinator error is answered in: PRODUCER_FENCED exists
/// only from these versions on, older ones get INVALID_PRODUCER_EPOCH.
#[derive(Debug, Clone, Copy)]
pub enum FencedSince {
    /// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit: v2.
    V2,
    /// InitProducerId: v4.
    V4,
}

/// The one place transaction coordinator errors become Kafka error codes.
pub fn txn_error(e: TxnError, version: i16, fenced: FencedSince) -> ResponseError {
    let fenced_since = match fenced {
        FencedSince::V2 => 2,
        FencedSince::V4 => 4,
    };
    match e {
        TxnError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::ProducerFenced if version >= fenced_since => ResponseError::ProducerFenced,
        TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
        TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
        TxnError::TransactionalIdTooLong => ResponseError::InvalidRequest,
    }
}

/// How long a coordinator waits for a partition leader to write markers.
const MARKER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Broker {
    /// `__transaction_state`, once created and hosted here.
    pub fn txn_state_topic(&self) -> Result<Arc<Topic>, BrokerError> {
        self.existing_internal_topic(TRANSACTION_STATE_TOPIC)
    }

    /// Appends one record to the `__transaction_state` partition of its
    /// transactional id.
    pub fn write_txn_record(&self, record: &TxnRecord) -> Result<PendingCommit, BrokerError> {
        let topic = self.txn_state_topic()?;
        let index = partition_for(&record.transactional_id, topic.partition_count());
        let partition = topic
            .partition(index)
            .filter(|p| self.leads(p))
            .ok_or_else(|| BrokerError::UnknownTopic(TRANSACTION_STATE_TOPIC.to_string()))?;
        let new = NewRecord {
            key: Some(&record.key),
            value: record.value.as_deref(),
            timestamp: now_ms(),
            headers: Vec::new(),
        };
        let mut bytes =
            batch::build_batch_with(0, &[new], &BatchOptions::default()).map_err(|e| {
                BrokerError::InvalidConfig(format!(
                    "building a {TRANSACTION_STATE_TOPIC} batch: {e}"
                ))
            })?;
        let epoch = partition.leader_epoch();
        let info = partition
            .append(&mut bytes)
            .map_err(|source| BrokerError::Storage {
                context: format!("appending to {TRANSACTION_STATE_TOPIC}-{index}"),
                source,
            })?;
        Ok(PendingCommit {
            partition: partition.clone(),
            end: info.last_offset.saturating_add(1),
            epoch,
        })
    }

    /// Appends TxnOffsetCommit records to the group's `__consumer_offsets`
    /// partition in one transactional batch of the producer.
    pub fn write_txn_offsets(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        records: &[OffsetsRecord],
    ) -> Result<(), BrokerError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let topic = self.offsets_topic()?;
        let index = partition_for(&first.group, topic.partition_count());
        if topic.partition(index).is_none() {
            return Err(BrokerError::UnknownTopic(OFFSETS_TOPIC.to_string()));
        }
        let options = BatchOptions {
            transactional: true,
            producer_id,
            producer_epoch,
            ..BatchOptions::default()
        };
        let records: Vec<&OffsetsRecord> = records.iter().collect();
        self.append_offsets_batch(&topic, index, &records, &options)
            .map(|_| ())?;
        Ok(())
    }

    /// Ends a transaction: a marker into each of its partitions (those of
    /// deleted topics are skipped), transactional offsets applied or
    /// dropped, then the Complete state written. On an error the
    /// transaction stays in its Prepare state and the timer retries.
    pub fn complete_txn(&self, completion: &Completion) -> Result<(), BrokerError> {
        let now = now_ms();
        // Partitions led here get their marker directly; the others through
        // WriteTxnMarkers to their leaders, first, so a failure there leaves
        // nothing written here and the retry starts over.
        let image = self.image();
        let mut local = Vec::new();
        let mut remote: std::collections::BTreeMap<i32, Vec<(String, i32)>> =
            std::collections::BTreeMap::new();
        for (topic_name, index) in &completion.partitions {
            let here = self
                .topic(topic_name)
                .and_then(|t| t.partition(*index).cloned())
                .filter(|p| self.leads(p));
            if let Some(partition) = here {
                local.push((topic_name, *index, partition));
                continue;
            }
            match image
                .topic_by_name(topic_name)
                .and_then(|t| t.partitions.get(index))
            {
                None => {
                    tracing::warn!(topic = %topic_name, partition = index, "no marker for a partition that no longer exists");
                }
                Some(p) if p.leader < 0 => {
                    return Err(BrokerError::Peer(format!(
                        "{topic_name}-{index} has no leader for its transaction marker"
                    )));
                }
                Some(p) => remote
                    .entry(p.leader)
                    .or_default()
                    .push((topic_name.clone(), *index)),
            }
        }
        for (leader, partitions) in &remote {
            self.send_markers(&image, *leader, completion, partitions)?;
        }
        for (topic_name, index, partition) in local {
            partition
                .append_marker(
                    completion.producer_id,
                    completion.producer_epoch,
                    completion.commit,
                    COORDINATOR_EPOCH,
                    now,
                )
                .map_err(|source| BrokerError::Storage {
                    context: format!("writing a transaction marker to {topic_name}-{index}"),
                    source,
                })?;
            if topic_name == OFFSETS_TOPIC {
                self.groups
                    .end_txn_offsets(completion.producer_id, completion.commit, now);
            }
        }
        if let Some(record) = self.txns.complete(completion, now) {
            self.write_txn_record(&record)?;
        }
        tracing::debug!(
            transactional_id = %completion.transactional_id,
            producer_id = completion.producer_id,
            commit = completion.commit,
            partitions = completion.partitions.len(),
            "transaction completed"
        );
        Ok(())
    }

    /// Writes `completion`'s marker into `partitions`, led by broker
    /// `leader`, with WriteTxnMarkers (blocking, bounded by a timeout).
    fn send_markers(
        &self,
        image: &wharf_coordinator::metadata::MetadataImage,
        leader: i32,
        completion: &Completion,
        partitions: &[(String, i32)],
    ) -> Result<(), BrokerError> {
        use kafka_protocol::messages::write_txn_markers_request::{
            WritableTxnMarker, WritableTxnMarkerTopic,
        };
        use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest};
        use kafka_protocol::protocol::StrBytes;
        let endpoint = image
            .alive_endpoint(leader, self.settings.inter_broker_listener())
            .ok_or_else(|| BrokerError::Peer(format!("broker {leader} is not reachable")))?;
        let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> =
            std::collections::BTreeMap::new();
        for (topic, index) in partitions {
            by_topic.entry(topic).or_default().push(*index);
        }
        let mut marker = WritableTxnMarker::default();
        marker.producer_id = completion.producer_id.into();
        marker.producer_epoch = completion.producer_epoch;
        marker.transaction_result = completion.commit;
        marker.coordinator_epoch = COORDINATOR_EPOCH;
        marker.topics = by_topic
            .into_iter()
            .map(|(name, indexes)| {
                let mut t = WritableTxnMarkerTopic::default();
                t.name = TopicName(StrBytes::from_string(name.to_string()));
                t.partition_indexes = indexes;
                t
            })
            .collect();
        let mut request = WriteTxnMarkersRequest::default();
        request.markers = vec![marker];
        let client_id = format!("wharf-txn-coordinator-{}", self.settings.node_id);
        let response = crate::cluster::peer::call(
            &endpoint.host,
            endpoint.port,
            &request,
            1,
            &client_id,
            MARKER_TIMEOUT,
        )
        .map_err(|e| BrokerError::Peer(format!("transaction markers to broker {leader}: {e}")))?;
        let failed: Vec<String> = response
            .markers
            .iter()
            .flat_map(|m| &m.topics)
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.error_code != 0)
                    .map(move |p| {
                        format!("{}-{}: error {}", t.name.0, p.partition_index, p.error_code)
                    })
            })
            .collect();
        if !failed.is_empty() {
            return Err(BrokerError::Peer(format!(
                "broker {leader} did not write transaction markers: {}",
                failed.join(", ")
            )));
        }
        Ok(())
    }

    /// The transaction timer: aborts expired transactions and retries
    /// unfinished completions.
    pub fn tick_txns(&self) {
        for (record, completion) in self.txns.tick(now_ms()) {
            let result = match record {
                Some(record) => self.write_txn_record(&record).map(|_| ()),
                None => Ok(()),
            }
            .and_then(|()| self.complete_txn(&completion));
            if let Err(e) = result {
                tracing::error!(
                    transactional_id = %completion.transactional_id,
                    "could not end a transaction: {e}"
                );
            }
        }
    }

    /// Checks a produce's transactional batches: each must come from the
    /// current epoch of a producer whose ongoing transaction includes the
    /// partition (AddPartitionsToTxn first), as Kafka's verification does.
    pub fn check_transactional_produce(
        &self,
        topic: &str,
        partition: i32,
        records: &[u8],
    ) -> Result<(), ResponseError> {
        for item in batch::batches(records) {
            let Ok((header, _)) = item else {
                // Malformed batches are refused by the append's validation.
                return Ok(());
            };
            if !header.is_transactional() || header.is_control() {
                continue;
            }
            self.txns
                .check_produce(
                    header.producer_id(),
                    header.producer_epoch(),
                    topic,
                    partition,
                )
                .map_err(|e| {
                    tracing::warn!(
                        topic,
                        partition,
                        producer_id = header.producer_id(),
                        "refusing a transactional batch: {e}"
                    );
                    match e {
                        TxnError::ProducerFenced => ResponseError::InvalidProducerEpoch,
                        TxnError::InvalidProducerIdMapping => {
                            ResponseError::InvalidProducerIdMapping
                        }
                        _ => ResponseError::InvalidTxnState,
                    }
                })?;
        }
        Ok(())
    }

    /// Replays partition `index` of `__transaction_state` (this broker has
    /// come to lead it); returns the records.
    pub fn load_txns_partition(&self, index: i32) -> Result<usize, BrokerError> {
        let topic = self.txn_state_topic()?;
        match topic.partition(index) {
            Some(partition) => self.replay_txn_state(partition),
            None => Ok(0),
        }
    }

    fn replay_txn_state(&self, partition: &super::Partition) -> Result<usize, BrokerError> {
        let (applied, _) = super::replay::replay_partition(
            TRANSACTION_STATE_TOPIC,
            partition,
            |key, value| self.txns.replay(key, value),
            |_, _| {},
        )?;
        Ok(applied)
    }

    /// Replays `__transaction_state`, lets the coordinator serve, and
    /// finishes the transactions caught between Prepare and Complete.
    pub fn load_txns(&self) -> Result<(), BrokerError> {
        let mut count = 0usize;
        if let Some(topic) = self.topic(TRANSACTION_STATE_TOPIC) {
            for partition in &topic.partitions {
                if partition.leader() == self.settings.node_id {
                    count += self.replay_txn_state(partition)?;
                }
            }
        }
        let pending = self.txns.finish_loading();
        for completion in &pending {
            if let Err(e) = self.complete_txn(completion) {
                tracing::error!(
                    transactional_id = %completion.transactional_id,
                    "could not finish a transaction after restart: {e}"
                );
            }
        }
        tracing::info!(
            records = count,
            finished = pending.len(),
            "transaction coordinator loaded"
        );
        Ok(())
    }
}
