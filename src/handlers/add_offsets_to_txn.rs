//! AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
//! producer's transaction, so TxnOffsetCommit can follow and the
//! transaction's marker reaches the group's offsets.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use kafka_protocol::ResponseError;
use wharf_coordinator::{partition_for, OFFSETS_TOPIC};

use super::{HandlerResult, Request};
use crate::broker::groups::now_ms;
use crate::broker::txns::{txn_error, FencedSince};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

pub async fn handle(request: Request) -> HandlerResult {
    let body: AddOffsetsToTxnRequest = request.decode()?;
    request.broker.ensure_offsets_topic().await;
    request.broker.ensure_txn_state_topic().await;
    let broker = &request.broker;
    let mut response = AddOffsetsToTxnResponse::default();
    if let Some(e) = broker.txn_coordinator_error(&body.transactional_id.0) {
        response.error_code = e.code();
        return request.respond(&response);
    }
    // The group's partition, wherever it is led (counted in the image).
    let count = broker
        .image()
        .topic_by_name(OFFSETS_TOPIC)
        .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX));
    let Some(count) = count else {
        tracing::warn!("AddOffsetsToTxn before {OFFSETS_TOPIC} exists");
        response.error_code = ResponseError::CoordinatorNotAvailable.code();
        return request.respond(&response);
    };
    let partition = partition_for(&body.group_id.0, count);
    let wanted = [(OFFSETS_TOPIC.to_string(), partition)];
    response.error_code = match broker.txns.add_partitions(
        &body.transactional_id.0,
        body.producer_id.0,
        body.producer_epoch,
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
                tracing::error!("transaction state not written: {e}");
                ResponseError::CoordinatorNotAvailable.code()
            }
        },
        Err(e) => txn_error(e, request.api_version, FencedSince::V2).code(),
    };
    request.respond(&response)
}
