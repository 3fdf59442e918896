//! ConsumerGroupDescribe (KIP-848): epochs, state, assignor and members
//! (with their current and target assignments) of consumer-protocol
//! groups. A classic or unknown group answers GROUP_ID_NOT_FOUND, as Kafka
//! does (the admin client then falls back to DescribeGroups).

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use wharf_coordinator::{ConsumerMemberSummary, GroupError};

use super::describe_groups::GROUP_OPS;
use super::{authorized_ops, HandlerResult, Request};
use crate::broker::groups::group_error_code;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

/// Member type of v1: a member of the consumer protocol.
const CONSUMER_MEMBER: i8 = 1;

fn assignment(parts: Vec<(uuid::Uuid, String, Vec<i32>)>) -> Assignment {
    let mut a = Assignment::default();
    a.topic_partitions = parts
        .into_iter()
        .map(|(id, name, partitions)| {
            let mut tp = TopicPartitions::default();
            tp.topic_id = id;
            tp.topic_name = TopicName(StrBytes::from_string(name));
            tp.partitions = partitions;
            tp
        })
        .collect();
    a
}

fn member(m: ConsumerMemberSummary, version: i16) -> Member {
    let mut out = Member::default();
    out.member_id = StrBytes::from_string(m.member_id);
    out.instance_id = m.instance_id.map(StrBytes::from_string);
    out.rack_id = m.rack_id.map(StrBytes::from_string);
    out.member_epoch = m.member_epoch;
    out.client_id = StrBytes::from_string(m.client_id);
    out.client_host = StrBytes::from_string(m.client_host);
    out.subscribed_topic_names = m
        .subscribed_topic_names
        .into_iter()
        .map(|n| TopicName(StrBytes::from_string(n)))
        .collect();
    out.subscribed_topic_regex = m.subscribed_topic_regex.map(StrBytes::from_string);
    out.assignment = assignment(m.assignment);
    out.target_assignment = assignment(m.target_assignment);
    if version >= 1 {
        out.member_type = CONSUMER_MEMBER;
    }
    out
}

pub async fn handle(request: Request) -> HandlerResult {
    let body: ConsumerGroupDescribeRequest = request.decode()?;
    let version = request.api_version;
    let ops = if body.include_authorized_operations {
        GROUP_OPS
    } else {
        authorized_ops::OMITTED
    };
    let mut response = ConsumerGroupDescribeResponse::default();
    if !super::consumer_group_heartbeat::consumer_protocol_on(&request.broker) {
        // As Kafka answers with group.version 0: every group refused.
        response.groups = body
            .group_ids
            .into_iter()
            .map(|group_id| {
                let mut g = DescribedGroup::default();
                g.group_id = group_id;
                g.error_code = kafka_protocol::ResponseError::UnsupportedVersion.code();
                g
            })
            .collect();
        return request.respond(&response);
    }
    response.groups = body
        .group_ids
        .into_iter()
        .map(|group_id| {
            let mut g = DescribedGroup::default();
            g.authorized_operations = ops;
            let refused = request.broker.group_coordinator_error(&group_id.0);
            let found = match refused {
                Some(e) => {
                    g.error_code = e.code();
                    None
                }
                None if group_id.0.is_empty() => {
                    g.error_code = group_error_code(Some(GroupError::InvalidGroupId));
                    None
                }
                None => match request.broker.groups.consumer_describe(&group_id.0) {
                    Ok(summary) => Some(summary),
                    Err(e) => {
                        g.error_code = group_error_code(Some(e));
                        if e == GroupError::GroupIdNotFound {
                            g.error_message = Some(StrBytes::from_string(format!(
                                "Group {} not found or not a consumer group.",
                                &*group_id.0
                            )));
                        }
                        None
                    }
                },
            };
            if let Some(summary) = found {
                g.group_state = StrBytes::from_static_str(summary.state.name());
                g.group_epoch = summary.epoch;
                g.assignment_epoch = summary.assignment_epoch;
                g.assignor_name = StrBytes::from_string(summary.assignor);
                g.members = summary
                    .members
                    .into_iter()
                    .map(|m| member(m, version))
                    .collect();
            }
            g.group_id = group_id;
            g
        })
        .collect();
    request.respond(&response)
}
