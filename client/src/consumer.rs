//! A consumer of chosen partitions of one topic, without a group: it fetches
//! from each partition's leader from a starting position, skips transaction
//! markers (and, with read_committed, aborted transactions' records), and
//! follows leadership changes.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use wharf_protocol::batch::{batches, read_marker, records, records_payload};

use crate::admin::{unknown_topic, PartitionInfo, EARLIEST, LATEST, NO_OFFSET};
use crate::{ClientError, ClusterClient};

/// Fetch v13 names topics by id; this consumer names them.
const FETCH_MAX_VERSION: i16 = 12;
/// The most a compressed batch may decompress to.
const MAX_DECOMPRESSED: usize = 64 << 20;

/// Where a partition's consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start offset.
    Beginning,
    /// The end of the log: only records produced from now on.
    End,
    /// This offset (clamped into the log's range).
    Offset(i64),
    /// The first offset whose timestamp is at or after this time (ms since
    /// the epoch), or the end of the log when no record is that new.
    Timestamp(i64),
}

/// How the consumer fetches.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// 0 read_uncommitted, 1 read_committed.
    pub isolation_level: i8,
    /// How long a fetch waits for new records at the broker.
    pub max_wait_ms: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            isolation_level: 0,
            max_wait_ms: 500,
            max_bytes: 50 << 20,
            partition_max_bytes: 1 << 20,
        }
    }
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Consumer {
    topic: String,
    config: ConsumerConfig,
    partitions: Vec<PartitionInfo>,
    /// The next offset to fetch, per consumed partition.
    positions: BTreeMap<i32, i64>,
}

impl Consumer {
    /// A consumer of `partitions` of `topic` (all when `None`), starting at `start`.
    pub async fn new(
        client: &mut ClusterClient,
        topic: &str,
        partitions: Option<&[i32]>,
        start: StartAt,
        config: ConsumerConfig,
    ) -> Result<Self, ClientError> {
        let described = client.describe_topics(Some(&[topic.to_string()])).await?;
        let info = described.get(topic).ok_or_else(|| unknown_topic(topic))?;
        let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
        let chosen: Vec<i32> = match partitions {
            None => all.clone(),
            Some(asked) => {
                for p in asked {
                    if !all.contains(p) {
                        return Err(ClientError::Invalid(format!(
                            "partition {p} does not exist: topic '{topic}' has {} partitions",
                            all.len()
                        )));
                    }
                }
                asked.to_vec()
            }
        };
        let earliest = client
            .list_offsets(topic, EARLIEST, config.isolation_level)
            .await?;
        let latest = client
            .list_offsets(topic, LATEST, config.isolation_level)
            .await?;
        let by_time = match start {
            StartAt::Timestamp(ts) => {
                client
                    .list_offsets(topic, ts.max(0), config.isolation_level)
                    .await?
            }
            _ => BTreeMap::new(),
        };
        let positions = chosen
            .iter()
            .map(|&p| {
                let low = earliest.get(&p).copied().unwrap_or(0);
                let high = latest.get(&p).copied().unwrap_or(low);
                let at = match start {
                    StartAt::Beginning => low,
                    StartAt::End => high,
                    StartAt::Offset(n) => n.clamp(low, high.max(low)),
                    StartAt::Timestamp(_) => match by_time.get(&p) {
                        Some(&o) if o != NO_OFFSET => o.clamp(low, high.max(low)),
                        _ => high,
                    },
                };
                (p, at)
            })
            .collect();
        Ok(Self {
            topic: topic.to_string(),
            config,
            partitions: info.partitions.clone(),
            positions,
        })
    }

    /// A consumer of the partitions a group assigned: each starts at its
    /// committed offset when it has one, else at `reset`
    /// (`auto.offset.reset`).
    pub async fn assigned(
        client: &mut ClusterClient,
        topic: &str,
        partitions: &[i32],
        committed: &BTreeMap<i32, i64>,
        reset: StartAt,
        config: ConsumerConfig,
    ) -> Result<Self, ClientError> {
        let mut consumer = Self::new(client, topic, Some(partitions), reset, config).await?;
        for (p, position) in consumer.positions.iter_mut() {
            if let Some(&offset) = committed.get(p) {
                *position = offset;
            }
        }
        Ok(consumer)
    }

    /// Goes on from where `previous` was in the partitions both consume
    /// (a group member keeping partitions through a rebalance).
    pub fn resume_from(&mut self, previous: &Consumer) {
        for (p, position) in self.positions.iter_mut() {
            if let Some(&at) = previous.positions.get(p) {
                *position = at;
            }
        }
    }

