//! Metadata: the broker, and the topics asked for (all when none are named),
//! creating unknown ones when the client allows it and the broker does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{authorized_ops, HandlerResult, Request};
use crate::broker::creation::TopicRequest;
use crate::broker::{Broker, BrokerError, NewTopic};
use crate::security::authz::{Op, Resource};
use wharf_coordinator::acl::CLUSTER_NAME;
use wharf_coordinator::metadata::{MetadataImage, TopicImage};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 13;

pub async fn handle(request: Request) -> HandlerResult {
    let body: MetadataRequest = request.decode()?;
    let broker = &request.broker;
    let version = request.api_version;
    // Before v4 every Metadata request may auto-create.
    let allow_create =
        broker.settings.auto_create_topics && (version < 4 || body.allow_auto_topic_creation);

    let topic_ops = if body.include_topic_authorized_operations {
        authorized_ops::TOPIC
    } else {
        authorized_ops::OMITTED
    };
    let mut image = broker.image();
    // With the authorizer on: a topic is listed only to a principal that
    // may DESCRIBE it, and created only for one that may also CREATE it (on
    // the cluster or the topic).
    let describable = |name: &str| request.authorized(Op::Describe, Resource::Topic, name);
    let cluster_create = std::sync::OnceLock::new();
    let creatable = |name: &str| {
        describable(name)
            && (*cluster_create.get_or_init(|| {
                request.authorized_quietly(Op::Create, Resource::Cluster, CLUSTER_NAME)
            }) || request.authorized(Op::Create, Resource::Topic, name))
    };
    let topics = match body.topics {
        // v0 uses an empty list for "all topics"; later versions use null.
        None => all_topics(&request, &image, version, topic_ops),
        Some(list) if list.is_empty() && version == 0 => {
            all_topics(&request, &image, version, topic_ops)
        }
        Some(list) => {
            let mut created = if allow_create {
                let names = list
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
                    .filter(|n| image.topic_id(n).is_some() || creatable(n));
                let created = auto_create(broker, &image, names).await;
                image = broker.image();
                created
            } else {
                HashMap::new()
            };
            list.into_iter()
                .map(|t| match t.name {
                    Some(name) => {
                        let found = match image.topic_by_name(name.0.as_str()) {
                            _ if !describable(name.0.as_str()) => {
                                Err(ResponseError::TopicAuthorizationFailed)
                            }
                            Some(topic) => Ok(topic),
                            None if !allow_create => Err(ResponseError::UnknownTopicOrPartition),
                            None if !creatable(name.0.as_str()) => {
                                Err(ResponseError::TopicAuthorizationFailed)
                            }
                            None => Err(created.remove(name.0.as_str()).unwrap_or_else(|| {
                                match crate::broker::topic::validate_name(name.0.as_str()) {
                                    Err(e) => e.kafka_error(),
                                    // Past this request's share of creations,
                                    // or being created by another: "retry".
                                    Ok(()) => ResponseError::LeaderNotAvailable,
                                }
                            })),
                        };
                        found.map_or_else(
                            |err| topic_error(Some(&name.0), Uuid::nil(), err),
                            |t| describe(&request, &image, t, version, topic_ops),
                        )
                    }
                    None => match image.topic(t.topic_id) {
                        None => topic_error(None, t.topic_id, ResponseError::UnknownTopicId),
                        Some(t) if !describable(&t.name) => {
                            topic_error(None, t.id, ResponseError::TopicAuthorizationFailed)
                        }
                        Some(t) => describe(&request, &image, t, version, topic_ops),
                    },
                })
                .collect()
        }
    };

    let (brokers, controller) = broker.cluster_view(&request.listener);
    let mut response = MetadataResponse::default();
    response.brokers = brokers
        .into_iter()
        .map(|b| {
            let mut out = MetadataResponseBroker::default();
            out.node_id = b.id.into();
            out.host = StrBytes::from_string(b.host);
            out.port = b.port;
            out.rack = b.rack.map(StrBytes::from_string);
            out
        })
        .collect();
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(broker.cluster_id.clone()));
    }
    if version >= 1 {
        response.controller_id = controller.into();
    }
    // The request flag exists only in v8-v10, as does the response field.
    if body.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            request.authorized_ops(Resource::Cluster, CLUSTER_NAME, authorized_ops::CLUSTER);
    }
    response.topics = topics;
    request.respond(&response)
}

