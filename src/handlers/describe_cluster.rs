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
    // No broker is ever fenced, so include_fenced_brokers changes nothing.
    let body: DescribeClusterRequest = request.decode()?;
    let settings = &request.broker.settings;
    let mut broker = DescribeClusterBroker::default();
    broker.broker_id = settings.node_id.into();
    broker.host = StrBytes::from_string(settings.advertised_host.clone());
    broker.port = settings.advertised_port;
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = StrBytes::from_string(request.broker.cluster_id.clone());
    response.controller_id = settings.node_id.into();
    response.endpoint_type = ENDPOINT_TYPE_BROKERS;
    response.brokers = vec![broker];
    response.cluster_authorized_operations = if body.include_cluster_authorized_operations {
        authorized_ops::CLUSTER
    } else {
        authorized_ops::OMITTED
    };
    request.respond(&response)
}
