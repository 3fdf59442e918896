//! DescribeTopicPartitions (KIP-966): the partitions of the topics asked
//! for (all when none are named), in pages. Topics come sorted by name; at
//! most `response_partition_limit` partitions (and never more than
//! [`MAX_PARTITIONS`], Kafka's `max.request.partition.size.limit`) are
//! answered, and `next_cursor` names where the next page starts. The Java
//! admin client's `describeTopics` uses it when a broker lists it.
//!
//! Wharf has no eligible leader replicas (KIP-966's ELR, off by default in
//! Kafka 4): those fields are null, as a Kafka broker without ELR answers.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{authorized_ops, HandlerResult, Request};
use wharf_coordinator::metadata::{MetadataImage, TopicImage};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

/// Most partitions one answer holds, whatever the request asks (Kafka's
/// `max.request.partition.size.limit` default).
pub const MAX_PARTITIONS: usize = 2000;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DescribeTopicPartitionsRequest = request.decode()?;
    let image = request.broker.image();
    let response = answer(&image, &body, &request.listener);
    request.respond(&response)
}

/// The answer to `body` from `image`, for a client on `listener`.
fn answer(
    image: &MetadataImage,
    body: &DescribeTopicPartitionsRequest,
    listener: &str,
) -> DescribeTopicPartitionsResponse {
    let mut response = DescribeTopicPartitionsResponse::default();
    let all = body.topics.is_empty();
    let mut names: Vec<String> = if all {
        image.topics().map(|t| t.name.clone()).collect()
    } else {
        body.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();

    let cursor = body
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    if let Some((topic, partition)) = &cursor {
        let reason = if *partition < 0 {
            Some(format!(
                "the cursor's partition index {partition} is negative"
            ))
        } else if !all && !names.contains(topic) {
            Some(format!(
                "the cursor's topic {topic:?} is not among the topics asked for"
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            tracing::info!("DescribeTopicPartitions refused: {reason}");
            response.topics = names
                .iter()
                .map(|n| topic_error(n, ResponseError::InvalidRequest))
                .collect();
            return response;
        }
    }

    // A limit below one would page forever; above the broker's, it is cut.
    let limit = usize::try_from(body.response_partition_limit)
        .unwrap_or(0)
        .clamp(1, MAX_PARTITIONS);
    let mut left = limit;
    let start = cursor.as_ref().map(|(t, _)| t.as_str());
    let mut names = names
        .iter()
        .filter(|n| start.is_none_or(|s| n.as_str() >= s))
        .peekable();
    while let Some(name) = names.next() {
        let Some(topic) = image.topic_by_name(name) else {
            response
                .topics
                .push(topic_error(name, ResponseError::UnknownTopicOrPartition));
            continue;
        };
        let first = match &cursor {
            Some((t, p)) if t == name => *p,
            _ => 0,
        };
        let (described, next) = describe(image, topic, first, left, listener);
        left = left.saturating_sub(described.partitions.len());
        response.topics.push(described);
        if let Some(next) = next {
            response.next_cursor = Some(cursor_at(name, next));
            break;
        }
        if left == 0 {
            // Full exactly at a topic's end: the next page starts at the
            // next topic, if any.
            if let Some(following) = names.peek() {
                response.next_cursor = Some(cursor_at(following, 0));
            }
            break;
        }
    }
    response
}

/// `topic`'s partitions from index `first`, at most `max` of them; and the
/// index of the first one left out, when some are.
fn describe(
    image: &MetadataImage,
    topic: &TopicImage,
    first: i32,
    max: usize,
    listener: &str,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let mut t = DescribeTopicPartitionsResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    t.topic_id = topic.id;
    t.is_internal = crate::broker::groups::is_internal(&topic.name);
    t.topic_authorized_operations = authorized_ops::TOPIC;
    let mut next = None;
    for (&index, p) in topic.partitions.range(first..) {
        if t.partitions.len() == max {
            next = Some(index);
            break;
        }
        let mut out = DescribeTopicPartitionsResponsePartition::default();
        out.partition_index = index;
        if p.leader >= 0 {
            out.leader_id = p.leader.into();
        } else {
            out.leader_id = (-1).into();
            out.error_code = ResponseError::LeaderNotAvailable.code();
        }
        out.leader_epoch = p.leader_epoch;
        out.replica_nodes = p.replicas.iter().map(|&r| r.into()).collect();
        out.isr_nodes = p.isr.iter().map(|&r| r.into()).collect();
        out.eligible_leader_replicas = None;
        out.last_known_elr = None;
        out.offline_replicas = image
            .offline_replicas(p, listener)
            .into_iter()
            .map(Into::into)
            .collect();
        t.partitions.push(out);
    }
    (t, next)
}

fn cursor_at(topic: &str, partition: i32) -> Cursor {
    let mut c = Cursor::default();
    c.topic_name = TopicName(StrBytes::from_string(topic.to_string()));
    c.partition_index = partition;
    c
}

fn topic_error(name: &str, err: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    let mut t = DescribeTopicPartitionsResponseTopic::default();
    t.error_code = err.code();
    t.name = Some(TopicName(StrBytes::from_string(name.to_string())));
    t.topic_id = Uuid::nil();
    t.topic_authorized_operations = authorized_ops::OMITTED;
    t
}
