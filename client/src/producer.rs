//! A producer for one topic: records are partitioned (explicit partition,
//! murmur2 of the key, or sticky for keyless records), gathered into one
//! batch per partition until the batch is full or has lingered long enough,
//! and sent to each partition's leader, one Produce request per leader.
//! Retriable errors (leadership moved) refresh the metadata and retry.
//!
//! An idempotent producer (Kafka's `enable.idempotence`) first gets a
//! producer id and epoch (InitProducerId) and numbers each partition's
//! records; a batch sent again after a lost answer carries the same
//! sequence numbers, so the broker writes it once. Only one batch per
//! partition is in flight at a time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use wharf_protocol::batch::{build_batch_with, BatchOptions, NewRecord};
use wharf_protocol::compression::Compression;

use crate::admin::{unknown_topic, PartitionInfo};
use crate::partitioner::partition_for_key;
use crate::{ClientError, ClusterClient};

/// Produce v13 names topics by id; this producer names them.
const PRODUCE_MAX_VERSION: i16 = 12;

/// How the producer batches and acknowledges.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// 0, 1 or -1 (all).
    pub acks: i16,
    pub compression: Compression,
    /// How long a record may wait for its batch to fill (`linger.ms`).
    pub linger: Duration,
    /// Bytes of records after which a partition's batch is sent (`batch.size`).
    pub batch_size: usize,
    /// How long the broker may wait for replicas (`request.timeout.ms`).
    pub timeout_ms: i32,
    /// Producer id, epoch and sequence numbers (`enable.idempotence`);
    /// needs acks = -1.
    pub idempotent: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: -1,
            compression: Compression::None,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            timeout_ms: 30_000,
            idempotent: false,
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default)]
pub struct OutgoingRecord {
    /// The caller's number for it (a line number), used in reports.
    pub id: u64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// An explicit partition; otherwise the partitioner picks one.
    pub partition: Option<i32>,
    pub timestamp: i64,
}

impl OutgoingRecord {
    fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 4)
            .sum();
        self.key.as_ref().map_or(0, Vec::len)
            + self.value.as_ref().map_or(0, Vec::len)
            + headers
            + 16
    }
}

/// A record that could not be produced, and why.
#[derive(Debug)]
pub struct Failure {
    pub id: u64,
    pub partition: i32,
    pub error: ClientError,
}

/// A record the broker acknowledged (offset unknown with acks=0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: u64,
    pub partition: i32,
    pub offset: Option<i64>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Producer {
    topic: String,
    config: ProducerConfig,
    partitions: Vec<PartitionInfo>,
    /// The partition keyless records go to until its batch is sent.
    sticky: Option<i32>,
    next_sticky: usize,
    pending: BTreeMap<i32, Vec<OutgoingRecord>>,
    pending_bytes: BTreeMap<i32, usize>,
    /// When the oldest pending record arrived.
    oldest: Option<Instant>,
    pub deliveries: Vec<Delivery>,
    pub failures: Vec<Failure>,
    /// Producer id and epoch, when idempotent (`None` until there is one).
    identity: Option<(i64, i16)>,
    /// The next sequence number of each partition.
    sequences: BTreeMap<i32, i32>,
}

/// DUPLICATE_SEQUENCE_NUMBER: the broker already has this batch.
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;

impl Producer {
    /// A producer for `topic`, which must exist.
    pub async fn new(
        client: &mut ClusterClient,
        topic: &str,
        config: ProducerConfig,
    ) -> Result<Self, ClientError> {
        if config.idempotent && config.acks != -1 {
            return Err(ClientError::Invalid(
                "an idempotent producer needs acks=all".to_string(),
            ));
        }
        let partitions = Self::partitions_of(client, topic).await?;
        let identity = if config.idempotent {
            Some(init_producer_id(client).await?)
        } else {
            None
        };
        Ok(Self {
            topic: topic.to_string(),
            config,
            partitions,
            sticky: None,
            next_sticky: 0,
            pending: BTreeMap::new(),
            pending_bytes: BTreeMap::new(),
            oldest: None,
            deliveries: Vec::new(),
            failures: Vec::new(),
            identity,
            sequences: BTreeMap::new(),
        })
    }

