//! ListConfigResources (KIP-1142; v0 was KIP-714's
//! ListClientMetricsResources): the resources that have configs, by type.
//!
//! v0 lists client-metrics subscriptions only; v1 lists the types the
//! request names, or every type when it names none. Types Wharf lists:
//! TOPIC (every topic of the cluster), BROKER (every registered broker's
//! id), CLIENT_METRICS and GROUP (Wharf keeps no dynamic configs of either
//! yet, so none). A type outside those (BROKER_LOGGER, whose configs
//! Wharf does not serve, or an unknown id) fails the whole request with
//! UNSUPPORTED_VERSION, as Kafka answers for a type it does not list.

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::config_resources::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

const RESOURCE_CLIENT_METRICS: i8 = 16;
const RESOURCE_GROUP: i8 = 32;

/// The types v1 lists, in the order they are answered.
const V1_TYPES: [i8; 4] = [
    RESOURCE_TOPIC,
    RESOURCE_BROKER,
    RESOURCE_CLIENT_METRICS,
    RESOURCE_GROUP,
];

pub async fn handle(request: Request) -> HandlerResult {
    let body: ListConfigResourcesRequest = request.decode()?;
    let mut response = ListConfigResourcesResponse::default();
    let wanted: Vec<i8> = if request.api_version == 0 {
        vec![RESOURCE_CLIENT_METRICS]
    } else if body.resource_types.is_empty() {
        V1_TYPES.to_vec()
    } else {
        body.resource_types.clone()
    };
    if let Some(bad) = wanted.iter().find(|t| !V1_TYPES.contains(t)) {
        tracing::info!(
            peer = %request.client_host,
            resource_type = bad,
            "ListConfigResources names a resource type Wharf does not list"
        );
        response.error_code = ResponseError::UnsupportedVersion.code();
        return request.respond(&response);
    }
    let image = request.broker.image();
    for kind in V1_TYPES.iter().filter(|t| wanted.contains(t)) {
        let names: Vec<String> = match *kind {
            RESOURCE_TOPIC => {
                let mut names: Vec<String> = image.topics().map(|t| t.name.clone()).collect();
                names.sort();
                names
            }
            RESOURCE_BROKER => {
                let mut ids: Vec<i32> = image.brokers().map(|b| b.id).collect();
                if ids.is_empty() {
                    // Before this broker's registration is in the image.
                    ids.push(request.broker.settings.node_id);
                }
                ids.iter().map(i32::to_string).collect()
            }
            _ => Vec::new(),
        };
        for name in names {
            let mut resource = ConfigResource::default();
            resource.resource_name = StrBytes::from_string(name);
            resource.resource_type = *kind;
            response.config_resources.push(resource);
        }
    }
    request.respond(&response)
}
