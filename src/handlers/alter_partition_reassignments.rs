//! AlterPartitionReassignments (KIP-455): move partitions' replicas to
//! other brokers, or cancel a move in progress; decided by the active
//! controller (forwarded to it). The move itself happens as the new
//! replicas catch up (see `wharf_coordinator::metadata::reassignment`).

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_coordinator::metadata::ControllerError;

use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

pub async fn handle(request: Request) -> HandlerResult {
    let body: AlterPartitionReassignmentsRequest = request.decode()?;
    let timeout = super::admin_timeout(body.timeout_ms);
    let answer = match request.broker.cluster() {
        Some(node) => {
            node.alter_partition_reassignments(body.clone(), timeout)
                .await
        }
        None => Err(ControllerError::new(
            ResponseError::NotController,
            "this broker has not joined its cluster yet",
        )),
    };
    let response = answer.unwrap_or_else(|e| {
        tracing::info!("AlterPartitionReassignments failed: {e}");
        let mut response = AlterPartitionReassignmentsResponse::default();
        response.error_code = e.code.code();
        response.error_message = Some(StrBytes::from_string(e.message.clone()));
        response.allow_replication_factor_change = body.allow_replication_factor_change;
        // Every asked partition carries the error too, as Kafka's does.
        for t in &body.topics {
            let mut topic = ReassignableTopicResponse::default();
            topic.name = t.name.clone();
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = ReassignablePartitionResponse::default();
                    out.partition_index = p.partition_index;
                    out.error_code = e.code.code();
                    out.error_message = Some(StrBytes::from_string(e.message.clone()));
                    out
                })
                .collect();
            response.responses.push(topic);
        }
        response
    });
    request.respond(&response)
}