    /// The producer id and epoch in use, when idempotent.
    pub fn identity(&self) -> Option<(i64, i16)> {
        self.identity
    }

    async fn partitions_of(
        client: &mut ClusterClient,
        topic: &str,
    ) -> Result<Vec<PartitionInfo>, ClientError> {
        let topics = client.describe_topics(Some(&[topic.to_string()])).await?;
        let info = topics.get(topic).ok_or_else(|| unknown_topic(topic))?;
        Ok(info.partitions.clone())
    }

    /// How many partitions the topic has.
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// The partition `record` goes to.
    pub fn partition_for(&mut self, record: &OutgoingRecord) -> Result<i32, ClientError> {
        let count = self.partition_count();
        if count == 0 {
            return Err(ClientError::Invalid(format!(
                "topic '{}' has no partitions",
                self.topic
            )));
        }
        if let Some(p) = record.partition {
            if !(0..count).contains(&p) {
                return Err(ClientError::Invalid(format!(
                    "partition {p} does not exist: topic '{}' has {count} partitions",
                    self.topic
                )));
            }
            return Ok(p);
        }
        if let Some(key) = &record.key {
            return Ok(partition_for_key(key, count));
        }
        if let Some(p) = self.sticky {
            return Ok(p);
        }
        // Sticky: the next partition with a leader, round-robin, until its
        // batch is sent.
        let available: Vec<i32> = self
            .partitions
            .iter()
            .filter(|p| p.leader >= 0)
            .map(|p| p.partition)
            .collect();
        let pool: Vec<i32> = if available.is_empty() {
            (0..count).collect()
        } else {
            available
        };
        let p = pool
            .get(self.next_sticky % pool.len())
            .copied()
            .unwrap_or(0);
        self.next_sticky = self.next_sticky.wrapping_add(1);
        self.sticky = Some(p);
        Ok(p)
    }

    /// Adds `record` to its partition's batch, sending batches that are full.
    pub async fn send(
        &mut self,
        client: &mut ClusterClient,
        record: OutgoingRecord,
    ) -> Result<(), ClientError> {
        let partition = self.partition_for(&record)?;
        let size = record.size();
        self.pending.entry(partition).or_default().push(record);
        let bytes = self.pending_bytes.entry(partition).or_default();
        *bytes += size;
        let full = *bytes >= self.config.batch_size;
        self.oldest.get_or_insert_with(Instant::now);
        if full {
            if self.sticky == Some(partition) {
                self.sticky = None;
            }
            self.flush(client).await;
        }
        Ok(())
    }

