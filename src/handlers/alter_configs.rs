//! AlterConfigs: replaces a topic's whole set of config overrides (configs
//! not named go back to their defaults). Broker configs are static.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::config_resources::{self, Failure, Target};
use super::{HandlerResult, Request};
use crate::broker::{configs, Broker};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(request: Request) -> HandlerResult {
    let body: AlterConfigsRequest = request.decode()?;
    let broker = &request.broker;
    let mut responses = Vec::with_capacity(body.resources.len());
    for resource in &body.resources {
        let mut out = AlterConfigsResourceResponse::default();
        out.resource_type = resource.resource_type;
        out.resource_name = resource.resource_name.clone();
        let pairs: Vec<(String, Option<String>)> = resource
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let denied = request.config_resource_denied(
            crate::security::authz::Op::AlterConfigs,
            resource.resource_type,
            resource.resource_name.as_str(),
        );
        let outcome = match denied {
            Some(err) => Err((err, "Authorization failed.".to_string())),
            None => {
                alter(
                    broker,
                    resource.resource_type,
                    resource.resource_name.as_str(),
                    &pairs,
                    body.validate_only,
                )
                .await
            }
        };
        if let Err((err, message)) = outcome {
            tracing::info!(resource = %resource.resource_name.as_str(), "alter configs refused: {message}");
            out.error_code = err.code();
            out.error_message = Some(StrBytes::from_string(message));
        }
        responses.push(out);
    }
    let mut response = AlterConfigsResponse::default();
    response.responses = responses;
    request.respond(&response)
}

async fn alter(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    pairs: &[(String, Option<String>)],
    validate_only: bool,
) -> Result<(), Failure> {
    let topic = match config_resources::target(broker, resource_type, name)? {
        Target::Topic(topic, _) => topic,
        Target::Broker | Target::BrokerDefaults => {
            return static_broker(pairs.iter().map(|p| &p.0))
        }
    };
    let nulls: Vec<&str> = pairs
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err((
            ResponseError::InvalidRequest,
            format!(
                "Null value not supported for topic configs: {}",
                nulls.join(",")
            ),
        ));
    }
    let overrides: BTreeMap<String, String> = pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    apply(broker, &topic, overrides, validate_only).await
}

/// Validates, then (unless only validating) stores and applies `overrides`.
pub async fn apply(
    broker: &Broker,
    topic: &str,
    overrides: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Failure> {
    let fail = |e: crate::broker::BrokerError| (e.kafka_error(), e.to_string());
    if validate_only {
        return configs::validate_topic_configs(&overrides).map_err(fail);
    }
    broker
        .set_topic_configs(topic, overrides)
        .await
        .map_err(fail)
}

/// The answer to any change of a broker config: they are all static.
pub fn static_broker<'a>(names: impl Iterator<Item = &'a String>) -> Result<(), Failure> {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        return Ok(());
    }
    Err((
        ResponseError::InvalidRequest,
        format!(
            "Cannot update these configs dynamically: {} (Wharf's broker configs are set by wharf serve flags)",
            names.join(", ")
        ),
    ))
}
