//! DeleteTopics: by name (v1-v5) or by name or topic id (v6+), decided by
//! the controller; this broker has removed its data before it answers.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{HandlerResult, Request};
use crate::security::authz::{Op, Resource};

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 6;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DeleteTopicsRequest = request.decode()?;
    let broker = &request.broker;
    // Both forms become (name, id) pairs; exactly one of the two is set.
    let wanted: Vec<(Option<TopicName>, Uuid)> = if request.api_version >= 6 {
        body.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        body.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    // Names resolved from the image; unknown ones answered here, the rest
    // sent to the controller together.
    let image = broker.image();
    let mut responses = Vec::with_capacity(wanted.len());
    let mut to_delete = Vec::new();
    for (name, id) in wanted {
        let mut result = DeletableTopicResult::default();
        let topic = match &name {
            Some(n) => image.topic_by_name(n.0.as_str()),
            None => image.topic(id),
        };
        result.name = name.clone();
        if request.api_version >= 6 {
            result.topic_id = id;
        }
        // With the authorizer on: DELETE on the topic, checked before
        // its existence for a name.
        let named = name.as_ref().map(|n| n.0.to_string());
        let denied = match (&named, topic) {
            (Some(n), _) => !request.authorized(Op::Delete, Resource::Topic, n),
            (None, Some(t)) => !request.authorized(Op::Delete, Resource::Topic, &t.name),
            (None, None) => false,
        };
        match topic {
            _ if denied => {
                result.error_code = ResponseError::TopicAuthorizationFailed.code();
            }
            None => {
                result.error_code = if name.is_some() {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::UnknownTopicId.code()
                };
            }
            Some(topic) => {
                result.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
                if request.api_version >= 6 {
                    result.topic_id = topic.id;
                }
                to_delete.push((responses.len(), topic.name.clone()));
            }
        }
        responses.push(result);
    }
    let names: Vec<String> = to_delete.iter().map(|(_, n)| n.clone()).collect();
    let count = names.len();
    let outcomes = match tokio::time::timeout(
        super::admin_timeout(body.timeout_ms),
        broker.delete_topics(names),
    )
    .await
    {
        Ok(outcomes) => outcomes,
        Err(_) => {
            tracing::warn!("DeleteTopics timed out waiting for the controller");
            (0..count).map(|_| Err(super::timed_out())).collect()
        }
    };
    for ((i, name), outcome) in to_delete.into_iter().zip(outcomes) {
        let Err(e) = outcome else {
            continue;
        };
        tracing::warn!(topic = %name, "delete failed: {e}");
        if let Some(result) = responses.get_mut(i) {
            result.error_code = e.kafka_error().code();
            if request.api_version >= 5 {
                result.error_message = Some(StrBytes::from_string(e.to_string()));
            }
        }
    }
    let mut response = DeleteTopicsResponse::default();
    response.responses = responses;
    request.respond(&response)
}
