//! Fetch: stored batches returned as they are, with long-polling.
//!
//! A fetch that finds fewer than `min_bytes` waits up to `max_wait_ms` for an
//! append anywhere on the broker, re-reading when one happens; it does not
//! poll. Fetch sessions (KIP-227, see `session`): a full fetch (epoch 0)
//! opens one when the cache has room; an incremental fetch reads every
//! partition of its session and answers only those with something new.
//!
//! The records read stay in memory until the client has read the answer,
//! so they are charged to the broker's response budget: an answer carries
//! at most what the budget grants, or its first batch whole while the
//! budget's overdraft allows, and the charge ends when the connection has
//! written it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchResponse, ProducerId};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::{HandlerError, HandlerResult, Request, ResponseBody};
use crate::broker::compression::contains_zstd;
use crate::broker::fetch_sessions::{Context, SessionError, INVALID_SESSION_ID};
use crate::broker::{storage_error_code, Broker, Partition};
use crate::budget::{ResponseBudget, ResponseCharge};
use crate::security::authz::{Op, Resource};

pub const MIN_VERSION: i16 = 4;
pub const MAX_VERSION: i16 = 18;

/// Most bytes one fetch response carries, whatever the client asks for
/// (Kafka's broker-side `fetch.max.bytes` default, 55 MiB). A single batch
/// larger than this is still returned whole when it comes first.
const FETCH_MAX_BYTES: usize = 55 * 1024 * 1024;

mod replica;
mod session;

pub async fn handle(mut request: Request) -> HandlerResult {
    let body: FetchRequest = request.decode()?;
    let replica_id = if request.api_version >= 15 {
        body.replica_state.replica_id.0
    } else {
        body.replica_id.0
    };
    if replica_id >= 0 {
        // Followers need CLUSTER_ACTION (the inter-broker principal).
        if !request.authorized_on_cluster(Op::ClusterAction) {
            return respond_denied(&request, &body);
        }
        return replica::handle(request, body, replica_id).await;
    }
    let broker = request.broker.clone();
    let context = session::begin(&broker, &body, request.api_version);
    let session_topics = match &context {
        Context::Error(e) => return respond_session_error(&request, *e, INVALID_SESSION_ID),
        Context::Incremental { partitions, .. } => Some(session::topics_of(partitions)),
        Context::Sessionless | Context::Full => None,
    };
    // What to read: the request's partitions, or its session's.
    let topics = session_topics.as_deref().unwrap_or(&body.topics);
    // Topics the principal may not READ (by name; empty without the
    // authorizer).
    let unreadable = unreadable_topics(&request, topics);
    let wait = Duration::from_millis(u64::try_from(body.max_wait_ms).unwrap_or(0));
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(body.min_bytes).unwrap_or(0);
    // Woken (once per registration) when a requested partition's high
    // watermark moves.
    let wake = Arc::new(tokio::sync::Notify::new());
    loop {
        // Registered before reading, so a commit that lands after the read
        // wakes the wait below.
        watch_partitions(&broker, topics, request.api_version, &wake);
        let (mut responses, bytes, errors, charge) = read_all(
            &broker,
            &request.listener,
            &body,
            topics,
            request.api_version,
            &request.response_budget,
            &unreadable,
        );
        let done = bytes >= min_bytes
            || errors
            || Instant::now() >= deadline
            || *request.shutdown.borrow();
        if done {
            let session_id = match session::finish(
                &broker,
                &context,
                &body,
                request.api_version,
                false,
                &mut responses,
            ) {
                Ok(id) => id,
                Err(e) => {
                    let id = session::late_error_session_id(&context, e);
                    return respond_session_error(&request, e, id);
                }
            };
            let mut response = FetchResponse::default();
            response.session_id = session_id;
            if request.api_version >= 16 {
                response.node_endpoints = leader_endpoints(&broker, &request.listener, &responses);
            }
            crate::metrics::fetch_answered(&broker, &responses);
            response.responses = responses;
            return respond(&request, &response, charge);
        }
        drop(charge);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = wake.notified() => {}
            _ = request.shutdown.changed() => {}
        }
    }
}

/// A fetch session error: the code at the top level and no partitions (as
/// Kafka answers it), with `session_id` (0 but for a session that moved on
/// while this fetch waited).
pub(super) fn respond_session_error(
    request: &Request,
    error: SessionError,
    session_id: i32,
) -> HandlerResult {
    let mut response = FetchResponse::default();
    response.error_code = error.code();
    response.session_id = session_id;
    respond(request, &response, request.response_budget.reserve(0))
}

/// Registers `wake` with every requested partition this broker leads.
fn watch_partitions(
    broker: &Broker,
    topics: &[FetchTopic],
    version: i16,
    wake: &Arc<tokio::sync::Notify>,
) {
    for fetch_topic in topics {
        let topic = requested_topic(broker, fetch_topic, version >= 13);
        let Some(topic) = topic else {
            continue;
        };
        for fp in &fetch_topic.partitions {
            if let Some(p) = topic.partition(fp.partition) {
                p.wake_on_commit(wake);
            }
        }
    }
}

