//! Produce: validate each partition's batches and append them to its log.
//!
//! Produce v0-v2 are listed in ApiVersions (librdkafka disables compression
//! when they are missing, as Apache Kafka 4 knows) but answered with
//! UNSUPPORTED_VERSION for every partition.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_protocol::legacy;

use super::{HandlerError, HandlerResult, Request, ResponseBody};
use crate::broker::compression::{compression_for, prepare_records, PrepareError};
use crate::broker::groups::is_internal;
use crate::broker::retention::now_ms;
use crate::broker::timestamps::{TimestampError, TimestampRules};
use crate::broker::{storage_error_code, Broker};
use crate::security::authz::{Op, Resource};
use wharf_storage::StorageError;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 13;

/// The first version the codec decodes; older ones are refused.
const FIRST_DECODED_VERSION: i16 = 3;

pub async fn handle(request: Request) -> HandlerResult {
    if request.api_version < FIRST_DECODED_VERSION {
        tracing::warn!(
            version = request.api_version,
            "refusing Produce below v3 (message formats v0/v1)"
        );
        return legacy::unsupported_produce_response(&request.body, request.api_version)
            .map(|body| body.map(|b| ResponseBody::One(Bytes::from(b))))
            .map_err(|e| HandlerError::Malformed {
                api: request.api_key,
                version: request.api_version,
                reason: e.to_string(),
            });
    }
    let body: ProduceRequest = request.decode()?;
    let broker = &request.broker;
    let fsync = body.acks == -1 && broker.settings.fsync_before_ack;

    // Transactional batches are checked against the coordinator's state
    // (KIP-890's verification) when this broker is the producer's
    // transaction coordinator; another broker's coordinator is not asked
    // yet.
    let verify_here = body.transactional_id.as_ref().is_none_or(|id| {
        broker.txn_coordinator_error(&id.0) != Some(ResponseError::NotCoordinator)
    });
    // With the authorizer on: transactional batches need WRITE on the
    // transactional id (else every partition fails), each topic WRITE.
    let (topic_data, denied) = authorize(
        &request,
        body.transactional_id.as_ref().map(|t| t.0.as_str()),
        body.topic_data,
    );
    // Appends are file work: off the async workers, one hop per request.
    let appending = broker.clone();
    let (version, acks) = (request.api_version, body.acks);
    let listener = request.listener.clone();
    let Appended {
        mut responses,
        committing,
        leaders,
    } = tokio::task::spawn_blocking(move || {
        append_all(
            &appending,
            &listener,
            topic_data,
            version,
            acks,
            verify_here,
        )
    })
    .await
    .map_err(|e| HandlerError::Internal(format!("Produce task failed: {e}")))?;
    // acks=all: answered once the records are committed (under the high
    // watermark), and fsynced first when the broker is asked to; within the
    // request's timeout, else REQUEST_TIMED_OUT.
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(u64::try_from(body.timeout_ms.max(0)).unwrap_or(0));
    for (t, p, partition, end, epoch) in committing {
        let failed = if fsync {
            match partition.wait_durable(end).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(partition = partition.index, "fsync before ack failed: {e}");
                    Some(ResponseError::KafkaStorageError)
                }
            }
        } else {
            None
        };
        let failed = match failed {
            Some(e) => Some(e),
            None => match tokio::time::timeout_at(deadline, partition.wait_committed(end, epoch))
                .await
            {
                Ok(true) => None,
                // Leadership moved: the records may never commit.
                Ok(false) => Some(ResponseError::NotLeaderOrFollower),
                Err(_) => {
                    let (min_isr, isr) = partition.in_sync();
                    Some(if isr < min_isr {
                        ResponseError::NotEnoughReplicasAfterAppend
                    } else {
                        ResponseError::RequestTimedOut
                    })
                }
            },
        };
        if let Some(code) = failed {
            let slot = responses
                .get_mut(t)
                .and_then(|r: &mut TopicProduceResponse| r.partition_responses.get_mut(p));
            if let Some(out) = slot {
                out.error_code = code.code();
                out.base_offset = -1;
            }
        }
    }
    if body.acks == 0 {
        return Ok(None);
    }
    responses.extend(denied);
    let mut response = ProduceResponse::default();
    response.responses = responses;
    if request.api_version >= 10 {
        response.node_endpoints = leaders
            .into_iter()
            .map(|(id, (host, port, rack))| {
                let mut e = kafka_protocol::messages::produce_response::NodeEndpoint::default();
                e.node_id = id.into();
                e.host = StrBytes::from_string(host);
                e.port = port;
                e.rack = rack.map(StrBytes::from_string);
                e
            })
            .collect();
    }
    request.respond(&response)
}

