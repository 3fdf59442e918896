//! OffsetCommit: a member's (or a simple consumer's) offsets, made durable
//! in `__consumer_offsets` before the answer.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;
use wharf_coordinator::{CommitRequest, OffsetCommitEntry};

use super::{HandlerResult, Request};
use crate::broker::groups::{group_error, now_ms};
use crate::broker::Broker;
use crate::security::authz::{Op, Resource};

pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 9;

/// Kafka's offset.metadata.max.bytes.
const MAX_METADATA_BYTES: usize = 4096;

/// One partition of an offset commit (plain or transactional): the entry to
/// commit, or the error to answer with for an unknown partition or
/// metadata over Kafka's limit.
pub(super) fn commit_entry(
    broker: &Broker,
    name: &str,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<&str>,
) -> Result<OffsetCommitEntry, ResponseError> {
    if !broker.partition_exists(name, partition) {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    if metadata.is_some_and(|m| m.len() > MAX_METADATA_BYTES) {
        return Err(ResponseError::OffsetMetadataTooLarge);
    }
    Ok(OffsetCommitEntry {
        topic: name.to_string(),
        partition,
        offset,
        leader_epoch,
        metadata: metadata.map(str::to_string),
    })
}

/// How long a commit waits for its records to replicate (Kafka's
/// `offsets.commit.timeout.ms` default).
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn handle(request: Request) -> HandlerResult {
    let body: OffsetCommitRequest = request.decode()?;
    request.broker.ensure_offsets_topic().await;
    let broker = &request.broker;
    // With the authorizer on: READ on the group (else every partition
    // fails with GROUP_AUTHORIZATION_FAILED) and on each topic.
    let group_denied = request.group_denied(Op::Read, &body.group_id.0);
    // Per partition: Ok(entry) to commit, or the error to answer with.
    let mut outcomes: Vec<Vec<(i32, Result<OffsetCommitEntry, ResponseError>)>> = Vec::new();
    let mut entries = Vec::new();
    for topic in &body.topics {
        let mut parts = Vec::new();
        let topic_denied =
            group_denied.is_none() && !request.authorized(Op::Read, Resource::Topic, &topic.name.0);
        for p in &topic.partitions {
            let outcome = if let Some(e) = group_denied {
                Err(e)
            } else if topic_denied {
                Err(ResponseError::TopicAuthorizationFailed)
            } else {
                commit_entry(
                    broker,
                    &topic.name.0,
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_deref(),
                )
            };
            if let Ok(entry) = &outcome {
                entries.push(entry.clone());
            }
            parts.push((p.partition_index, outcome));
        }
        outcomes.push(parts);
    }
    let commit = CommitRequest {
        group_id: body.group_id.0.to_string(),
        generation_id: body.generation_id_or_member_epoch,
        member_id: body.member_id.to_string(),
        group_instance_id: body.group_instance_id.map(|s| s.to_string()),
        entries,
    };
    // One error for every valid partition, if the commit fails as a whole.
    let refused = broker.group_coordinator_error(&commit.group_id);
    let overall: Option<ResponseError> = match refused {
        Some(e) => Some(e),
        None => match broker.groups.commit(&commit, now_ms()) {
            Err(e) => Some(group_error(e)),
            Ok(records) => match broker.write_offsets_records(&records) {
                // Answered once the offsets are replicated: a commit the
                // client saw succeed survives the coordinator's failover.
                Ok(pending) => broker.wait_replicated(pending, COMMIT_TIMEOUT).await.err(),
                Err(e) => {
                    tracing::error!(group = %commit.group_id, "could not persist committed offsets: {e}");
                    Some(e.kafka_error())
                }
            },
        },
    };
    let mut response = OffsetCommitResponse::default();
    response.topics = body
        .topics
        .into_iter()
        .zip(outcomes)
        .map(|(topic, parts)| {
            let mut t = OffsetCommitResponseTopic::default();
            t.name = topic.name;
            t.partitions = parts
                .into_iter()
                .map(|(index, outcome)| {
                    let mut p = OffsetCommitResponsePartition::default();
                    p.partition_index = index;
                    p.error_code = match (outcome, overall) {
                        (Err(e), _) | (Ok(_), Some(e)) => e.code(),
                        (Ok(_), None) => 0,
                    };
                    p
                })
                .collect();
            t
        })
        .collect();
    request.respond(&response)
}
