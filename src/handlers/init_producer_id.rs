//! InitProducerId: gives an idempotent producer its producer id and epoch.
//!
//! Without a transactional id, Kafka accepts every request blindly and
//! hands out a fresh producer id with epoch 0, even when the request names
//! an existing id and epoch (v3+, KIP-360): an idempotent producer that
//! must reset its sequences simply becomes a new producer. Wharf does the
//! same. Transactions are not implemented: a request with a transactional
//! id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients treat as
//! fatal and report at once (a retriable error such as
//! COORDINATOR_NOT_AVAILABLE would leave `init_transactions` retrying
//! until it times out).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(request: Request) -> HandlerResult {
    let body: InitProducerIdRequest = request.decode()?;
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
    if let Some(txn) = &body.transactional_id {
        tracing::warn!(
            transactional_id = %txn.0,
            "refusing InitProducerId for a transactional producer: transactions are not supported"
        );
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return request.respond(&response);
    }
    match request.broker.allocate_producer_id() {
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
            tracing::error!("cannot allocate a producer id: {e}");
            response.error_code = ResponseError::KafkaStorageError.code();
        }
    }
    request.respond(&response)
}