/// The endpoints of the leaders named in NOT_LEADER_OR_FOLLOWER answers
/// (KIP-951), so clients need no Metadata round trip to find them.
fn leader_endpoints(
    broker: &Broker,
    listener: &str,
    responses: &[FetchableTopicResponse],
) -> Vec<kafka_protocol::messages::fetch_response::NodeEndpoint> {
    let leaders: std::collections::BTreeSet<i32> = responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.error_code == ResponseError::NotLeaderOrFollower.code())
        .map(|p| p.current_leader.leader_id.0)
        .filter(|id| *id >= 0)
        .collect();
    let image = broker.image();
    leaders
        .into_iter()
        .filter_map(|id| {
            let endpoint = image.alive_endpoint(id, listener)?;
            let mut e = kafka_protocol::messages::fetch_response::NodeEndpoint::default();
            e.node_id = id.into();
            e.host = kafka_protocol::protocol::StrBytes::from_string(endpoint.host.clone());
            e.port = i32::from(endpoint.port);
            e.rack = image
                .broker(id)
                .and_then(|b| b.rack.clone())
                .map(kafka_protocol::protocol::StrBytes::from_string);
            Some(e)
        })
        .collect()
}

/// Encodes the response as chunks: each partition's records go out as the
/// buffer storage returned, without being copied into the response.
/// The names of the requested topics the principal may not READ.
fn unreadable_topics(request: &Request, topics: &[FetchTopic]) -> HashSet<String> {
    if !request.authorizer_on() {
        return HashSet::new();
    }
    let image = request.broker.image();
    topics
        .iter()
        .filter_map(|t| {
            if request.api_version >= 13 {
                image.topic(t.topic_id).map(|topic| topic.name.clone())
            } else {
                Some(t.topic.0.to_string())
            }
        })
        .filter(|name| !request.authorized(Op::Read, Resource::Topic, name))
        .collect()
}

/// TOPIC_AUTHORIZATION_FAILED for every requested partition.
fn respond_denied(request: &Request, body: &FetchRequest) -> HandlerResult {
    let mut response = FetchResponse::default();
    response.responses = body
        .topics
        .iter()
        .map(|t| {
            let mut out = FetchableTopicResponse::default();
            out.topic = t.topic.clone();
            out.topic_id = t.topic_id;
            out.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut d = PartitionData::default();
                    d.partition_index = p.partition;
                    d.high_watermark = -1;
                    d.records = Some(Bytes::new());
                    d.error_code = ResponseError::TopicAuthorizationFailed.code();
                    d
                })
                .collect();
            out
        })
        .collect();
    request.respond(&response)
}

/// The topic a fetch names: by id from v13, by name before.
fn requested_topic(
    broker: &Broker,
    fetch_topic: &FetchTopic,
    by_id: bool,
) -> Option<Arc<crate::broker::Topic>> {
    if by_id {
        broker.topic_by_id(&fetch_topic.topic_id)
    } else {
        broker.topic(fetch_topic.topic.0.as_str())
    }
}

pub(super) fn respond(
    request: &Request,
    response: &FetchResponse,
    charge: ResponseCharge,
) -> HandlerResult {
    let chunks = wharf_protocol::fetch_response::encode_chunks(response, request.api_version)
        .map_err(|e| HandlerError::Encode {
            api: request.api_key,
            version: request.api_version,
            reason: e.reason,
        })?;
    Ok(Some(ResponseBody::Charged(chunks, charge)))
}

