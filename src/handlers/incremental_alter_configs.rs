//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on single
//! topic configs; APPEND and SUBTRACT only on list configs. Broker configs
//! are static.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::alter_configs::{apply, static_broker};
use super::config_resources::{self, Failure, Target};
use super::{HandlerResult, Request};
use crate::broker::configs::{self, split_list, ConfigType};
use crate::broker::Broker;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(request: Request) -> HandlerResult {
    let body: IncrementalAlterConfigsRequest = request.decode()?;
    let broker = &request.broker;
    let mut responses = Vec::with_capacity(body.resources.len());
    for resource in &body.resources {
        let mut out = AlterConfigsResourceResponse::default();
        out.resource_type = resource.resource_type;
        out.resource_name = resource.resource_name.clone();
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
                    &resource.configs,
                    body.validate_only,
                )
                .await
            }
        };
        if let Err((err, message)) = outcome {
            tracing::info!(resource = %resource.resource_name.as_str(), "incremental alter configs refused: {message}");
            out.error_code = err.code();
            out.error_message = Some(StrBytes::from_string(message));
        }
        responses.push(out);
    }
    let mut response = IncrementalAlterConfigsResponse::default();
    response.responses = responses;
    request.respond(&response)
}

async fn alter(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    ops: &[AlterableConfig],
    validate_only: bool,
) -> Result<(), Failure> {
    let mut seen = HashSet::new();
    if ops.iter().any(|op| !seen.insert(op.name.as_str())) {
        return Err((
            ResponseError::InvalidRequest,
            "Error due to duplicate config keys".to_string(),
        ));
    }
    let (topic, mut overrides) = match config_resources::target(broker, resource_type, name)? {
        Target::Topic(topic, overrides) => (topic, overrides),
        Target::Broker | Target::BrokerDefaults => {
            let names: Vec<String> = ops.iter().map(|o| o.name.to_string()).collect();
            return static_broker(names.iter());
        }
    };
    for op in ops {
        apply_op(broker, &mut overrides, op)?;
    }
    apply(broker, &topic, overrides, validate_only).await
}

fn apply_op(
    broker: &Broker,
    overrides: &mut BTreeMap<String, String>,
    op: &AlterableConfig,
) -> Result<(), Failure> {
    let name = op.name.to_string();
    let value = op.value.as_ref().map(|v| v.to_string());
    let invalid_request = |m: String| Err((ResponseError::InvalidRequest, m));
    if op.config_operation == OP_DELETE {
        overrides.remove(&name);
        return Ok(());
    }
    let Some(value) = value else {
        return invalid_request(format!("Null value not supported for : {name}"));
    };
    match op.config_operation {
        OP_SET => {
            overrides.insert(name, value);
        }
        OP_APPEND | OP_SUBTRACT => {
            let verb = if op.config_operation == OP_APPEND {
                "append"
            } else {
                "subtract"
            };
            let def = configs::topic_config(&name).ok_or_else(|| {
                (
                    ResponseError::InvalidConfig,
                    format!("Unknown topic config name: {name}"),
                )
            })?;
            if def.ty != ConfigType::List {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("Config value {verb} is not allowed for config key: {name}"),
                ));
            }
            let current = broker.settings.configs.effective(def, overrides);
            let mut items: Vec<String> =
                split_list(&current).into_iter().map(String::from).collect();
            for item in split_list(&value) {
                if op.config_operation == OP_APPEND {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                } else {
                    items.retain(|i| i != item);
                }
            }
            overrides.insert(name, items.join(","));
        }
        other => return invalid_request(format!("Unknown alter config operation {other}")),
    }
    Ok(())
}
