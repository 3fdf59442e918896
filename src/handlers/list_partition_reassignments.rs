//! ListPartitionReassignments (KIP-455): the partition moves in progress,
//! from this broker's metadata image (every broker follows the controller's
//! log, so any of them can answer).

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use wharf_coordinator::metadata::reassignment::list_reassignments;

use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

fn brokers(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().map(|id| BrokerId(*id)).collect()
}

pub async fn handle(request: Request) -> HandlerResult {
    let body: ListPartitionReassignmentsRequest = request.decode()?;
    let asked: Option<Vec<(String, i32)>> = body.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| (t.name.0.to_string(), *p))
            })
            .collect()
    });
    let image = request.broker.image();
    let mut response = ListPartitionReassignmentsResponse::default();
    for ongoing in list_reassignments(&image, asked.as_deref()) {
        let mut p = OngoingPartitionReassignment::default();
        p.partition_index = ongoing.partition;
        p.replicas = brokers(&ongoing.replicas);
        p.adding_replicas = brokers(&ongoing.adding);
        p.removing_replicas = brokers(&ongoing.removing);
        match response
            .topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == ongoing.topic)
        {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = OngoingTopicReassignment::default();
                t.name = kafka_protocol::messages::TopicName(
                    kafka_protocol::protocol::StrBytes::from_string(ongoing.topic),
                );
                t.partitions.push(p);
                response.topics.push(t);
            }
        }
    }
    request.respond(&response)
}
