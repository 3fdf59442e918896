//! Applying fired rules to a request: wait, close the connection, or answer
//! with an error in a well-formed response of the request's version.
//!
//! Produce and Fetch carry the error per partition: for the partitions of
//! the rule's topic, or of every topic without a filter. Other APIs listed
//! in [`ERROR_APIS`] carry it as their top-level error code.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, ApiKey, DescribeClusterResponse, EndTxnResponse, FetchRequest,
    FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatResponse,
    InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse,
    ProduceRequest, ProduceResponse, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;

use super::{Action, Fired};
use crate::handlers::{HandlerError, HandlerResult, Request, ResponseBody};
use crate::registry::HandlerFuture;

/// The APIs an error rule can answer for.
const ERROR_APIS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::ListGroups,
    ApiKey::InitProducerId,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::DescribeCluster,
];

/// The first Produce version whose request is decoded (older ones are
/// refused by the handler whatever the rules say).
const FIRST_DECODED_PRODUCE: i16 = 3;

/// The first FindCoordinator version that looks up several keys at once
/// (and answers per key, with no top-level error code).
const FIRST_COORDINATOR_KEYS: i16 = 4;

pub fn answers_with_error(api: ApiKey) -> bool {
    ERROR_APIS.contains(&api)
}

/// The APIs an error rule can answer for, as a list for messages.
pub fn error_apis() -> String {
    ERROR_APIS
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Handles `request` with `handler`, unless a fault rule fires on it.
/// With no rules this is the handler call and one atomic load.
pub async fn intercept(request: Request, handler: fn(Request) -> HandlerFuture) -> HandlerResult {
    let table = &request.broker.faults;
    if table.is_empty() {
        return handler(request).await;
    }
    let api = request.api_key;
    let topics = if table.wants_topics(api) {
        request_topics(&request)
    } else {
        None
    };
    let fired = table.fire(api, topics.as_deref(), fastrand::f64);
    let mut delay = Duration::ZERO;
    let mut last = None;
    for f in fired {
        tracing::warn!(
            api = ?api,
            topic = f.topic.as_deref().unwrap_or("*"),
            rule = f.rule,
            action = %f.action,
            "fault injected"
        );
        match f.action {
            Action::Latency(d) => delay = delay.saturating_add(d),
            _ => last = Some(f),
        }
    }
    if !delay.is_zero() {
        let mut shutdown = request.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|s| *s) => {}
        }
    }
    match last {
        None => handler(request).await,
        Some(Fired {
            rule,
            action: Action::DropConnection,
            ..
        }) => Err(HandlerError::InjectedDrop { rule }),
        Some(Fired {
            action: Action::Error(error),
            topic,
            ..
        }) => answer_with_error(request, handler, error, topic.as_deref()).await,
        Some(Fired {
            action: Action::Latency(_),
            ..
        }) => handler(request).await,
    }
}

