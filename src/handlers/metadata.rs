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
use crate::broker::{Broker, BrokerError, NewTopic, Topic};

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
    let describe = |topic: &Arc<Topic>| describe(broker, topic, version, topic_ops);
    let topics = match body.topics {
        // v0 uses an empty list for "all topics"; later versions use null.
        None => broker.topics().iter().map(describe).collect(),
        Some(list) if list.is_empty() && version == 0 => {
            broker.topics().iter().map(describe).collect()
        }
        Some(list) => {
            let mut created = if allow_create {
                let names = list
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()));
                auto_create(broker, names).await
            } else {
                HashMap::new()
            };
            list.into_iter()
                .map(|t| match t.name {
                    Some(name) => {
                        let found = match broker.topic(name.0.as_str()) {
                            Some(topic) => Ok(topic),
                            None if !allow_create => Err(ResponseError::UnknownTopicOrPartition),
                            None => created.remove(name.0.as_str()).unwrap_or_else(|| {
                                match crate::broker::topic::validate_name(name.0.as_str()) {
                                    Err(e) => Err(e.kafka_error()),
                                    // Past this request's share of creations,
                                    // or being created by another: "retry".
                                    Ok(()) => Err(ResponseError::LeaderNotAvailable),
                                }
                            }),
                        };
                        found.map_or_else(
                            |err| topic_error(Some(&name.0), Uuid::nil(), err),
                            |t| describe(&t),
                        )
                    }
                    None => broker.topic_by_id(&t.topic_id).map_or_else(
                        || topic_error(None, t.topic_id, ResponseError::UnknownTopicId),
                        |t| describe(&t),
                    ),
                })
                .collect()
        }
    };

    let (brokers, controller) = broker.cluster_view();
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
        response.cluster_authorized_operations = authorized_ops::CLUSTER;
    }
    response.topics = topics;
    request.respond(&response)
}

/// Creates the unknown topics among `names`, at most
/// `--max-auto-created-topics-per-request` of them, on a blocking thread.
/// Returns the outcome for each one it tried; the others are left for the
/// client's next request.
async fn auto_create<'a>(
    broker: &Arc<Broker>,
    names: impl Iterator<Item = &'a str>,
) -> HashMap<String, Result<Arc<Topic>, ResponseError>> {
    let cap = broker.settings.max_auto_created_topics_per_request;
    let mut seen = HashSet::new();
    let mut wanted = Vec::new();
    let mut left = 0usize;
    for name in names {
        if broker.topic(name).is_some()
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
    let creating = broker.clone();
    let count = wanted.len();
    tokio::task::spawn_blocking(move || {
        wanted
            .into_iter()
            .map(|name| {
                let outcome = create(&creating, &name);
                (name, outcome)
            })
            .collect()
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!(topics = count, "auto-creation task failed: {e}");
        HashMap::new()
    })
}

/// Creates the topic `name` with the broker's defaults.
fn create(broker: &Broker, name: &str) -> Result<Arc<Topic>, ResponseError> {
    let new = NewTopic {
        name: name.to_string(),
        partitions: broker.settings.default_partitions,
        configs: BTreeMap::new(),
    };
    match broker.create_topic(new) {
        Ok(topic) => Ok(topic),
        // Another request created it first, or is creating it.
        Err(BrokerError::TopicAlreadyExists(_)) => {
            broker.topic(name).ok_or(ResponseError::LeaderNotAvailable)
        }
        Err(e) => {
            tracing::warn!(topic = name, "auto-creation failed: {e}");
            Err(e.kafka_error())
        }
    }
}

fn describe(broker: &Broker, topic: &Arc<Topic>, version: i16, ops: i32) -> MetadataResponseTopic {
    let node = broker.settings.node_id;
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.name.to_string())));
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
        .map(|p| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = p.index;
            m.leader_id = node.into();
            if version >= 7 {
                m.leader_epoch = p.leader_epoch();
            }
            m.replica_nodes = vec![node.into()];
            m.isr_nodes = vec![node.into()];
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
