//! DescribeTransactions: state, producer, timeout and partitions of each
//! transactional id asked for; TRANSACTIONAL_ID_NOT_FOUND for unknown ones.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, Request};
use crate::broker::txns::{txn_error, FencedSince};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DescribeTransactionsRequest = request.decode()?;
    let version = request.api_version;
    let ids: Vec<String> = body
        .transactional_ids
        .iter()
        .map(|t| t.0.to_string())
        .collect();
    let mut response = DescribeTransactionsResponse::default();
    let found = request.broker.txns.describe(&ids);
    response.transaction_states = body
        .transactional_ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let mut s = TransactionState::default();
            s.transactional_id = id;
            s.producer_id = ProducerId(-1);
            s.producer_epoch = -1;
            s.transaction_start_time_ms = -1;
            s.transaction_state = StrBytes::default();
            let one = match &found {
                Ok(all) => all.get(i).cloned().unwrap_or(Err(
                    wharf_coordinator::txn::TxnError::TransactionalIdNotFound,
                )),
                Err(e) => Err(*e),
            };
            match one {
                Ok(t) => {
                    s.transaction_state = StrBytes::from_static_str(t.state.name());
                    s.transaction_timeout_ms = t.timeout_ms;
                    s.transaction_start_time_ms = t.start_ms;
                    s.producer_id = ProducerId(t.producer_id);
                    s.producer_epoch = t.producer_epoch;
                    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for (topic, p) in t.partitions {
                        by_topic.entry(topic).or_default().push(p);
                    }
                    s.topics = by_topic
                        .into_iter()
                        .map(|(topic, partitions)| {
                            let mut d = TopicData::default();
                            d.topic = TopicName(StrBytes::from_string(topic));
                            d.partitions = partitions;
                            d
                        })
                        .collect();
                }
                Err(e) => s.error_code = txn_error(e, version, FencedSince::V2).code(),
            }
            s
        })
        .collect();
    request.respond(&response)
}