/// The topics a Produce or Fetch request names (by name, or by id for the
/// versions that carry ids); `None` for other APIs or undecodable bodies.
fn request_topics(request: &Request) -> Option<Vec<String>> {
    match request.api_key {
        ApiKey::Produce if request.api_version >= FIRST_DECODED_PRODUCE => {
            let body: ProduceRequest = request.decode().ok()?;
            Some(
                body.topic_data
                    .iter()
                    .map(|t| topic_name(request, &t.name, &t.topic_id))
                    .collect(),
            )
        }
        ApiKey::Fetch => {
            let body: FetchRequest = request.decode().ok()?;
            Some(
                body.topics
                    .iter()
                    .map(|t| topic_name(request, &t.topic, &t.topic_id))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// A request's topic by name, or by id when the name is empty (the
/// versions that carry ids).
fn topic_name(request: &Request, name: &TopicName, id: &uuid::Uuid) -> String {
    if name.0.is_empty() && !id.is_nil() {
        if let Some(topic) = request.broker.topic_by_id(id) {
            return topic.name.to_string();
        }
    }
    name.0.to_string()
}

/// Whether a topic is hit by a rule filtering on `filter`.
fn hit(filter: Option<&str>, name: &str) -> bool {
    filter.is_none_or(|f| f == name)
}

async fn answer_with_error(
    request: Request,
    handler: fn(Request) -> HandlerFuture,
    error: ResponseError,
    topic: Option<&str>,
) -> HandlerResult {
    let code = error.code();
    match request.api_key {
        ApiKey::Produce if request.api_version >= FIRST_DECODED_PRODUCE => {
            produce_error(request, handler, code, topic).await
        }
        ApiKey::Fetch => fetch_error(&request, code, topic),
        api => match top_level_error(api, request.api_version, &request.body, code) {
            Some(body) => Ok(Some(ResponseBody::One(body?))),
            None => handler(request).await,
        },
    }
}

/// The response of an API with a top-level error code, carrying `code`,
/// encoded at `version`; `None` for APIs without one. `body` is the
/// request's (FindCoordinator v4+ answers per key it names).
fn top_level_error(
    api: ApiKey,
    version: i16,
    body: &Bytes,
    code: i16,
) -> Option<Result<Bytes, HandlerError>> {
    // The API's response with only its error code set.
    macro_rules! with_code {
        ($response:ty) => {
            encode(&<$response>::default().with_error_code(code), api, version)
        };
    }
    let encoded = match api {
        ApiKey::FindCoordinator => {
            let request = match FindCoordinatorRequest::decode(&mut body.clone(), version) {
                Ok(request) => request,
                Err(e) => {
                    return Some(Err(HandlerError::Malformed {
                        api,
                        version,
                        reason: e.to_string(),
                    }))
                }
            };
            let mut response = FindCoordinatorResponse::default();
            if version < FIRST_COORDINATOR_KEYS {
                response = response
                    .with_error_code(code)
                    .with_node_id((-1).into())
                    .with_port(-1);
            }
            response.coordinators = request
                .coordinator_keys
                .into_iter()
                .map(|key| {
                    Coordinator::default()
                        .with_key(key)
                        .with_node_id((-1).into())
                        .with_port(-1)
                        .with_error_code(code)
                })
                .collect();
            encode(&response, api, version)
        }
        ApiKey::JoinGroup => with_code!(JoinGroupResponse),
        ApiKey::SyncGroup => with_code!(SyncGroupResponse),
        ApiKey::Heartbeat => with_code!(HeartbeatResponse),
        ApiKey::LeaveGroup => with_code!(LeaveGroupResponse),
        ApiKey::ListGroups => with_code!(ListGroupsResponse),
        ApiKey::InitProducerId => encode(
            &InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
            api,
            version,
        ),
        ApiKey::AddOffsetsToTxn => with_code!(AddOffsetsToTxnResponse),
        ApiKey::EndTxn => with_code!(EndTxnResponse),
        ApiKey::DescribeCluster => with_code!(DescribeClusterResponse),
        _ => return None,
    };
    Some(encoded)
}
/// Produce: the hit topics' partitions get the error; the other topics of
/// the request are appended as usual, by the handler, and their answers
/// merged in.
async fn produce_error(
    mut request: Request,
    handler: fn(Request) -> HandlerFuture,
    code: i16,
    filter: Option<&str>,
) -> HandlerResult {
    let (api, version) = (request.api_key, request.api_version);
    let mut body: ProduceRequest = request.decode()?;
    let (hits, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut body.topic_data)
        .into_iter()
        .partition(|t| hit(filter, &topic_name(&request, &t.name, &t.topic_id)));
    let failed: Vec<TopicProduceResponse> = hits
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(-1)
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id)
                .with_partition_responses(partitions)
        })
        .collect();
    let acks = body.acks;
    let mut response = if rest.is_empty() {
        ProduceResponse::default()
    } else {
        body.topic_data = rest;
        request.body = encode(&body, api, version)?;
        match handler(request).await? {
            Some(answered) => decode_response::<ProduceResponse>(&answered, api, version)?,
            None => return Ok(None),
        }
    };
    if acks == 0 {
        // The client expects no answer; the hit records are not written.
        return Ok(None);
    }
    response.responses.extend(failed);
    Ok(Some(ResponseBody::One(encode(&response, api, version)?)))
}

/// Fetch: the hit topics' partitions get the error and no records; the
/// request's other topics are left out of this answer (fetch sessions are
/// not kept, so the client asks for them again at once).
fn fetch_error(request: &Request, code: i16, filter: Option<&str>) -> HandlerResult {
    let body: FetchRequest = request.decode()?;
    let responses = body
        .topics
        .into_iter()
        .filter(|t| hit(filter, &topic_name(request, &t.topic, &t.topic_id)))
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(code)
                        .with_high_watermark(-1)
                        .with_records(None)
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic)
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    request.respond(&FetchResponse::default().with_responses(responses))
}

/// `value` encoded at `version`.
fn encode<T: Encodable>(value: &T, api: ApiKey, version: i16) -> Result<Bytes, HandlerError> {
    let mut out = BytesMut::new();
    value
        .encode(&mut out, version)
        .map_err(|e| HandlerError::Encode {
            api,
            version,
            reason: e.to_string(),
        })?;
    Ok(out.freeze())
}

/// A handler's encoded answer, decoded again to be merged into.
fn decode_response<T: Decodable>(
    body: &ResponseBody,
    api: ApiKey,
    version: i16,
) -> Result<T, HandlerError> {
    let mut whole = BytesMut::with_capacity(body.len());
    for chunk in body.chunks() {
        whole.extend_from_slice(chunk);
    }
    T::decode(&mut whole.freeze(), version).map_err(|e| HandlerError::Encode {
        api,
        version,
        reason: format!("re-reading the handler's answer: {e}"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn top_level_errors_encode_at_every_served_version() {
        for &api in ERROR_APIS {
            if matches!(api, ApiKey::Produce | ApiKey::Fetch) {
                continue;
            }
            let served = crate::registry::lookup(api).expect("a served API");
            for version in served.min_version..=served.max_version {
                let g = StrBytes::from_static_str("g");
                let request = if version >= FIRST_COORDINATOR_KEYS {
                    FindCoordinatorRequest::default().with_coordinator_keys(vec![g])
                } else {
                    FindCoordinatorRequest::default().with_key(g)
                };
                let body = if api == ApiKey::FindCoordinator {
                    encode(&request, api, version).unwrap()
                } else {
                    Bytes::new()
                };
                let encoded = top_level_error(api, version, &body, 15)
                    .expect("an API with a top-level error")
                    .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
                assert!(!encoded.is_empty());
            }
        }
    }
}
