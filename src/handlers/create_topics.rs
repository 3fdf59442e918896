//! CreateTopics: partitions, replication factor 1, configs, validate_only.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::config_resources::topic_entries;
use super::{HandlerError, HandlerResult, Request};
use crate::broker::{Broker, BrokerError, NewTopic};

pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 7;

/// Kafka's cap on the partitions one CreateTopics request may ask for, over
/// all its topics; past it the whole request is refused.
const MAX_PARTITIONS_PER_REQUEST: u64 = 10_000;

pub async fn handle(request: Request) -> HandlerResult {
    let body: CreateTopicsRequest = request.decode()?;
    let broker = &request.broker;
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = body
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let too_many = requested_partitions(broker, &body.topics) > MAX_PARTITIONS_PER_REQUEST;
    if too_many {
        tracing::info!("refusing CreateTopics: more than {MAX_PARTITIONS_PER_REQUEST} partitions");
    }

    // Creating partitions is file work, and many of them take a while: off
    // the async workers, so other connections are served meanwhile.
    let creating = broker.clone();
    let topics = body.topics;
    let validate_only = body.validate_only;
    let outcomes = tokio::task::spawn_blocking(move || {
        topics
            .into_iter()
            .map(|topic| {
                let name = topic.name.0.to_string();
                let outcome = if too_many {
                    Err((
                        ResponseError::PolicyViolation,
                        "Excessively large number of partitions per request.".to_string(),
                    ))
                } else if duplicates.contains(&name) {
                    Err((
                        ResponseError::InvalidRequest,
                        format!("topic {name:?} appears more than once in the request"),
                    ))
                } else {
                    create(&creating, &topic, validate_only)
                };
                (topic.name, outcome)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| HandlerError::Internal(format!("CreateTopics task failed: {e}")))?;

    let mut results = Vec::with_capacity(outcomes.len());
    for (topic_name, outcome) in outcomes {
        let name = topic_name.0.to_string();
        let mut result = CreatableTopicResult::default();
        result.name = topic_name;
        result.error_message = None;
        match outcome {
            Ok((id, new)) => {
                if request.api_version >= 7 {
                    result.topic_id = id;
                }
                // Partition count, replication factor and configs exist from v5.
                if request.api_version >= 5 {
                    result.num_partitions = new.partitions;
                    result.replication_factor = 1;
                    result.configs = Some(
                        topic_entries(broker, &new.configs)
                            .into_iter()
                            .map(|e| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = StrBytes::from_string(e.name);
                                c.value = e.value.map(StrBytes::from_string);
                                c.read_only = e.read_only;
                                c.config_source = e.source;
                                c.is_sensitive = false;
                                c
                            })
                            .collect(),
                    );
                }
            }
            Err((err, message)) => {
                tracing::info!(topic = %name, "topic not created: {message}");
                result.error_code = err.code();
                result.error_message = Some(StrBytes::from_string(message));
            }
        }
        results.push(result);
    }
    let mut response = CreateTopicsResponse::default();
    response.topics = results;
    request.respond(&response)
}

type Outcome = Result<(Uuid, NewTopic), (ResponseError, String)>;

fn create(broker: &Broker, topic: &CreatableTopic, validate_only: bool) -> Outcome {
    let fail = |e: BrokerError| (e.kafka_error(), e.to_string());
    let node = broker.settings.node_id;
    let partitions = if topic.assignments.is_empty() {
        match topic.num_partitions {
            -1 => broker.settings.default_partitions,
            n => n,
        }
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "both manual assignments and a partition count or replication factor were given"
                    .to_string(),
            ));
        }
        for a in &topic.assignments {
            if a.broker_ids.len() != 1 || a.broker_ids.first().map(|b| b.0) != Some(node) {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "partition {} must be assigned to broker {node} alone",
                        a.partition_index
                    ),
                ));
            }
        }
        i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX)
    };
    if !matches!(topic.replication_factor, -1 | 1) {
        return Err(fail(BrokerError::InvalidReplicationFactor(i32::from(
            topic.replication_factor,
        ))));
    }
    let mut configs = BTreeMap::new();
    for c in &topic.configs {
        let Some(value) = &c.value else {
            return Err((
                ResponseError::InvalidConfig,
                format!("config {} has a null value", c.name.as_str()),
            ));
        };
        configs.insert(c.name.to_string(), value.to_string());
    }
    let new = NewTopic {
        name: topic.name.0.to_string(),
        partitions,
        configs,
    };
    if validate_only {
        broker.validate_creation(&new).map_err(fail)?;
        return Ok((Uuid::nil(), new));
    }
    let created = broker.create_topic(new.clone()).map_err(fail)?;
    Ok((created.id, new))
}

/// How many partitions a CreateTopics request asks for in total.
fn requested_partitions(broker: &Broker, topics: &[CreatableTopic]) -> u64 {
    topics
        .iter()
        .map(|t| {
            if !t.assignments.is_empty() {
                u64::try_from(t.assignments.len()).unwrap_or(u64::MAX)
            } else if t.num_partitions == -1 {
                u64::try_from(broker.settings.default_partitions).unwrap_or(0)
            } else {
                u64::try_from(t.num_partitions).unwrap_or(0)
            }
        })
        .fold(0, u64::saturating_add)
}
