//! CreatePartitions: grows topics to a new partition count, optionally with
//! the new partitions' replicas given; decided by the controller, answered
//! once this broker has applied the result.

use std::collections::HashSet;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 3;

pub async fn handle(request: Request) -> HandlerResult {
    let body: CreatePartitionsRequest = request.decode()?;
    let broker = &request.broker;
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = body
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let mut results = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let name = topic.name.0.to_string();
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name;
        let outcome = if duplicates.contains(&name) {
            Err((
                ResponseError::InvalidRequest,
                "Duplicate topic in request.".to_string(),
            ))
        } else {
            let assignments = topic.assignments.map(|a| {
                a.into_iter()
                    .map(|p| p.broker_ids.into_iter().map(|b| b.0).collect())
                    .collect()
            });
            let creating =
                broker.create_partitions(&name, topic.count, assignments, body.validate_only);
            match tokio::time::timeout(super::admin_timeout(body.timeout_ms), creating).await {
                Ok(result) => result.map_err(|e| (e.kafka_error(), e.to_string())),
                Err(_) => {
                    let e = super::timed_out();
                    Err((e.kafka_error(), e.to_string()))
                }
            }
        };
        match outcome {
            Ok(()) => {
                if !body.validate_only {
                    tracing::info!(topic = %name, count = topic.count, "partitions created");
                }
            }
            Err((code, message)) => {
                tracing::info!(topic = %name, "partitions not created: {message}");
                result.error_code = code.code();
                result.error_message = Some(StrBytes::from_string(message));
            }
        }
        results.push(result);
    }
    let mut response = CreatePartitionsResponse::default();
    response.results = results;
    request.respond(&response)
}
