//! AddPartitionsToTxn: partitions join a producer's ongoing transaction
//! before it writes to them. v0-v3 carry one transaction; v4+ (KIP-890)
//! carry a batch of them, each possibly `verify_only` (a check that the
//! partitions are already in the transaction, changing nothing).
//!
//! As in Kafka, when any partition is unknown nothing is added: unknown
//! partitions get UNKNOWN_TOPIC_OR_PARTITION and the others
//! OPERATION_NOT_ATTEMPTED. Otherwise every partition gets the
//! coordinator's answer.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};
use crate::broker::groups::now_ms;
use crate::broker::txns::{txn_error, FencedSince};
use crate::broker::Broker;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

/// The first version with batched transactions.
const BATCHED_VERSION: i16 = 4;

pub async fn handle(request: Request) -> HandlerResult {
    let body: AddPartitionsToTxnRequest = request.decode()?;
    request.broker.ensure_txn_state_topic().await;
    let version = request.api_version;
    let broker = &request.broker;
    let mut response = AddPartitionsToTxnResponse::default();
    if version < BATCHED_VERSION {
        response.results_by_topic_v3_and_below = add(
            broker,
            &body.v3_and_below_transactional_id.0,
            body.v3_and_below_producer_id.0,
            body.v3_and_below_producer_epoch,
            false,
            &body.v3_and_below_topics,
            version,
        )
        .await;
        return request.respond(&response);
    }
    let mut results = Vec::with_capacity(body.transactions.len());
    for t in &body.transactions {
        let mut result = AddPartitionsToTxnResult::default();
        result.transactional_id = t.transactional_id.clone();
        result.topic_results = add(
            broker,
            &t.transactional_id.0,
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &t.topics,
            version,
        )
        .await;
        results.push(result);
    }
    response.results_by_transaction = results;
    request.respond(&response)
}

/// One transaction's partitions: the per-partition answers.
async fn add(
    broker: &Broker,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut wanted = Vec::new();
    let mut unknown = Vec::new();
    for t in topics {
        for &p in &t.partitions {
            if broker.partition_exists(&t.name.0, p) {
                wanted.push((t.name.0.to_string(), p));
            } else {
                unknown.push((t.name.0.to_string(), p));
            }
        }
    }
    // One code per (topic, partition), in request order.
    let refused = broker.txn_coordinator_error(transactional_id);
    let codes: Vec<i16> = if let Some(e) = refused {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|_| e.code()))
            .collect()
    } else if !unknown.is_empty() {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p)))
            .map(|key| {
                if unknown.contains(&key) {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            })
            .collect()
    } else if verify_only {
        match broker
            .txns
            .verify_partitions(transactional_id, producer_id, epoch, &wanted)
        {
            Ok(each) => each
                .into_iter()
                .map(|r| r.map_or_else(|e| txn_error(e, version, FencedSince::V2).code(), |()| 0))
                .collect(),
            Err(e) => vec![txn_error(e, version, FencedSince::V2).code(); wanted.len()],
        }
    } else {
        let code = match broker.txns.add_partitions(
            transactional_id,
            producer_id,
            epoch,
            &wanted,
            now_ms(),
        ) {
            Ok(None) => 0,
            Ok(Some(record)) => match broker.write_txn_record(&record) {
                Ok(pending) => broker
                    .wait_replicated(vec![pending], crate::broker::txns::STATE_WRITE_TIMEOUT)
                    .await
                    .err()
                    .map_or(0, |e| e.code()),
                Err(e) => {
                    tracing::error!(transactional_id, "transaction state not written: {e}");
                    ResponseError::CoordinatorNotAvailable.code()
                }
            },
            Err(e) => {
                tracing::info!(transactional_id, "AddPartitionsToTxn refused: {e}");
                txn_error(e, version, FencedSince::V2).code()
            }
        };
        vec![code; wanted.len()]
    };
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|t| {
            let mut result = AddPartitionsToTxnTopicResult::default();
            result.name = t.name.clone();
            result.results_by_partition = t
                .partitions
                .iter()
                .map(|&p| {
                    let mut r = AddPartitionsToTxnPartitionResult::default();
                    r.partition_index = p;
                    r.partition_error_code = codes.next().unwrap_or(0);
                    r
                })
                .collect();
            result
        })
        .collect()
}
