//! DescribeProducers: the idempotent and transactional producers each
//! partition's log knows: epoch, last sequence and the first offset of an
//! open transaction. Wharf does not track a producer's last timestamp
//! (answered as -1) and has one coordinator epoch (0).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DescribeProducersRequest = request.decode()?;
    let broker = &request.broker;
    let mut response = DescribeProducersResponse::default();
    response.topics = body
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(&t.name.0);
            let mut tr = TopicResponse::default();
            tr.partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let mut pr = PartitionResponse::default();
                    pr.partition_index = index;
                    match topic.as_ref().and_then(|topic| topic.partition(index)) {
                        None => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
                        Some(p) => {
                            let mut producers = p.producers();
                            producers.sort_by_key(|(id, _)| *id);
                            pr.active_producers = producers
                                .into_iter()
                                .map(|(id, e)| {
                                    let mut s = ProducerState::default();
                                    s.producer_id = ProducerId(id);
                                    s.producer_epoch = i32::from(e.epoch);
                                    s.last_sequence = e.batches.back().map_or(-1, |b| b.last_seq);
                                    s.last_timestamp = -1;
                                    s.coordinator_epoch = 0;
                                    s.current_txn_start_offset = e.txn_first_offset.unwrap_or(-1);
                                    s
                                })
                                .collect();
                        }
                    }
                    pr
                })
                .collect();
            tr.name = t.name;
            tr
        })
        .collect();
    request.respond(&response)
}
