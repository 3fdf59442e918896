//! CreateTopics: partitions, replication factor or manual assignments,
//! configs, validate_only; checked here, decided by the controller.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::config_resources::topic_entries;
use super::{HandlerResult, Request};
use crate::broker::creation::{Created, TopicRequest};
use crate::broker::{Broker, BrokerError, NewTopic};
use crate::security::authz::{Op, Resource};
use wharf_coordinator::acl::CLUSTER_NAME;

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

    // Each topic is checked here; those that pass go to the controller
    // together.
    let validate_only = body.validate_only;
    // With the authorizer on: CREATE on the cluster, or on each topic.
    let cluster_create = request.authorized_quietly(Op::Create, Resource::Cluster, CLUSTER_NAME);
    let mut outcomes: Vec<(TopicName, Option<Outcome>)> = Vec::new();
    let mut requests = Vec::new();
    for topic in &body.topics {
        let name = topic.name.0.to_string();
        let checked = if !cluster_create && !request.authorized(Op::Create, Resource::Topic, &name)
        {
            Err((
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            ))
        } else if too_many {
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
            topic_request(broker, topic)
        };
        match checked {
            Ok(request) => {
                requests.push((outcomes.len(), request));
                outcomes.push((topic.name.clone(), None));
            }
            Err(e) => outcomes.push((topic.name.clone(), Some(Err(e)))),
        }
    }
    let (slots, requests): (Vec<usize>, Vec<TopicRequest>) = requests.into_iter().unzip();
    let configs: Vec<BTreeMap<String, String>> =
        requests.iter().map(|r| r.new.configs.clone()).collect();
    let count = requests.len();
    let decided = match tokio::time::timeout(
        super::admin_timeout(body.timeout_ms),
        broker.create_topics(requests, validate_only),
    )
    .await
    {
        Ok(decided) => decided,
        Err(_) => {
            tracing::warn!("CreateTopics timed out waiting for the controller");
            (0..count).map(|_| Err(super::timed_out())).collect()
        }
    };
    for ((slot, result), configs) in slots.into_iter().zip(decided).zip(configs) {
        if let Some(entry) = outcomes.get_mut(slot) {
            entry.1 = Some(
                result
                    .map(|created| (created, configs))
                    .map_err(|e| (e.kafka_error(), e.to_string())),
            );
        }
    }

    let mut results = Vec::with_capacity(outcomes.len());
    for (topic_name, outcome) in outcomes {
        let name = topic_name.0.to_string();
        let outcome = outcome.unwrap_or_else(|| {
            Err((
                ResponseError::UnknownServerError,
                "no answer for this topic".to_string(),
            ))
        });
        let mut result = CreatableTopicResult::default();
        result.name = topic_name;
        result.error_message = None;
        match outcome {
            Ok((created, configs)) => {
                if request.api_version >= 7 && !validate_only {
                    result.topic_id = created.id;
                }
                // Partition count, replication factor and configs exist from v5.
                if request.api_version >= 5 {
                    result.num_partitions = created.partitions;
                    result.replication_factor = created.replication_factor;
                    result.configs = Some(
                        topic_entries(broker, &configs)
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
                tracing::debug!(topic = %name, "topic not created: {message}");
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

type Outcome = Result<(Created, BTreeMap<String, String>), (ResponseError, String)>;

/// A topic of the request, defaulted, or why it is refused before the
/// controller sees it.
fn topic_request(
    broker: &Broker,
    topic: &CreatableTopic,
) -> Result<TopicRequest, (ResponseError, String)> {
    let fail = |e: BrokerError| (e.kafka_error(), e.to_string());
    let mut assignments = Vec::new();
    let partitions = if topic.assignments.is_empty() {
        match topic.num_partitions {
            -1 => broker.settings.default_partitions,
            n => n,
        }
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time."
                    .to_string(),
            ));
        }
        for a in &topic.assignments {
            assignments.push((
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>(),
            ));
        }
        i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX)
    };
    if topic.replication_factor == 0 || topic.replication_factor < -1 {
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
    Ok(TopicRequest {
        new: NewTopic {
            name: topic.name.0.to_string(),
            partitions,
            configs,
        },
        replication_factor: topic.replication_factor,
        assignments,
    })
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