/// Splits the topics into those the principal may write and the answers
/// for the others (TOPIC_AUTHORIZATION_FAILED, or
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED for all when the transactional id
/// may not be written).
fn authorize(
    request: &Request,
    transactional_id: Option<&str>,
    topic_data: Vec<TopicProduceData>,
) -> (Vec<TopicProduceData>, Vec<TopicProduceResponse>) {
    if !request.authorizer_on() {
        return (topic_data, Vec::new());
    }
    let txn_denied = transactional_id
        .is_some_and(|id| !request.authorized(Op::Write, Resource::TransactionalId, id));
    let image = request.broker.image();
    let mut allowed = Vec::with_capacity(topic_data.len());
    let mut denied = Vec::new();
    for t in topic_data {
        let name = if request.api_version >= 13 {
            image.topic(t.topic_id).map(|topic| topic.name.clone())
        } else {
            Some(t.name.0.to_string())
        };
        let code = if txn_denied {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else {
            name.filter(|n| !request.authorized(Op::Write, Resource::Topic, n))
                .map(|_| ResponseError::TopicAuthorizationFailed)
        };
        let Some(code) = code else {
            allowed.push(t);
            continue;
        };
        let mut out = TopicProduceResponse::default();
        out.name = t.name.clone();
        out.topic_id = t.topic_id;
        out.partition_responses = t
            .partition_data
            .iter()
            .map(|p| {
                let mut r = PartitionProduceResponse::default();
                r.index = p.index;
                r.error_code = code.code();
                r.base_offset = -1;
                r.log_append_time_ms = -1;
                r.log_start_offset = -1;
                r
            })
            .collect();
        denied.push(out);
    }
    (allowed, denied)
}

/// Applies the topic's `message.timestamp.*` configs to the batches in
/// `buf`: stamps them (LogAppendTime; returns the time) or checks their
/// CreateTime bounds.
fn stamp(
    broker: &Broker,
    configs: Option<&BTreeMap<String, String>>,
    buf: &mut [u8],
) -> Result<Option<i64>, Rejection> {
    let empty = BTreeMap::new();
    let rules = TimestampRules::for_topic(&broker.settings.configs, configs.unwrap_or(&empty));
    let max = broker.settings.max_decompressed_batch_bytes;
    rules.apply(buf, now_ms(), max).map_err(|e| {
        let message = e.to_string();
        match e {
            TimestampError::OutOfRange { records, .. } => {
                (ResponseError::InvalidTimestamp, message, records)
            }
            TimestampError::Batch(_) => (ResponseError::CorruptMessage, message, Vec::new()),
        }
    })
}

/// Why a partition's records were refused before reaching the log: the
/// error, a message, and the records it names (index in the batch, why).
type Rejection = (ResponseError, String, Vec<(i32, String)>);

/// The per-record errors (KIP-467) of an append the log refused: the
/// records it names, each with why.
fn record_errors_of(error: &StorageError) -> Vec<(i32, String)> {
    match error {
        StorageError::KeylessRecords { indexes } => indexes
            .iter()
            .map(|&i| {
                (
                    i,
                    format!("record {i} has no key, which a compacted topic requires"),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Fills a rejected partition's KIP-467 fields (Produce v8+): the reason,
/// and the records that caused it.
fn explain_rejection(
    out: &mut PartitionProduceResponse,
    version: i16,
    message: String,
    records: Vec<(i32, String)>,
) {
    if version < 8 {
        return;
    }
    out.error_message = Some(StrBytes::from_string(message));
    out.record_errors = records
        .into_iter()
        .map(|(index, message)| {
            let mut e = BatchIndexAndErrorMessage::default();
            e.batch_index = index;
            e.batch_index_error_message = Some(StrBytes::from_string(message));
            e
        })
        .collect();
}

/// The bytes to append for one partition: the records as they arrived, or
/// recompressed into the topic's `compression.type`.
fn prepare(
    broker: &Broker,
    configs: Option<&BTreeMap<String, String>>,
    records: &[u8],
    api_version: i16,
) -> Result<BytesMut, (ResponseError, String)> {
    let target = configs.and_then(|c| compression_for(c, broker.settings.compression_type));
    let max = broker.settings.max_decompressed_batch_bytes;
    match prepare_records(records, target, api_version, max) {
        Ok(Some(recompressed)) => Ok(BytesMut::from(&recompressed[..])),
        Ok(None) => Ok(BytesMut::from(records)),
        Err(e @ PrepareError::ZstdNeedsV7(_)) => {
            Err((ResponseError::UnsupportedCompressionType, e.to_string()))
        }
        Err(e @ (PrepareError::ControlBatch | PrepareError::NotOneBatch(_))) => {
            Err((ResponseError::InvalidRecord, e.to_string()))
        }
        Err(e @ PrepareError::Batch(_)) => Err((ResponseError::CorruptMessage, e.to_string())),
    }
}

/// What appending a Produce request's partitions gives: the topic
/// responses, the acks=all appends to wait for (topic index, partition
/// index, partition, end offset), and the leaders named in
/// NOT_LEADER_OR_FOLLOWER answers (KIP-951).
struct Appended {
    responses: Vec<TopicProduceResponse>,
    /// (topic index, partition index, partition, end offset, leader epoch
    /// of the append).
    committing: Vec<(
        usize,
        usize,
        std::sync::Arc<crate::broker::Partition>,
        i64,
        i32,
    )>,
    leaders: BTreeMap<i32, (String, i32, Option<String>)>,
}

/// Validates and appends every partition's batches: file work, run on a
/// blocking thread (see `handle`).
/// `listener`: the client's, for the addresses of other partitions'
/// leaders.
fn append_all(
    broker: &Broker,
    listener: &str,
    topic_data: Vec<kafka_protocol::messages::produce_request::TopicProduceData>,
    version: i16,
    acks: i16,
    verify_here: bool,
) -> Appended {
    let acks_valid = (-1..=1).contains(&acks);
    let by_id = version >= 13;
    let mut committing = Vec::new();
    let mut responses = Vec::with_capacity(topic_data.len());
    let mut leaders: BTreeMap<i32, (String, i32, Option<String>)> = BTreeMap::new();
    for topic_data in topic_data {
        let topic = if by_id {
            broker.topic_by_id(&topic_data.topic_id)
        } else {
            broker.topic(topic_data.name.0.as_str())
        };
        let unknown = if by_id {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let mut out = PartitionProduceResponse::default();
            out.index = data.index;
            out.base_offset = -1;
            out.log_append_time_ms = -1;
            out.log_start_offset = -1;
            let partition = topic
                .as_ref()
                .and_then(|t| t.partition(data.index))
                .filter(|p| broker.leads(p));
            let hint = match partition {
                Some(_) => None,
                None => broker.leader_hint(
                    listener,
                    Some(topic_data.name.0.as_str()),
                    by_id.then_some(topic_data.topic_id),
                    data.index,
                ),
            };
            let mut log_append_time = -1;
            let result = match (partition, data.records) {
                _ if !acks_valid => Err(ResponseError::InvalidRequiredAcks),
                (None, _) if hint.is_some() => {
                    if let Some(hint) = &hint {
                        out.current_leader.leader_id = hint.leader.into();
                        out.current_leader.leader_epoch = hint.leader_epoch;
                        if let Some((host, port, rack)) = &hint.endpoint {
                            leaders.insert(hint.leader, (host.clone(), *port, rack.clone()));
                        }
                    }
                    Err(ResponseError::NotLeaderOrFollower)
                }
                (None, _) if topic.is_none() => Err(unknown),
                // Only the broker writes internal topics, as in Kafka.
                (Some(_), _) if topic.as_ref().is_some_and(|t| is_internal(&t.name)) => {
                    tracing::warn!(
                        topic = topic.as_ref().map(|t| &*t.name),
                        "refusing a client's produce to an internal topic"
                    );
                    Err(ResponseError::InvalidTopicException)
                }
                (None, _) => Err(ResponseError::UnknownTopicOrPartition),
                (Some(_), None) => Err(ResponseError::CorruptMessage),
                (Some(_), Some(records))
                    if topic.as_ref().is_some_and(|t| {
                        verify_here
                            && broker
                                .check_transactional_produce(&t.name, data.index, &records)
                                .map_err(|e| out.error_code = e.code())
                                .is_err()
                    }) =>
                {
                    partitions.push(out);
                    continue;
                }
                (Some(partition), Some(records)) => {
                    let configs = topic.as_ref().map(|t| t.configs());
                    let prepared = prepare(broker, configs.as_ref(), &records, version)
                        .map_err(|(error, message)| (error, message, Vec::new()))
                        .and_then(|mut buf| {
                            stamp(broker, configs.as_ref(), &mut buf).map(|time| (buf, time))
                        });
                    let mut buf = match prepared {
                        Ok((buf, time)) => {
                            log_append_time = time.unwrap_or(-1);
                            buf
                        }
                        Err((err, message, records)) => {
                            tracing::warn!(
                                topic = topic.as_ref().map(|t| &*t.name),
                                partition = data.index,
                                "produce rejected: {message}"
                            );
                            out.error_code = err.code();
                            if matches!(
                                err,
                                ResponseError::InvalidRecord | ResponseError::InvalidTimestamp
                            ) {
                                explain_rejection(&mut out, version, message, records);
                            }
                            partitions.push(out);
                            continue;
                        }
                    };
                    if acks == -1 {
                        let (min_isr, isr) = partition.in_sync();
                        if isr < min_isr {
                            tracing::warn!(
                                topic = topic.as_ref().map(|t| &*t.name),
                                partition = data.index,
                                isr,
                                min_isr,
                                "acks=all produce refused: too few in-sync replicas"
                            );
                            out.error_code = ResponseError::NotEnoughReplicas.code();
                            partitions.push(out);
                            continue;
                        }
                    }
                    let epoch = partition.leader_epoch();
                    let appended = buf.len();
                    partition
                        .append(&mut buf)
                        .map_err(|e| {
                            let code = storage_error_code(&e);
                            let topic = topic.as_ref().map(|t| &*t.name);
                            if code == ResponseError::KafkaStorageError {
                                tracing::error!(
                                    topic,
                                    partition = data.index,
                                    "produce failed: {e}"
                                );
                            } else {
                                tracing::warn!(
                                    topic,
                                    partition = data.index,
                                    "produce rejected: {e}"
                                );
                            }
                            if code == ResponseError::InvalidRecord {
                                explain_rejection(
                                    &mut out,
                                    version,
                                    e.to_string(),
                                    record_errors_of(&e),
                                );
                            }
                            code
                        })
                        .map(|info| {
                            if let Some(t) = &topic {
                                broker.metrics.bytes_in(&t.name, appended);
                            }
                            (info, partition.log_start_offset(), partition.clone(), epoch)
                        })
                }
            };
            match result {
                Ok((info, log_start, partition, epoch)) => {
                    if info.duplicate {
                        tracing::debug!(
                            partition = data.index,
                            base_offset = info.base_offset,
                            "duplicate idempotent batch acknowledged with its original offset"
                        );
                    }
                    if acks == -1 {
                        let end = info.last_offset.saturating_add(1);
                        committing.push((responses.len(), partitions.len(), partition, end, epoch));
                    }
                    out.base_offset = info.base_offset;
                    out.log_append_time_ms = log_append_time;
                    if version >= 5 {
                        out.log_start_offset = log_start;
                    }
                }
                Err(err) => out.error_code = err.code(),
            }
            partitions.push(out);
        }
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic_data.name;
        topic_response.topic_id = topic_data.topic_id;
        topic_response.partition_responses = partitions;
        responses.push(topic_response);
    }
    crate::metrics::produce_answered(broker, &responses);
    Appended {
        responses,
        committing,
        leaders,
    }
}