/// Reads every requested partition once, within what the response budget
/// grants. Returns the topic responses, the number of record bytes, whether
/// any partition had an error, and the charge for the records read.
fn read_all(
    broker: &Broker,
    listener: &str,
    body: &FetchRequest,
    topics: &[FetchTopic],
    version: i16,
    budget: &Arc<ResponseBudget>,
    unreadable: &HashSet<String>,
) -> (Vec<FetchableTopicResponse>, usize, bool, ResponseCharge) {
    let by_id = version >= 13;
    let mut charge = budget.reserve(
        usize::try_from(body.max_bytes)
            .unwrap_or(0)
            .min(FETCH_MAX_BYTES),
    );
    let max_bytes = charge.granted();
    let mut total = 0usize;
    let mut any_error = false;
    let mut responses = Vec::with_capacity(topics.len());
    // From v11 a consumer may read from a follower (KIP-392): the leader
    // names the in-sync follower in the consumer's rack when the rack-aware
    // selector is on, and a follower serves what it has committed.
    let client_rack = (version >= 11 && broker.settings.rack_aware_reads)
        .then(|| body.rack_id.as_str())
        .filter(|r| !r.is_empty());
    let image = client_rack.map(|_| broker.image());
    let rack_of = |id: i32| image.as_ref()?.broker(id)?.rack.clone();
    for fetch_topic in topics {
        let topic = requested_topic(broker, fetch_topic, by_id);
        let denied = !unreadable.is_empty()
            && match &topic {
                Some(t) => unreadable.contains(&*t.name),
                None => !by_id && unreadable.contains(fetch_topic.topic.0.as_str()),
            };
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for fp in &fetch_topic.partitions {
            let mut out = PartitionData::default();
            out.partition_index = fp.partition;
            out.high_watermark = -1;
            out.aborted_transactions = None;
            out.records = Some(Bytes::new());
            if denied {
                out.error_code = ResponseError::TopicAuthorizationFailed.code();
                any_error = true;
                partitions.push(out);
                continue;
            }
            let partition = topic
                .as_ref()
                .and_then(|t| t.partition(fp.partition))
                .filter(|p| broker.leads(p) || (version >= 11 && p.is_readable_follower()));
            let hint = match partition {
                Some(_) => None,
                None => broker.leader_hint(
                    listener,
                    Some(fetch_topic.topic.0.as_str()),
                    by_id.then_some(fetch_topic.topic_id),
                    fp.partition,
                ),
            };
            let preferred = match (partition, client_rack) {
                (Some(p), Some(rack)) => p.preferred_read_replica(rack, fp.fetch_offset, rack_of),
                _ => None,
            };
            match partition {
                None if hint.is_some() => {
                    if let Some(hint) = &hint {
                        out.current_leader.leader_id = hint.leader.into();
                        out.current_leader.leader_epoch = hint.leader_epoch;
                    }
                    out.error_code = ResponseError::NotLeaderOrFollower.code();
                }
                None => {
                    out.error_code = if topic.is_none() && by_id {
                        ResponseError::UnknownTopicId.code()
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                }
                Some(p) if preferred.is_some() => {
                    // No records: the consumer fetches them from the
                    // replica named.
                    out.preferred_read_replica = preferred.unwrap_or(-1).into();
                    out.high_watermark = p.high_watermark();
                    out.last_stable_offset = p.last_stable_offset();
                    out.log_start_offset = p.log_start_offset();
                }
                Some(p) => {
                    let budget = usize::try_from(fp.partition_max_bytes)
                        .unwrap_or(0)
                        .min(max_bytes.saturating_sub(total));
                    // read_committed (isolation level 1) stops at the last stable offset.
                    let committed = body.isolation_level == 1;
                    let limit = if committed {
                        p.last_stable_offset()
                    } else {
                        i64::MAX
                    };
                    match read_partition(
                        p,
                        fp.fetch_offset,
                        fp.current_leader_epoch,
                        budget,
                        total == 0,
                        limit,
                    ) {
                        Ok(records) if version < 10 && contains_zstd(&records) => {
                            // As Kafka: zstd needs Fetch v10 or later.
                            out.error_code = ResponseError::UnsupportedCompressionType.code();
                        }
                        Ok(records) if !charge.extend_to(total + records.len()) => {
                            // The response budget is spent, the first
                            // batch's overdraft included: these records
                            // wait for a later fetch.
                            tracing::debug!(
                                bytes = records.len(),
                                "response budget spent; answering without these records"
                            );
                        }
                        Ok(records) => {
                            if committed {
                                out.aborted_transactions =
                                    Some(aborted_in(p, fp.fetch_offset, &records));
                            }
                            total += records.len();
                            out.records = Some(records);
                        }
                        Err(err) => out.error_code = err.code(),
                    }
                    out.high_watermark = p.high_watermark();
                    out.last_stable_offset = p.last_stable_offset();
                    if version >= 5 {
                        out.log_start_offset = p.log_start_offset();
                    }
                }
            }
            any_error |= out.error_code != 0;
            partitions.push(out);
        }
        let mut response = FetchableTopicResponse::default();
        response.topic = fetch_topic.topic.clone();
        response.topic_id = fetch_topic.topic_id;
        response.partitions = partitions;
        responses.push(response);
    }
    charge.settle(total);
    (responses, total, any_error, charge)
}

fn read_partition(
    partition: &Partition,
    offset: i64,
    current_leader_epoch: i32,
    budget: usize,
    first: bool,
    limit: i64,
) -> Result<Bytes, ResponseError> {
    super::check_leader_epoch(partition, current_leader_epoch)?;
    let read = if limit == i64::MAX {
        partition.read(offset, budget, first)
    } else {
        partition.read_below(offset, budget, first, limit)
    };
    read.map_err(|e| storage_error_code(&e))
}

/// The aborted transactions a read_committed consumer needs to drop
/// records of `records`, fetched from `offset`.
fn aborted_in(partition: &Partition, offset: i64, records: &Bytes) -> Vec<AbortedTransaction> {
    let end = wharf_protocol::batch::batches(records)
        .map_while(Result::ok)
        .last()
        .map_or(offset, |(h, _)| h.next_offset());
    partition
        .aborted_transactions(offset, end)
        .into_iter()
        .map(|t| {
            let mut a = AbortedTransaction::default();
            a.producer_id = ProducerId(t.producer_id);
            a.first_offset = t.first_offset;
            a
        })
        .collect()
}
