//! ListTransactions: the transactional ids this coordinator knows, filtered
//! by state, producer id, (v1+) how long their transaction has been open
//! and (v2+) a regular expression over the id. Unknown state names are
//! echoed back in `unknown_state_filters`, as Kafka does.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_coordinator::txn::TxnState;

use super::{HandlerResult, Request};
use crate::broker::groups::now_ms;
use crate::broker::txns::{txn_error, FencedSince};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub async fn handle(request: Request) -> HandlerResult {
    let body: ListTransactionsRequest = request.decode()?;
    let version = request.api_version;
    let mut response = ListTransactionsResponse::default();
    let (known, unknown): (Vec<String>, Vec<String>) = body
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .partition(|s| STATES.iter().any(|st| st.name() == s));
    response.unknown_state_filters = unknown.iter().cloned().map(StrBytes::from_string).collect();
    if !body.state_filters.is_empty() && known.is_empty() {
        // Only unknown states asked for: nothing can match.
        return request.respond(&response);
    }
    let pattern = match body
        .transactional_id_pattern
        .as_ref()
        .filter(|_| version >= 2)
    {
        Some(p) if !p.is_empty() => match regex::Regex::new(&format!("^(?:{})$", &**p)) {
            Ok(re) => Some(re),
            Err(e) => {
                tracing::info!("ListTransactions with a bad pattern: {e}");
                response.error_code = ResponseError::InvalidRegularExpression.code();
                return request.respond(&response);
            }
        },
        _ => None,
    };
    let ids: Vec<i64> = body.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if version >= 1 {
        body.duration_filter
    } else {
        -1
    };
    match request.broker.txns.list(&known, &ids, duration, now_ms()) {
        Ok(found) => {
            response.transaction_states = found
                .into_iter()
                .filter(|t| {
                    pattern
                        .as_ref()
                        .is_none_or(|re| re.is_match(&t.transactional_id))
                })
                .map(|t| {
                    let mut s = TransactionState::default();
                    s.transactional_id = TransactionalId(StrBytes::from_string(t.transactional_id));
                    s.producer_id = ProducerId(t.producer_id);
                    s.transaction_state = StrBytes::from_static_str(t.state.name());
                    s
                })
                .collect();
        }
        Err(e) => response.error_code = txn_error(e, version, FencedSince::V2).code(),
    }
    request.respond(&response)
}