/// Every topic of the image the principal may DESCRIBE, sorted by name.
fn all_topics(
    request: &Request,
    image: &MetadataImage,
    version: i16,
    ops: i32,
) -> Vec<MetadataResponseTopic> {
    let mut topics: Vec<&TopicImage> = image
        .topics()
        .filter(|t| request.authorized_quietly(Op::Describe, Resource::Topic, &t.name))
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
        .into_iter()
        .map(|t| describe(request, image, t, version, ops))
        .collect()
}

/// Creates the unknown topics among `names`, at most
/// `--max-auto-created-topics-per-request` of them. Returns the error of
/// each one it tried and could not create; the others are left for the
/// client's next request.
async fn auto_create<'a>(
    broker: &Arc<Broker>,
    image: &MetadataImage,
    names: impl Iterator<Item = &'a str>,
) -> HashMap<String, ResponseError> {
    let cap = broker.settings.max_auto_created_topics_per_request;
    let mut seen = HashSet::new();
    let mut wanted = Vec::new();
    let mut left = 0usize;
    for name in names {
        if image.topic_id(name).is_some()
            || !seen.insert(name)
            || crate::broker::topic::validate_name(name).is_err()
        {
            continue;
        }
        if wanted.len() < cap {
            wanted.push(name.to_string());
        } else {
            left = left.saturating_add(1);
        }
    }
    if wanted.is_empty() {
        return HashMap::new();
    }
    if left > 0 {
        tracing::info!(
            creating = wanted.len(),
            deferred = left,
            "a Metadata request names more unknown topics than one request may create; the rest get LEADER_NOT_AVAILABLE"
        );
    }
    let requests = wanted
        .iter()
        .map(|name| TopicRequest {
            new: NewTopic {
                name: name.clone(),
                partitions: broker.settings.default_partitions,
                configs: BTreeMap::new(),
            },
            replication_factor: -1,
            assignments: Vec::new(),
        })
        .collect();
    let results = broker.create_topics(requests, false).await;
    let mut failed = HashMap::new();
    for (name, result) in wanted.into_iter().zip(results) {
        match result {
            Ok(_) => {}
            // Another request created it first, or is creating it.
            Err(BrokerError::TopicAlreadyExists(_)) => {
                failed.insert(name, ResponseError::LeaderNotAvailable);
            }
            Err(e) => {
                if e.kafka_error() != ResponseError::TopicAlreadyExists {
                    tracing::warn!(topic = %name, "auto-creation failed: {e}");
                }
                let code = match e.kafka_error() {
                    ResponseError::TopicAlreadyExists | ResponseError::NotController => {
                        ResponseError::LeaderNotAvailable
                    }
                    other => other,
                };
                failed.insert(name, code);
            }
        }
    }
    failed
}

/// A topic as the image has it: per partition its leader (when alive),
/// leader epoch, replicas, ISR and offline replicas.
/// `listener`: the one the client connected to (replicas without it are
/// offline to the client).
fn describe(
    request: &Request,
    image: &MetadataImage,
    topic: &TopicImage,
    version: i16,
    ops: i32,
) -> MetadataResponseTopic {
    let listener: &str = &request.listener;
    let ops = request.authorized_ops(Resource::Topic, &topic.name, ops);
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    if version >= 10 {
        t.topic_id = topic.id;
    }
    t.topic_authorized_operations = ops;
    if version >= 1 {
        t.is_internal = crate::broker::groups::is_internal(&topic.name);
    }
    t.partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = index;
            if p.leader >= 0 {
                m.leader_id = p.leader.into();
            } else {
                m.leader_id = (-1).into();
                m.error_code = ResponseError::LeaderNotAvailable.code();
            }
            if version >= 7 {
                m.leader_epoch = p.leader_epoch;
            }
            m.replica_nodes = p.replicas.iter().map(|&r| r.into()).collect();
            m.isr_nodes = p.isr.iter().map(|&r| r.into()).collect();
            if version >= 5 {
                m.offline_replicas = image
                    .offline_replicas(p, listener)
                    .into_iter()
                    .map(Into::into)
                    .collect();
            }
            m
        })
        .collect();
    t
}

fn topic_error(name: Option<&str>, id: Uuid, err: ResponseError) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.error_code = err.code();
    t.name = name.map(|n| TopicName(StrBytes::from_string(n.to_string())));
    t.topic_id = id;
    t.topic_authorized_operations = authorized_ops::OMITTED;
    t
}