    /// When the pending records have lingered long enough (`None`: nothing pending).
    pub fn linger_deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.config.linger)
    }

    /// Sends every pending record; what fails for good lands in `failures`.
    pub async fn flush(&mut self, client: &mut ClusterClient) {
        let mut batches = std::mem::take(&mut self.pending);
        self.pending_bytes.clear();
        self.oldest = None;
        self.sticky = None;
        if self.config.idempotent && self.identity.is_none() {
            // A batch failed for good: its numbers are lost, start again
            // under a new producer id.
            self.sequences.clear();
            match init_producer_id(client).await {
                Ok(identity) => self.identity = Some(identity),
                Err(e) => {
                    for (partition, records) in batches {
                        for record in records {
                            self.failures.push(Failure {
                                id: record.id,
                                partition,
                                error: copy_error(&e),
                            });
                        }
                    }
                    return;
                }
            }
        }
        // Numbered once: a batch sent again keeps its numbers and producer
        // id, even if another batch fails for good meanwhile.
        let identity = self.identity;
        let first_sequences = match identity {
            Some(_) => next_sequences(&mut self.sequences, &batches),
            None => BTreeMap::new(),
        };
        let attempts = client.retry_policy().attempts.max(1);
        let mut last_error: BTreeMap<i32, ClientError> = BTreeMap::new();
        for attempt in 0..attempts {
            if batches.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(client.retry_policy().backoff(attempt)).await;
                match Self::partitions_of(client, &self.topic).await {
                    Ok(partitions) => self.partitions = partitions,
                    Err(e) => tracing::debug!("metadata refresh failed: {e}"),
                }
            }
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for &partition in batches.keys() {
                let leader = self
                    .partitions
                    .iter()
                    .find(|p| p.partition == partition)
                    .map_or(-1, |p| p.leader);
                if leader < 0 {
                    last_error.insert(
                        partition,
                        ClientError::Broker {
                            context: format!("{}-{partition} has no leader", self.topic),
                            code: 5,
                            message: None,
                        },
                    );
                    continue;
                }
                by_leader.entry(leader).or_default().push(partition);
            }
            for (leader, partitions) in by_leader {
                let outstanding = Outstanding {
                    batches: &mut batches,
                    identity,
                    sequences: &first_sequences,
                    last_error: &mut last_error,
                };
                self.send_to_leader(client, leader, &partitions, outstanding)
                    .await;
            }
        }
        if !batches.is_empty() && self.identity.is_some() {
            // Their sequence numbers are lost with them.
            self.identity = None;
        }
        for (partition, records) in batches {
            let error = last_error.remove(&partition);
            for record in records {
                let error = match &error {
                    Some(e) => copy_error(e),
                    None => ClientError::Invalid("not sent".to_string()),
                };
                self.failures.push(Failure {
                    id: record.id,
                    partition,
                    error,
                });
            }
        }
    }

    /// One Produce request with the batches of `partitions`, led by `leader`.
    /// Acknowledged and permanently failed partitions leave `batches`;
    /// retriable failures stay, with their error in `last_error`.
    async fn send_to_leader(
        &mut self,
        client: &mut ClusterClient,
        leader: i32,
        partitions: &[i32],
        outstanding: Outstanding<'_>,
    ) {
        let Outstanding {
            batches,
            identity,
            sequences,
            last_error,
        } = outstanding;
        let mut data = Vec::new();
        for &partition in partitions {
            let Some(records) = batches.get(&partition) else {
                continue;
            };
            let mut options = BatchOptions {
                compression: self.config.compression,
                ..BatchOptions::default()
            };
            if let (Some((id, epoch)), Some(&sequence)) = (identity, sequences.get(&partition)) {
                options.producer_id = id;
                options.producer_epoch = epoch;
                options.base_sequence = sequence;
            }
            match encode_batch_with(records, &options) {
                Ok(bytes) => {
                    let mut p = PartitionProduceData::default();
                    p.index = partition;
                    p.records = Some(bytes);
                    data.push(p);
                }
                Err(e) => self.fail_partition(batches, partition, e),
            }
        }
        if data.is_empty() {
            return;
        }
        let mut topic = TopicProduceData::default();
        topic.name = TopicName(StrBytes::from_string(self.topic.clone()));
        topic.partition_data = data;
        let mut request = ProduceRequest::default();
        request.acks = self.config.acks;
        request.timeout_ms = self.config.timeout_ms;
        request.topic_data = vec![topic];

        if self.config.acks == 0 {
            let sent = match client.node_connection(leader).await {
                Ok(conn) => {
                    let version = conn
                        .version_of::<ProduceRequest>()
                        .map_or(PRODUCE_MAX_VERSION, |v| v.min(PRODUCE_MAX_VERSION));
                    conn.send_at(&request, version).await
                }
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => {
                    for &partition in partitions {
                        for record in batches.remove(&partition).unwrap_or_default() {
                            self.deliveries.push(Delivery {
                                id: record.id,
                                partition,
                                offset: None,
                            });
                        }
                    }
                }
                Err(e) => {
                    client.disconnect(leader);
                    self.retry_or_fail(batches, last_error, partitions, e);
                }
            }
            return;
        }

        let response = match client
            .call_node_capped(leader, &request, PRODUCE_MAX_VERSION)
            .await
        {
            Ok(response) => response,
            Err(e) => {
                self.retry_or_fail(batches, last_error, partitions, e);
                return;
            }
        };
        for topic in &response.responses {
            for p in &topic.partition_responses {
                let partition = p.index;
                if p.error_code == 0 || p.error_code == DUPLICATE_SEQUENCE_NUMBER {
                    let records = batches.remove(&partition).unwrap_or_default();
                    for (i, record) in records.into_iter().enumerate() {
                        let offset = (p.base_offset >= 0)
                            .then(|| p.base_offset + i64::try_from(i).unwrap_or(0));
                        self.deliveries.push(Delivery {
                            id: record.id,
                            partition,
                            offset,
                        });
                    }
                    last_error.remove(&partition);
                    continue;
                }
                let message = p.error_message.as_ref().map(|m| m.to_string()).or_else(|| {
                    p.record_errors
                        .first()
                        .and_then(|r| r.batch_index_error_message.as_ref())
                        .map(|m| m.to_string())
                });
                let error = ClientError::Broker {
                    context: format!("could not produce to {}-{partition}", self.topic),
                    code: p.error_code,
                    message,
                };
                self.retry_or_fail(batches, last_error, &[partition], error);
            }
        }
    }

    fn retry_or_fail(
        &mut self,
        batches: &mut BTreeMap<i32, Vec<OutgoingRecord>>,
        last_error: &mut BTreeMap<i32, ClientError>,
        partitions: &[i32],
        error: ClientError,
    ) {
        if error.is_retriable_after_refresh() {
            for &partition in partitions {
                last_error.insert(partition, copy_error(&error));
            }
        } else {
            for &partition in partitions {
                self.fail_partition(batches, partition, copy_error(&error));
            }
        }
    }

    fn fail_partition(
        &mut self,
        batches: &mut BTreeMap<i32, Vec<OutgoingRecord>>,
        partition: i32,
        error: ClientError,
    ) {
        if batches.contains_key(&partition) && self.identity.is_some() {
            // The sequence numbers of the lost batch are gone: the next
            // flush starts under a new producer id.
            self.identity = None;
        }
        for record in batches.remove(&partition).unwrap_or_default() {
            self.failures.push(Failure {
                id: record.id,
                partition,
                error: copy_error(&error),
            });
        }
    }
}