    /// The next offset to fetch, per partition.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// One round of fetches (one per leader); the records that came back, in
    /// offset order per partition. Leadership changes and other retriable
    /// errors refresh the metadata and return what the other partitions
    /// gave.
    pub async fn poll(
        &mut self,
        client: &mut ClusterClient,
    ) -> Result<Vec<ConsumedRecord>, ClientError> {
        if self.positions.is_empty() {
            // Nothing assigned: wait as a fetch would.
            let wait = u64::try_from(self.config.max_wait_ms).unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            return Ok(Vec::new());
        }
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut stale = false;
        for &partition in self.positions.keys() {
            match self.partitions.iter().find(|p| p.partition == partition) {
                Some(p) if p.leader >= 0 => by_leader.entry(p.leader).or_default().push(partition),
                _ => stale = true,
            }
        }
        // A long poll on one leader would hold up the others' records.
        let max_wait = if by_leader.len() > 1 {
            self.config.max_wait_ms.min(100)
        } else {
            self.config.max_wait_ms
        };
        let mut out = Vec::new();
        for (leader, partitions) in by_leader {
            let request = self.fetch_request(&partitions, max_wait);
            let response = match client
                .call_node_capped(leader, &request, FETCH_MAX_VERSION)
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    tracing::debug!("fetch from broker {leader} failed: {e}");
                    stale = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            ClientError::check(response.error_code, None, || {
                format!("could not fetch from broker {leader}")
            })?;
            for topic in &response.responses {
                for p in &topic.partitions {
                    match self.take_partition(client, p, &mut out).await {
                        Ok(()) => {}
                        Err(e) if e.is_retriable_after_refresh() => {
                            tracing::debug!("fetch of partition {}: {e}", p.partition_index);
                            stale = true;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if stale {
            tokio::time::sleep(client.retry_policy().initial_backoff).await;
            let described = client
                .describe_topics(Some(std::slice::from_ref(&self.topic)))
                .await?;
            if let Some(info) = described.get(&self.topic) {
                self.partitions = info.partitions.clone();
            }
        }
        Ok(out)
    }

    fn fetch_request(&self, partitions: &[i32], max_wait_ms: i32) -> FetchRequest {
        let mut topic = FetchTopic::default();
        topic.topic = TopicName(StrBytes::from_string(self.topic.clone()));
        topic.partitions = partitions
            .iter()
            .map(|&p| {
                let mut fp = FetchPartition::default();
                fp.partition = p;
                fp.current_leader_epoch = -1;
                fp.fetch_offset = self.positions.get(&p).copied().unwrap_or(0);
                fp.last_fetched_epoch = -1;
                fp.log_start_offset = -1;
                fp.partition_max_bytes = self.config.partition_max_bytes;
                fp
            })
            .collect();
        let mut request = FetchRequest::default();
        request.replica_id = BrokerId(-1);
        request.max_wait_ms = max_wait_ms;
        request.min_bytes = 1;
        request.max_bytes = self.config.max_bytes;
        request.isolation_level = self.config.isolation_level;
        request.session_id = 0;
        request.session_epoch = -1;
        request.topics = vec![topic];
        request
    }

    /// Decodes one partition's answer into `out` and moves its position.
    async fn take_partition(
        &mut self,
        client: &mut ClusterClient,
        p: &PartitionData,
        out: &mut Vec<ConsumedRecord>,
    ) -> Result<(), ClientError> {
        let partition = p.partition_index;
        let Some(position) = self.positions.get(&partition).copied() else {
            return Ok(());
        };
        if p.error_code == 1 {
            // OFFSET_OUT_OF_RANGE: retention or truncation moved the log;
            // go on from its start (or end, if we were past it).
            let earliest = client
                .list_offsets(&self.topic, EARLIEST, self.config.isolation_level)
                .await?;
            let low = earliest.get(&partition).copied().unwrap_or(0);
            let next = if position < low {
                low
            } else {
                let latest = client
                    .list_offsets(&self.topic, LATEST, self.config.isolation_level)
                    .await?;
                latest.get(&partition).copied().unwrap_or(low)
            };
            self.positions.insert(partition, next);
            return Ok(());
        }
        ClientError::check(p.error_code, None, || {
            format!("could not fetch {}-{partition}", self.topic)
        })?;
        let Some(bytes) = &p.records else {
            return Ok(());
        };
        let mut aborted: Vec<(i64, i64)> = p
            .aborted_transactions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| (a.first_offset, a.producer_id.0))
            .collect();
        aborted.sort_unstable();
        let mut aborted = aborted.into_iter().peekable();
        let mut aborting: BTreeSet<i64> = BTreeSet::new();
        let read_committed = self.config.isolation_level == 1;
        let mut next = position;
        for batch in batches(bytes) {
            // A batch cut off at the end of the answer is fetched again.
            let Ok((header, raw)) = batch else { break };
            if header.next_offset() <= position {
                continue;
            }
            if read_committed {
                while let Some(&(first, pid)) = aborted.peek() {
                    if first > header.last_offset() {
                        break;
                    }
                    aborting.insert(pid);
                    aborted.next();
                }
            }
            if header.is_control() {
                if let Some(marker) = read_marker(raw, &header) {
                    if !marker.commit {
                        aborting.remove(&header.producer_id());
                    }
                }
                next = header.next_offset();
                continue;
            }
            if read_committed
                && header.is_transactional()
                && aborting.contains(&header.producer_id())
            {
                next = header.next_offset();
                continue;
            }
            let payload = records_payload(raw, &header, MAX_DECOMPRESSED).map_err(|e| {
                ClientError::Invalid(format!(
                    "a record batch of {}-{partition} at offset {} does not decode: {e}",
                    self.topic,
                    header.base_offset()
                ))
            })?;
            for record in records(&header, &payload) {
                let record = record.map_err(|e| {
                    ClientError::Invalid(format!(
                        "a record of {}-{partition} does not decode: {e}",
                        self.topic
                    ))
                })?;
                if record.offset < position {
                    continue;
                }
                out.push(ConsumedRecord {
                    topic: self.topic.clone(),
                    partition,
                    offset: record.offset,
                    timestamp: record.timestamp,
                    key: record.key.map(<[u8]>::to_vec),
                    value: record.value.map(<[u8]>::to_vec),
                    headers: record
                        .headers
                        .iter()
                        .map(|h| (h.key.to_vec(), h.value.map(<[u8]>::to_vec)))
                        .collect(),
                });
            }
            next = header.next_offset();
        }
        self.positions.insert(partition, next.max(position));
        Ok(())
    }
}
