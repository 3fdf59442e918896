//! OffsetFetch: committed offsets of one group (v1-v7) or several (v8+),
//! of the partitions named or all of them.
//!
//! `require_stable` (v7+) asks for UNSTABLE_OFFSET_COMMIT on partitions
//! whose offsets a transaction has committed but not yet ended (Kafka
//! answers it per partition).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use wharf_coordinator::{CommittedOffset, GroupError};

use super::{HandlerResult, Request};
use crate::broker::groups::group_error_code;
use crate::security::authz::{Op, Resource};

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 9;

const UNSTABLE: i16 = kafka_protocol::ResponseError::UnstableOffsetCommit.code();

/// The committed offsets, or the error code of the whole group.
type Fetched = Result<Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>, i16>;

/// With the authorizer on, the group needs DESCRIBE; of all the group's
/// topics, those the principal may not DESCRIBE are left out (named ones
/// are answered TOPIC_AUTHORIZATION_FAILED by [`topic_denied`]).
fn fetch(request: &Request, group: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Fetched {
    let broker = &request.broker;
    if let Some(e) = request.group_denied(Op::Describe, group) {
        return Err(e.code());
    }
    let all = topics.is_none();
    let found = match broker.group_coordinator_error(group) {
        Some(kafka_protocol::ResponseError::NotCoordinator) => Err(GroupError::NotCoordinator),
        Some(_) => Err(GroupError::CoordinatorNotAvailable),
        None => broker.groups.fetch_offsets(group, topics.as_deref()),
    };
    let mut found = found.map_err(|e| group_error_code(Some(e)))?;
    if all && request.authorizer_on() {
        found.retain(|(t, _)| request.authorized_quietly(Op::Describe, Resource::Topic, t));
    }
    Ok(found)
}

/// TOPIC_AUTHORIZATION_FAILED's code when the principal may not DESCRIBE
/// a topic it named.
fn topic_denied(request: &Request, topic: &str) -> Option<i16> {
    (!request.authorized(Op::Describe, Resource::Topic, topic))
        .then_some(kafka_protocol::ResponseError::TopicAuthorizationFailed.code())
}

fn name(s: String) -> TopicName {
    TopicName(StrBytes::from_string(s))
}

pub async fn handle(request: Request) -> HandlerResult {
    let body: OffsetFetchRequest = request.decode()?;
    request.broker.ensure_offsets_topic().await;
    let version = request.api_version;
    let broker = &request.broker;
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        response.groups = body
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let mut out = OffsetFetchResponseGroup::default();
                // v9: a consumer-protocol member fetches at its epoch
                // (checked once the principal may DESCRIBE the group).
                let member = g.member_id.as_deref().unwrap_or_default();
                let found = match request.group_denied(Op::Describe, &g.group_id.0) {
                    Some(e) => Err(e.code()),
                    None => broker
                        .groups
                        .check_consumer_fetch(&g.group_id.0, member, g.member_epoch)
                        .map_err(|e| group_error_code(Some(e)))
                        .and_then(|()| fetch(&request, &g.group_id.0, topics)),
                };
                match found {
                    Ok(found) => {
                        out.topics = found
                            .into_iter()
                            .map(|(t, parts)| {
                                let mut rt = OffsetFetchResponseTopics::default();
                                let denied = topic_denied(&request, &t);
                                rt.name = name(t.clone());
                                rt.partitions = parts
                                    .into_iter()
                                    .map(|(index, o)| {
                                        let mut p = OffsetFetchResponsePartitions::default();
                                        p.partition_index = index;
                                        let unstable = body.require_stable
                                            && broker.groups.has_pending_offset(
                                                &g.group_id.0,
                                                &t,
                                                index,
                                            );
                                        let o = if unstable { None } else { o };
                                        fill(&o, |off, epoch, meta| {
                                            p.committed_offset = off;
                                            p.committed_leader_epoch = epoch;
                                            p.metadata = Some(meta);
                                        });
                                        if unstable {
                                            p.error_code = UNSTABLE;
                                        }
                                        if let Some(code) = denied {
                                            p.committed_offset = -1;
                                            p.error_code = code;
                                        }
                                        p
                                    })
                                    .collect();
                                rt
                            })
                            .collect();
                    }
                    Err(e) => out.error_code = e,
                }
                out.group_id = g.group_id;
                out
            })
            .collect();
        return request.respond(&response);
    }
    let topics = body.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect::<Vec<_>>()
    });
    let asked = topics.clone();
    match fetch(&request, &body.group_id.0, topics) {
        Ok(found) => {
            response.topics = found
                .into_iter()
                .map(|(t, parts)| {
                    let mut rt = OffsetFetchResponseTopic::default();
                    let denied = topic_denied(&request, &t);
                    rt.name = name(t.clone());
                    rt.partitions = parts
                        .into_iter()
                        .map(|(index, o)| {
                            let mut p = OffsetFetchResponsePartition::default();
                            p.partition_index = index;
                            let unstable = version >= 7
                                && body.require_stable
                                && broker
                                    .groups
                                    .has_pending_offset(&body.group_id.0, &t, index);
                            let o = if unstable { None } else { o };
                            if unstable {
                                p.error_code = UNSTABLE;
                            }
                            fill(&o, |off, epoch, meta| {
                                p.committed_offset = off;
                                if version >= 5 {
                                    p.committed_leader_epoch = epoch;
                                }
                                p.metadata = Some(meta);
                            });
                            if let Some(code) = denied {
                                p.committed_offset = -1;
                                p.error_code = code;
                            }
                            p
                        })
                        .collect();
                    rt
                })
                .collect();
        }
        Err(e) if version >= 2 => response.error_code = e,
        Err(e) => {
            // v1 has no top-level error: each partition carries it.
            response.topics = asked
                .unwrap_or_default()
                .into_iter()
                .map(|(t, parts)| {
                    let mut rt = OffsetFetchResponseTopic::default();
                    rt.name = name(t.clone());
                    rt.partitions = parts
                        .into_iter()
                        .map(|index| {
                            let mut p = OffsetFetchResponsePartition::default();
                            p.partition_index = index;
                            p.committed_offset = -1;
                            p.metadata = Some(StrBytes::default());
                            p.error_code = e;
                            p
                        })
                        .collect();
                    rt
                })
                .collect();
        }
    }
    request.respond(&response)
}

/// Offset, leader epoch and metadata of a partition: -1, -1 and "" when
/// nothing is committed, as Kafka answers.
fn fill(o: &Option<CommittedOffset>, mut set: impl FnMut(i64, i32, StrBytes)) {
    match o {
        Some(o) => set(
            o.offset,
            o.leader_epoch,
            StrBytes::from_string(o.metadata.clone()),
        ),
        None => set(-1, -1, StrBytes::default()),
    }
}
