//! DescribeConfigs: every config of a topic or of this broker, with value,
//! source, read-only flag, synonyms (when asked) and type and documentation
//! (v3+, when asked).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::config_resources::{self, broker_entries, topic_entries, Entry, Target};
use super::{HandlerResult, Request};
use crate::security::authz::Op;

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 4;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DescribeConfigsRequest = request.decode()?;
    let broker = &request.broker;
    let version = request.api_version;
    let mut results = Vec::with_capacity(body.resources.len());
    for resource in &body.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        if let Some(err) = request.config_resource_denied(
            Op::DescribeConfigs,
            resource.resource_type,
            resource.resource_name.as_str(),
        ) {
            result.error_code = err.code();
            result.error_message = Some(StrBytes::from_static_str("Authorization failed."));
            results.push(result);
            continue;
        }
        let entries = match config_resources::target(
            broker,
            resource.resource_type,
            resource.resource_name.as_str(),
        ) {
            Ok(Target::Topic(_, configs)) => topic_entries(broker, &configs),
            Ok(Target::Broker) => broker_entries(broker),
            Ok(Target::BrokerDefaults) => Vec::new(),
            Err((err, message)) => {
                tracing::info!(resource = %resource.resource_name.as_str(), "describe configs: {message}");
                result.error_code = err.code();
                result.error_message = Some(StrBytes::from_string(message));
                results.push(result);
                continue;
            }
        };
        let wanted = resource.configuration_keys.as_ref();
        result.configs = entries
            .into_iter()
            .filter(|e| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name)))
            .map(|e| {
                describe(
                    e,
                    version,
                    body.include_synonyms,
                    body.include_documentation,
                )
            })
            .collect();
        results.push(result);
    }
    let mut response = DescribeConfigsResponse::default();
    response.results = results;
    request.respond(&response)
}

fn describe(
    entry: Entry,
    version: i16,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut out = DescribeConfigsResourceResult::default();
    out.name = StrBytes::from_string(entry.name);
    out.value = entry.value.map(StrBytes::from_string);
    out.read_only = entry.read_only;
    out.config_source = entry.source;
    out.is_sensitive = false;
    if synonyms {
        out.synonyms = entry
            .synonyms
            .into_iter()
            .map(|s| {
                let mut syn = DescribeConfigsSynonym::default();
                syn.name = StrBytes::from_string(s.name);
                syn.value = s.value.map(StrBytes::from_string);
                syn.source = s.source;
                syn
            })
            .collect();
    }
    // Type and documentation exist from v3.
    if version >= 3 {
        out.config_type = entry.ty as i8;
        out.documentation = documentation.then(|| StrBytes::from_static_str(entry.doc));
    }
    out
}
