//! ElectLeaders (KIP-460): a preferred or unclean leader election for the
//! given partitions, or for every partition that needs one; decided by the
//! active controller (forwarded to it), answered with each partition's
//! outcome.

use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(request: Request) -> HandlerResult {
    let mut body: ElectLeadersRequest = request.decode()?;
    if request.api_version == 0 {
        // v0 has no election type: preferred.
        body.election_type = 0;
    }
    let timeout = super::admin_timeout(body.timeout_ms);
    let answer = match request.broker.cluster() {
        Some(node) => node.elect_leaders(body.clone(), timeout).await,
        None => Err(wharf_coordinator::metadata::ControllerError::new(
            ResponseError::NotController,
            "this broker has not joined its cluster yet",
        )),
    };
    let response = match answer {
        Ok(response) => {
            for r in &response.replica_election_results {
                for p in &r.partition_result {
                    tracing::info!(
                        topic = %r.topic.0,
                        partition = p.partition_id,
                        error = p.error_code,
                        "leader election"
                    );
                }
            }
            response
        }
        Err(e) => {
            tracing::info!("ElectLeaders failed: {e}");
            let mut response = ElectLeadersResponse::default();
            // v0 has no top-level error: every asked partition carries it.
            response.error_code = e.code.code();
            for t in body.topic_partitions.iter().flatten() {
                let mut r =
                    kafka_protocol::messages::elect_leaders_response::ReplicaElectionResult::default();
                r.topic = t.topic.clone();
                r.partition_result = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut out =
                            kafka_protocol::messages::elect_leaders_response::PartitionResult::default();
                        out.partition_id = *p;
                        out.error_code = e.code.code();
                        out.error_message =
                            Some(kafka_protocol::protocol::StrBytes::from_string(e.message.clone()));
                        out
                    })
                    .collect();
                response.replica_election_results.push(r);
            }
            response
        }
    };
    request.respond(&response)
}
