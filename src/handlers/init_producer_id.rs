//! InitProducerId: gives an idempotent producer its producer id and epoch.
//!
//! Without a transactional id, Kafka accepts every request blindly and
//! hands out a fresh producer id with epoch 0, even when the request names
//! an existing id and epoch (v3+, KIP-360): an idempotent producer that
//! must reset its sequences simply becomes a new producer. Wharf does the
//! same.
//!
//! With a transactional id the transaction coordinator answers: a new id
//! gets a fresh producer id, a known one its producer id with the epoch
//! bumped, which fences the previous producer; a transaction that producer
//! left open is aborted first (its markers written with the bumped epoch).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use wharf_coordinator::txn::InitResult;

use super::{HandlerResult, Request};
use crate::broker::groups::now_ms;
use crate::broker::txns::{txn_error, FencedSince};
use crate::broker::Broker;
use crate::security::authz::Op;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(request: Request) -> HandlerResult {
    let body: InitProducerIdRequest = request.decode()?;
    if body
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        request.broker.ensure_txn_state_topic().await;
    }
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if body
        .transactional_id
        .as_ref()
        .is_some_and(|t| t.0.is_empty())
    {
        // Kafka refuses an empty transactional id outright.
        tracing::warn!("refusing InitProducerId with an empty transactional id");
        response.error_code = ResponseError::InvalidRequest.code();
        return request.respond(&response);
    }
    // With the authorizer on: WRITE on the transactional id; an idempotent
    // producer needs IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
    let denied = match &body.transactional_id {
        Some(txn) => request.txn_denied(Op::Write, &txn.0),
        None => {
            (!request.may_write_idempotently()).then_some(ResponseError::ClusterAuthorizationFailed)
        }
    };
    if let Some(e) = denied {
        response.error_code = e.code();
        return request.respond(&response);
    }
    if let Some(txn) = &body.transactional_id {
        if let Some(e) = request.broker.txn_coordinator_error(&txn.0) {
            response.error_code = e.code();
            return request.respond(&response);
        }
        let expected =
            (body.producer_id.0 >= 0).then_some((body.producer_id.0, body.producer_epoch));
        // A fresh id in case the coordinator needs one (a new transactional
        // id, or an epoch exhausted); unused ones are simply skipped.
        let spare = match request.broker.allocate_producer_id().await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!("cannot allocate a producer id: {e}");
                response.error_code = producer_id_error(&e).code();
                return request.respond(&response);
            }
        };
        match init_transactional(
            &request.broker,
            spare,
            &txn.0,
            body.transaction_timeout_ms,
            expected,
            request.api_version,
        )
        .await
        {
            Ok((producer_id, epoch)) => {
                tracing::debug!(transactional_id = %txn.0, producer_id, epoch, "transactional producer initialised");
                response.producer_id = ProducerId(producer_id);
                response.producer_epoch = epoch;
            }
            Err(e) => {
                tracing::info!(transactional_id = %txn.0, "InitProducerId refused: {e}");
                response.error_code = e.code();
            }
        }
        return request.respond(&response);
    }
    match request.broker.allocate_producer_id().await {
        Ok(id) => {
            tracing::debug!(
                producer_id = id,
                previous_id = body.producer_id.0,
                previous_epoch = body.producer_epoch,
                "producer id allocated"
            );
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!("cannot allocate a producer id: {e}");
            response.error_code = producer_id_error(&e).code();
        }
    }
    request.respond(&response)
}

/// InitProducerId for a transactional id: asks the coordinator, writing
/// its records and carrying out the abort of a transaction the previous
/// producer left open, then asks again.
async fn init_transactional(
    broker: &Broker,
    mut spare: Option<i64>,
    transactional_id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    version: i16,
) -> Result<(i64, i16), ResponseError> {
    let version_errors = |e| txn_error(e, version, FencedSince::V4);
    for _ in 0..3 {
        let outcome = broker
            .txns
            .init_producer_id(transactional_id, timeout_ms, expected, now_ms(), || {
                spare.take()
            })
            .map_err(version_errors)?;
        match outcome {
            InitResult::Granted {
                producer_id,
                producer_epoch,
                record,
            } => {
                let pending = broker.write_txn_record(&record).map_err(storage_failed)?;
                broker
                    .wait_replicated(vec![pending], crate::broker::txns::STATE_WRITE_TIMEOUT)
                    .await?;
                return Ok((producer_id, producer_epoch));
            }
            InitResult::AbortFirst { record, completion } => {
                tracing::info!(
                    transactional_id,
                    producer_id = completion.producer_id,
                    "fencing the previous producer: aborting its open transaction"
                );
                let pending = broker.write_txn_record(&record).map_err(storage_failed)?;
                broker
                    .wait_replicated(vec![pending], crate::broker::txns::STATE_WRITE_TIMEOUT)
                    .await?;
                broker.complete_txn(&completion).map_err(storage_failed)?;
            }
        }
    }
    Err(ResponseError::ConcurrentTransactions)
}

fn storage_failed(e: crate::broker::BrokerError) -> ResponseError {
    tracing::error!("transaction state not written: {e}");
    ResponseError::CoordinatorNotAvailable
}

/// The answer when no producer id could be had: the controller's retriable
/// errors become COORDINATOR_NOT_AVAILABLE (clients retry it).
fn producer_id_error(e: &crate::broker::BrokerError) -> ResponseError {
    match e.kafka_error() {
        ResponseError::NotController
        | ResponseError::RequestTimedOut
        | ResponseError::StaleBrokerEpoch
        | ResponseError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        other => other,
    }
}
