//! Fetch sessions (KIP-227) on the request path: reads a request's session
//! id, epoch and forgotten topics into the broker's session cache (see
//! `crate::broker::fetch_sessions`), says which partitions to read, and
//! trims an incremental answer to the partitions with something new.

use std::sync::Arc;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::broker::fetch_sessions::{
    Context, PartitionAnswer, PartitionKey, PartitionRequest, SessionError, TopicKey,
    INVALID_SESSION_ID,
};
use crate::broker::Broker;

/// Session fields first appear in Fetch v7.
const FIRST_SESSION_VERSION: i16 = 7;

fn topic_key(topic: &FetchTopic, by_id: bool) -> TopicKey {
    if by_id {
        TopicKey::Id(topic.topic_id)
    } else {
        TopicKey::Name(Arc::from(topic.topic.0.as_str()))
    }
}

fn response_topic_key(topic: &FetchableTopicResponse, by_id: bool) -> TopicKey {
    if by_id {
        TopicKey::Id(topic.topic_id)
    } else {
        TopicKey::Name(Arc::from(topic.topic.0.as_str()))
    }
}

fn partition_request(p: &FetchPartition, version: i16) -> PartitionRequest {
    PartitionRequest {
        fetch_offset: p.fetch_offset,
        partition_max_bytes: p.partition_max_bytes,
        current_leader_epoch: p.current_leader_epoch,
        last_fetched_epoch: if version >= 12 {
            p.last_fetched_epoch
        } else {
            -1
        },
        log_start_offset: p.log_start_offset,
    }
}

fn partition_answer(p: &PartitionData) -> PartitionAnswer {
    PartitionAnswer {
        record_bytes: p.records.as_ref().map_or(0, |r| r.len()),
        high_watermark: p.high_watermark,
        log_start_offset: p.log_start_offset,
        last_stable_offset: p.last_stable_offset,
        error_code: p.error_code,
        preferred_replica: p.preferred_read_replica.0 >= 0,
        diverging: p.diverging_epoch.epoch >= 0,
    }
}

/// Applies the request's session id, epoch, partitions and forgotten
/// topics to the session cache.
pub(super) fn begin(broker: &Broker, body: &FetchRequest, version: i16) -> Context {
    if version < FIRST_SESSION_VERSION {
        return Context::Sessionless;
    }
    let by_id = version >= 13;
    let requested: Vec<(PartitionKey, PartitionRequest)> = body
        .topics
        .iter()
        .flat_map(|t| {
            let topic = topic_key(t, by_id);
            t.partitions.iter().map(move |p| {
                (
                    PartitionKey {
                        topic: topic.clone(),
                        partition: p.partition,
                    },
                    partition_request(p, version),
                )
            })
        })
        .collect();
    let forgotten: Vec<PartitionKey> = body
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = if by_id {
                TopicKey::Id(t.topic_id)
            } else {
                TopicKey::Name(Arc::from(t.topic.0.as_str()))
            };
            t.partitions.iter().map(move |p| PartitionKey {
                topic: topic.clone(),
                partition: *p,
            })
        })
        .collect();
    let context = broker.fetch_sessions.with(|cache, now| {
        cache.context(
            body.session_id,
            body.session_epoch,
            by_id,
            &requested,
            &forgotten,
            now,
        )
    });
    if let Context::Error(e) = &context {
        tracing::debug!(
            session_id = body.session_id,
            epoch = body.session_epoch,
            "fetch session refused: {e:?}"
        );
    }
    context
}

/// The partitions of an incremental fetch as request topics, each topic
/// once, in the order the session first lists it.
pub(super) fn topics_of(partitions: &[(PartitionKey, PartitionRequest)]) -> Vec<FetchTopic> {
    let mut topics: Vec<(TopicKey, FetchTopic)> = Vec::new();
    for (key, request) in partitions {
        let index = match topics.iter().position(|(k, _)| *k == key.topic) {
            Some(i) => i,
            None => {
                let mut topic = FetchTopic::default();
                match &key.topic {
                    TopicKey::Id(id) => topic.topic_id = *id,
                    TopicKey::Name(name) => {
                        topic.topic = TopicName(StrBytes::from_string(name.to_string()));
                    }
                }
                topics.push((key.topic.clone(), topic));
                topics.len() - 1
            }
        };
        let mut p = FetchPartition::default();
        p.partition = key.partition;
        p.fetch_offset = request.fetch_offset;
        p.partition_max_bytes = request.partition_max_bytes;
        p.current_leader_epoch = request.current_leader_epoch;
        p.last_fetched_epoch = request.last_fetched_epoch;
        p.log_start_offset = request.log_start_offset;
        if let Some((_, topic)) = topics.get_mut(index) {
            topic.partitions.push(p);
        }
    }
    topics.into_iter().map(|(_, t)| t).collect()
}

/// The session id an error found after the read is answered with: the
/// session's own when another fetch moved its epoch on meanwhile (a
/// duplicate request, as Kafka answers it), else 0.
pub(super) fn late_error_session_id(context: &Context, error: SessionError) -> i32 {
    match (context, error) {
        (Context::Incremental { id, .. }, SessionError::InvalidEpoch) => *id,
        _ => INVALID_SESSION_ID,
    }
}

/// After the read: opens a session for a full fetch, or trims an
/// incremental answer to what changed. Returns the session id to answer
/// with, or the session error to answer instead.
pub(super) fn finish(
    broker: &Broker,
    context: &Context,
    body: &FetchRequest,
    version: i16,
    privileged: bool,
    responses: &mut Vec<FetchableTopicResponse>,
) -> Result<i32, SessionError> {
    let by_id = version >= 13;
    match context {
        Context::Sessionless => Ok(INVALID_SESSION_ID),
        Context::Error(e) => Err(*e),
        Context::Full => {
            // The responses follow the request partition for partition.
            let answered: Vec<_> = body
                .topics
                .iter()
                .zip(responses.iter())
                .flat_map(|(t, r)| {
                    let topic = topic_key(t, by_id);
                    t.partitions
                        .iter()
                        .zip(&r.partitions)
                        .map(move |(p, answer)| {
                            (
                                PartitionKey {
                                    topic: topic.clone(),
                                    partition: p.partition,
                                },
                                partition_request(p, version),
                                partition_answer(answer),
                            )
                        })
                })
                .collect();
            let id = broker
                .fetch_sessions
                .with(|cache, now| cache.create(privileged, by_id, &answered, now));
            if id != INVALID_SESSION_ID {
                tracing::debug!(
                    session_id = id,
                    partitions = answered.len(),
                    "fetch session opened"
                );
            }
            Ok(id)
        }
        Context::Incremental { id, epoch, .. } => {
            let answers: Vec<(PartitionKey, PartitionAnswer)> = responses
                .iter()
                .flat_map(|t| {
                    let topic = response_topic_key(t, by_id);
                    t.partitions.iter().map(move |p| {
                        (
                            PartitionKey {
                                topic: topic.clone(),
                                partition: p.partition_index,
                            },
                            partition_answer(p),
                        )
                    })
                })
                .collect();
            let keep = broker
                .fetch_sessions
                .with(|cache, _| cache.answer_incremental(*id, *epoch, &answers))?;
            let mut keep = keep.into_iter();
            for topic in responses.iter_mut() {
                topic.partitions.retain(|_| keep.next().unwrap_or(true));
            }
            responses.retain(|t| !t.partitions.is_empty());
            Ok(*id)
        }
    }
}