/// The batches of one leader still to send, with the producer id and epoch
/// and first sequence numbers they were numbered with, and the last error
/// of each.
struct Outstanding<'a> {
    batches: &'a mut BTreeMap<i32, Vec<OutgoingRecord>>,
    identity: Option<(i64, i16)>,
    sequences: &'a BTreeMap<i32, i32>,
    last_error: &'a mut BTreeMap<i32, ClientError>,
}

/// A producer id and epoch for an idempotent producer (InitProducerId
/// without a transactional id), from any broker.
async fn init_producer_id(client: &mut ClusterClient) -> Result<(i64, i16), ClientError> {
    let mut request = InitProducerIdRequest::default();
    request.transactional_id = None;
    request.transaction_timeout_ms = 60_000;
    request.producer_id = ProducerId(-1);
    request.producer_epoch = -1;
    client
        .with_retries(async |c| {
            let response = c.call_any(&request).await?;
            ClientError::check(response.error_code, None, || {
                "could not get a producer id for idempotence (--no-idempotence goes without)"
                    .to_string()
            })?;
            Ok((response.producer_id.0, response.producer_epoch))
        })
        .await
}

/// The first sequence number of each partition's batch, moving each
/// partition's next number past its records (wrapping after i32::MAX, as
/// Kafka's sequences do).
fn next_sequences(
    next: &mut BTreeMap<i32, i32>,
    batches: &BTreeMap<i32, Vec<OutgoingRecord>>,
) -> BTreeMap<i32, i32> {
    batches
        .iter()
        .map(|(&partition, records)| {
            let first = next.get(&partition).copied().unwrap_or(0);
            let count = i32::try_from(records.len()).unwrap_or(i32::MAX);
            let after = i64::from(first) + i64::from(count);
            let wrapped = i32::try_from(after % (i64::from(i32::MAX) + 1)).unwrap_or(0);
            next.insert(partition, wrapped);
            (partition, first)
        })
        .collect()
}

