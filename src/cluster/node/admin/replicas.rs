//! Where replicas live and which one leads, via the active controller:
//! ElectLeaders (KIP-460) and AlterPartitionReassignments (KIP-455). Both
//! travel to the controller as the client sent them and are retried across
//! a controller change until the client's timeout; the `serve_*` functions
//! run on the controller, called directly when this node leads and by the
//! controller listener otherwise.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{
    alter_partition_reassignments_response, elect_leaders_response,
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ElectLeadersRequest,
    ElectLeadersResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use wharf_coordinator::metadata::elections::ElectionType;
use wharf_coordinator::metadata::ControllerError;

use super::{result_of, retriable, topic_name, wire_error, Deadline};
use super::{ClusterNode, Controller, Quorum};

impl ClusterNode {
    /// `request` at the active controller, retried across a controller
    /// change until `timeout`; `top_error` reads the response's top-level
    /// error, which a NOT_CONTROLLER answer carries.
    pub(super) async fn forward_until<R, F, Fut>(
        &self,
        request: R,
        timeout: Duration,
        serve: F,
        top_error: fn(&R::Response) -> (i16, Option<&StrBytes>),
    ) -> Result<R::Response, ControllerError>
    where
        R: Request + Clone,
        F: Fn(Arc<Controller<Quorum>>, R, i16) -> Fut + Clone,
        Fut: Future<Output = R::Response>,
    {
        let deadline = Deadline(Instant::now() + timeout);
        loop {
            let sent = request.clone();
            let answer = self.admin_attempt(|_| sent, serve.clone()).await;
            let answer = answer.and_then(|response| {
                let (code, message) = top_error(&response);
                result_of(code, message).map(|()| response)
            });
            match answer {
                Err(e) if retriable(&e) && deadline.pause().await => {}
                answer => return answer,
            }
        }
    }

    /// ElectLeaders via the active controller (the request as the client
    /// sent it).
    pub async fn elect_leaders(
        &self,
        request: ElectLeadersRequest,
        timeout: Duration,
    ) -> Result<ElectLeadersResponse, ControllerError> {
        self.forward_until(
            request,
            timeout,
            |c, r, v| async move { serve_elect_leaders(&c, &r, v).await },
            |r| (r.error_code, None),
        )
        .await
    }

    /// AlterPartitionReassignments via the active controller (the request
    /// as the client sent it).
    pub async fn alter_partition_reassignments(
        &self,
        request: AlterPartitionReassignmentsRequest,
        timeout: Duration,
    ) -> Result<AlterPartitionReassignmentsResponse, ControllerError> {
        self.forward_until(
            request,
            timeout,
            |c, r, v| async move { serve_alter_partition_reassignments(&c, &r, v).await },
            |r| (r.error_code, r.error_message.as_ref()),
        )
        .await
    }
}

/// ElectLeaders on the controller.
pub(in crate::cluster::node) async fn serve_elect_leaders(
    controller: &Controller<Quorum>,
    request: &ElectLeadersRequest,
    _version: i16,
) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default();
    let election_type = match request.election_type {
        0 => ElectionType::Preferred,
        1 => ElectionType::Unclean,
        other => {
            tracing::info!(
                election_type = other,
                "ElectLeaders with an unknown election type"
            );
            response.error_code = ResponseError::InvalidRequest.code();
            return response;
        }
    };
    let asked = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let outcomes = match controller.elect_leaders(election_type, asked).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::info!("ElectLeaders refused: {e}");
            response.error_code = e.code.code();
            return response;
        }
    };
    for ((topic, partition), outcome) in outcomes {
        let mut result = elect_leaders_response::PartitionResult::default();
        result.partition_id = partition;
        if let Err(e) = outcome {
            result.error_code = e.code.code();
            result.error_message = Some(StrBytes::from_string(e.message.clone()));
        }
        match response
            .replica_election_results
            .iter_mut()
            .find(|r| r.topic.0.as_str() == topic)
        {
            Some(r) => r.partition_result.push(result),
            None => {
                let mut r = elect_leaders_response::ReplicaElectionResult::default();
                r.topic = topic_name(&topic);
                r.partition_result.push(result);
                response.replica_election_results.push(r);
            }
        }
    }
    response
}

/// AlterPartitionReassignments on the controller.
pub(in crate::cluster::node) async fn serve_alter_partition_reassignments(
    controller: &Controller<Quorum>,
    request: &AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let mut response = AlterPartitionReassignmentsResponse::default();
    // v0 has no flag: a change of replication factor is allowed.
    let allow_rf_change = version < 1 || request.allow_replication_factor_change;
    response.allow_replication_factor_change = allow_rf_change;
    let asked = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let target = p
                    .replicas
                    .as_ref()
                    .map(|r| r.iter().map(|b| b.0).collect::<Vec<i32>>());
                ((t.name.0.to_string(), p.partition_index), target)
            })
        })
        .collect();
    let outcomes = match controller
        .alter_partition_reassignments(asked, allow_rf_change)
        .await
    {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::info!("AlterPartitionReassignments refused: {e}");
            (response.error_code, response.error_message) = wire_error(&e);
            return response;
        }
    };
    for ((topic, partition), outcome) in outcomes {
        let mut result =
            alter_partition_reassignments_response::ReassignablePartitionResponse::default();
        result.partition_index = partition;
        if let Err(e) = outcome {
            (result.error_code, result.error_message) = wire_error(&e);
        }
        match response
            .responses
            .iter_mut()
            .find(|r| r.name.0.as_str() == topic)
        {
            Some(r) => r.partitions.push(result),
            None => {
                let mut r =
                    alter_partition_reassignments_response::ReassignableTopicResponse::default();
                r.name = topic_name(&topic);
                r.partitions.push(result);
                response.responses.push(r);
            }
        }
    }
    response
}
