//! EndTxn: commit or abort the producer's ongoing transaction. The
//! coordinator moves it to PrepareCommit/PrepareAbort (written to
//! `__transaction_state`), the markers go into every partition of the
//! transaction, and the Complete state is written, all before the answer:
//! on one node the markers are local appends. v5 (KIP-890's epoch bump per
//! transaction) is not served.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};
use crate::broker::groups::now_ms;
use crate::broker::txns::{txn_error, FencedSince};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

pub async fn handle(request: Request) -> HandlerResult {
    let body: EndTxnRequest = request.decode()?;
    request.broker.ensure_txn_state_topic().await;
    let broker = &request.broker;
    let id = &body.transactional_id.0;
    let mut response = EndTxnResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if let Some(e) = broker.txn_coordinator_error(id) {
        response.error_code = e.code();
        return request.respond(&response);
    }
    let outcome = broker.txns.end_txn(
        id,
        body.producer_id.0,
        body.producer_epoch,
        body.committed,
        now_ms(),
    );
    response.error_code = match outcome {
        Ok(None) => 0,
        Ok(Some((record, completion))) => {
            // The decision (Prepare) is replicated before the markers go
            // out, so a new coordinator finishes what this one started.
            let prepared = match broker.write_txn_record(&record) {
                Ok(pending) => broker
                    .wait_replicated(vec![pending], crate::broker::txns::STATE_WRITE_TIMEOUT)
                    .await
                    .inspect_err(|code| {
                        tracing::warn!(transactional_id = %id, "transaction decision not replicated: {code:?}");
                    }),
                Err(e) => {
                    tracing::error!(transactional_id = %id, "could not end the transaction: {e}");
                    Err(ResponseError::CoordinatorNotAvailable)
                }
            };
            match prepared.map(|()| broker.complete_txn(&completion)) {
                Err(code) => code.code(),
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    // The transaction stays in its Prepare state; the
                    // timer finishes it. The client retries and gets
                    // CONCURRENT_TRANSACTIONS until then.
                    tracing::error!(transactional_id = %id, "could not end the transaction: {e}");
                    ResponseError::CoordinatorNotAvailable.code()
                }
            }
        }
        Err(e) => {
            tracing::info!(transactional_id = %id, "EndTxn refused: {e}");
            txn_error(e, request.api_version, FencedSince::V2).code()
        }
    };
    request.respond(&response)
}