/// One v2 batch of `records` (offsets from 0: the broker assigns them).
pub fn encode_batch(
    records: &[OutgoingRecord],
    compression: Compression,
) -> Result<Bytes, ClientError> {
    let options = BatchOptions {
        compression,
        ..BatchOptions::default()
    };
    encode_batch_with(records, &options)
}

/// One v2 batch of `records` with `options` (producer id, sequence, codec).
pub fn encode_batch_with(
    records: &[OutgoingRecord],
    options: &BatchOptions,
) -> Result<Bytes, ClientError> {
    let new: Vec<NewRecord<'_>> = records
        .iter()
        .map(|r| NewRecord {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            timestamp: r.timestamp,
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_deref()))
                .collect(),
        })
        .collect();
    build_batch_with(0, &new, options)
        .map(Bytes::from)
        .map_err(|e| ClientError::Invalid(format!("could not encode a record batch: {e}")))
}

/// The same error again (errors carrying an `io::Error` are not `Clone`).
fn copy_error(e: &ClientError) -> ClientError {
    match e {
        ClientError::Broker {
            context,
            code,
            message,
        } => ClientError::Broker {
            context: context.clone(),
            code: *code,
            message: message.clone(),
        },
        other => ClientError::Invalid(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<OutgoingRecord> {
        (0..n)
            .map(|i| OutgoingRecord {
                id: i as u64,
                value: Some(b"v".to_vec()),
                ..OutgoingRecord::default()
            })
            .collect()
    }

    #[test]
    fn sequences_number_each_partitions_records_and_wrap_after_the_maximum() {
        let mut next = BTreeMap::new();
        let batches: BTreeMap<i32, Vec<OutgoingRecord>> =
            [(0, records(3)), (2, records(1))].into_iter().collect();
        assert_eq!(next_sequences(&mut next, &batches), [(0, 0), (2, 0)].into());
        assert_eq!(next_sequences(&mut next, &batches), [(0, 3), (2, 1)].into());
        assert_eq!(next, [(0, 6), (2, 2)].into());
        next.insert(0, i32::MAX - 1);
        let first = next_sequences(&mut next, &batches);
        assert_eq!(first[&0], i32::MAX - 1);
        assert_eq!(next[&0], 1);
    }

    #[test]
    fn an_idempotent_batch_carries_the_producer_id_epoch_and_sequence() {
        let options = BatchOptions {
            producer_id: 4000,
            producer_epoch: 2,
            base_sequence: 17,
            ..BatchOptions::default()
        };
        let bytes = encode_batch_with(&records(2), &options).unwrap();
        let header = wharf_protocol::batch::validate(&bytes, 1 << 20).unwrap();
        assert_eq!(header.producer_id(), 4000);
        assert_eq!(header.producer_epoch(), 2);
        assert_eq!(header.base_sequence(), 17);
        assert!(!header.is_transactional());
    }

    #[test]
    fn a_batch_decodes_back_to_its_records_with_every_codec() {
        let records = vec![
            OutgoingRecord {
                id: 1,
                key: Some(b"k".to_vec()),
                value: Some(b"v1".to_vec()),
                headers: vec![(b"h".to_vec(), Some(b"x".to_vec()))],
                partition: None,
                timestamp: 1_700_000_000_000,
            },
            OutgoingRecord {
                id: 2,
                key: None,
                value: Some(b"v2".to_vec()),
                headers: Vec::new(),
                partition: None,
                timestamp: 1_700_000_000_001,
            },
        ];
        for codec in Compression::ALL {
            let bytes = encode_batch(&records, codec).unwrap();
            let header = wharf_protocol::batch::validate(&bytes, 1 << 20).unwrap();
            assert_eq!(header.compression(), codec);
            let payload = wharf_protocol::batch::records_payload(&bytes, &header, 1 << 20).unwrap();
            let decoded: Vec<_> = wharf_protocol::batch::records(&header, &payload)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(decoded.len(), 2);
            assert_eq!(decoded[0].key, Some(&b"k"[..]));
            assert_eq!(decoded[0].headers[0].key, b"h");
            assert_eq!(decoded[1].value, Some(&b"v2"[..]));
            assert_eq!(decoded[1].timestamp, 1_700_000_000_001);
        }
    }
}
