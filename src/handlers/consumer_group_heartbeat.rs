//! ConsumerGroupHeartbeat (KIP-848): a consumer-protocol member joins,
//! heartbeats and leaves; the answer carries its epoch and, when it
//! changed, its assignment.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_coordinator::metadata::features;
use wharf_coordinator::{ConsumerHeartbeat, TopicMeta, Topics};

use super::{HandlerResult, Request};
use crate::broker::groups::{group_error_code, is_internal, now_ms};
use crate::broker::Broker;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

/// The cluster's topics as the coordinator resolves subscriptions against
/// them (internal topics are never subscribed).
pub(super) fn topics_now(broker: &Broker) -> Topics {
    let image = broker.image();
    image
        .topics()
        .filter(|t| !is_internal(&t.name))
        .map(|t| {
            let partitions = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
            (
                t.name.clone(),
                TopicMeta {
                    id: t.id,
                    partitions,
                },
            )
        })
        .collect()
}

/// Whether the cluster runs `group.version` 1 or later, which switches
/// the consumer protocol on (Kafka's default; `kafka-features.sh
/// downgrade --feature group.version=0` switches it off).
pub fn consumer_protocol_on(broker: &Broker) -> bool {
    let image = broker.image();
    features::finalized_level(&image, features::GROUP_VERSION) >= 1
}

pub async fn handle(request: Request) -> HandlerResult {
    let body: ConsumerGroupHeartbeatRequest = request.decode()?;
    let mut response = ConsumerGroupHeartbeatResponse::default();
    if !consumer_protocol_on(&request.broker) {
        response.error_code = ResponseError::UnsupportedVersion.code();
        response.error_message = Some(StrBytes::from_static_str(
            "The new consumer group protocol is not enabled: group.version is 0.",
        ));
        return request.respond(&response);
    }
    request.broker.ensure_offsets_topic().await;
    if let Some(e) = request.broker.group_coordinator_error(&body.group_id.0) {
        response.error_code = e.code();
        return request.respond(&response);
    }
    let heartbeat = ConsumerHeartbeat {
        version: request.api_version,
        group_id: body.group_id.0.to_string(),
        member_id: body.member_id.to_string(),
        member_epoch: body.member_epoch,
        instance_id: body.instance_id.map(|s| s.to_string()),
        rack_id: body.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: body.rebalance_timeout_ms,
        subscribed_topic_names: body
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: body.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: body.server_assignor.map(|s| s.to_string()),
        owned: body.topic_partitions.map(|tps| {
            tps.into_iter()
                .map(|tp| (tp.topic_id, tp.partitions))
                .collect()
        }),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
    };
    let topics = topics_now(&request.broker);
    let answer = request
        .broker
        .groups
        .consumer_heartbeat(heartbeat, &topics, now_ms());
    if let Some(e) = answer.error {
        tracing::debug!(group = %&*body.group_id.0, member = %&*body.member_id, "consumer heartbeat refused: {e}");
    }
    response.error_code = group_error_code(answer.error);
    response.error_message = answer.error_message.map(StrBytes::from_string);
    response.member_id = answer.member_id.map(StrBytes::from_string);
    response.member_epoch = answer.member_epoch;
    response.heartbeat_interval_ms = answer.heartbeat_interval_ms;
    response.assignment = answer.assignment.map(|parts| {
        let mut a = Assignment::default();
        a.topic_partitions = parts
            .into_iter()
            .map(|(topic_id, partitions)| {
                let mut tp = TopicPartitions::default();
                tp.topic_id = topic_id;
                tp.partitions = partitions;
                tp
            })
            .collect();
        a
    });
    request.respond(&response)
}
