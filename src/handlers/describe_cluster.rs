//! DescribeCluster: this broker, as the whole cluster and its controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{authorized_ops, HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

/// Endpoint type 1: the request asked for brokers (2 would be controllers).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub async fn handle(request: Request) -> HandlerResult {
    // Fenced brokers are not listed (include_fenced_brokers is not served).
    let body: DescribeClusterRequest = request.decode()?;
    let (brokers, controller) = request.broker.cluster_view(&request.listener);
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = StrBytes::from_string(request.broker.cluster_id.clone());
    response.controller_id = controller.into();
    response.endpoint_type = ENDPOINT_TYPE_BROKERS;
    response.brokers = brokers
        .into_iter()
        .map(|b| {
            let mut out = DescribeClusterBroker::default();
            out.broker_id = b.id.into();
            out.host = StrBytes::from_string(b.host);
            out.port = b.port;
            out.rack = b.rack.map(StrBytes::from_string);
            out
        })
        .collect();
    response.cluster_authorized_operations = if body.include_cluster_authorized_operations {
        request.authorized_ops(
            crate::security::authz::Resource::Cluster,
            wharf_coordinator::acl::CLUSTER_NAME,
            authorized_ops::CLUSTER,
        )
    } else {
        authorized_ops::OMITTED
    };
    request.respond(&response)
}
