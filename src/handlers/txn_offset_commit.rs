//! TxnOffsetCommit: a transactional producer commits a group's offsets
//! inside its transaction. The group's `__consumer_offsets` partition must
//! be in the transaction (AddOffsetsToTxn) and the producer current. The
//! offsets are written at once in a transactional batch of the producer,
//! but count as committed only when the transaction's COMMIT marker is
//! written; until then OffsetFetch with `require_stable` answers
//! UNSTABLE_OFFSET_COMMIT for them. v5 (KIP-890) is served as v4.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;
use wharf_coordinator::{partition_for, CommitRequest, OFFSETS_TOPIC};

use super::offset_commit::commit_entry;
use super::{HandlerResult, Request};
use crate::broker::groups::{group_error, now_ms};
use crate::broker::txns::{txn_error, FencedSince};
use crate::broker::Broker;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(request: Request) -> HandlerResult {
    let body: TxnOffsetCommitRequest = request.decode()?;
    request.broker.ensure_offsets_topic().await;
    request.broker.ensure_txn_state_topic().await;
    let broker = &request.broker;
    let version = request.api_version;
    let mut outcomes: Vec<Vec<(i32, Option<ResponseError>)>> = Vec::new();
    let mut entries = Vec::new();
    for topic in &body.topics {
        let mut parts = Vec::new();
        for p in &topic.partitions {
            let outcome = commit_entry(
                broker,
                &topic.name.0,
                p.partition_index,
                p.committed_offset,
                p.committed_leader_epoch,
                p.committed_metadata.as_deref(),
            );
            let error = match outcome {
                Ok(entry) => {
                    entries.push(entry);
                    None
                }
                Err(e) => Some(e),
            };
            parts.push((p.partition_index, error));
        }
        outcomes.push(parts);
    }
    let commit = CommitRequest {
        group_id: body.group_id.0.to_string(),
        generation_id: body.generation_id,
        member_id: body.member_id.to_string(),
        group_instance_id: body.group_instance_id.as_ref().map(|s| s.to_string()),
        entries,
    };
    let overall = match broker.group_coordinator_error(&body.group_id.0) {
        Some(e) => Some(e),
        None => commit_offsets(broker, &body, &commit, version).err(),
    };
    let mut response = TxnOffsetCommitResponse::default();
    response.topics = body
        .topics
        .into_iter()
        .zip(outcomes)
        .map(|(topic, parts)| {
            let mut t = TxnOffsetCommitResponseTopic::default();
            t.name = topic.name;
            t.partitions = parts
                .into_iter()
                .map(|(index, error)| {
                    let mut p = TxnOffsetCommitResponsePartition::default();
                    p.partition_index = index;
                    p.error_code = error.or(overall).map_or(0, |e| e.code());
                    p
                })
                .collect();
            t
        })
        .collect();
    request.respond(&response)
}

/// Checks the producer and its transaction, then holds and writes the
/// offsets.
fn commit_offsets(
    broker: &Broker,
    body: &TxnOffsetCommitRequest,
    commit: &CommitRequest,
    version: i16,
) -> Result<(), ResponseError> {
    let offsets = broker.offsets_topic().map_err(|e| {
        tracing::warn!("cannot create __consumer_offsets: {e}");
        ResponseError::CoordinatorNotAvailable
    })?;
    let partition = partition_for(&commit.group_id, offsets.partition_count());
    let wanted = [(OFFSETS_TOPIC.to_string(), partition)];
    let producer_id = body.producer_id.0;
    // Checked against the transaction's state when this broker is also
    // its transaction coordinator (another broker's is not asked yet).
    let coordinator_here = broker.txn_coordinator_error(&body.transactional_id.0)
        != Some(ResponseError::NotCoordinator);
    if coordinator_here {
        let verified = broker
            .txns
            .verify_partitions(
                &body.transactional_id.0,
                producer_id,
                body.producer_epoch,
                &wanted,
            )
            .map_err(|e| txn_error(e, version, FencedSince::V2))?;
        if let Some(Err(e)) = verified.into_iter().next() {
            tracing::info!(
                transactional_id = %body.transactional_id.0,
                "TxnOffsetCommit before AddOffsetsToTxn: {e}"
            );
            return Err(txn_error(e, version, FencedSince::V2));
        }
    }
    let records = broker
        .groups
        .txn_commit(producer_id, commit, now_ms())
        .map_err(group_error)?;
    broker
        .write_txn_offsets(producer_id, body.producer_epoch, &records)
        .map_err(|e| {
            tracing::error!(group = %commit.group_id, "could not persist transactional offsets: {e}");
            e.kafka_error()
        })
}
