//! Fetch from a follower (replica id set): the leader's side of
//! replication. Reads go up to the log end, not the high watermark; each
//! fetch records the follower's position (which moves the high watermark
//! and may add it to the ISR); a follower whose log diverges from the
//! leader's is told where (`diverging_epoch`, KIP-320). Long-polls until
//! the log end of a requested partition moves. Fetch sessions work as for
//! consumers, and a follower's session is privileged in the cache (it may
//! take a consumer's slot); Wharf's own followers fetch without one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::{requested_topic, respond, HandlerResult, Request, FETCH_MAX_BYTES};
use crate::broker::fetch_sessions::{Context, INVALID_SESSION_ID};
use crate::broker::{Broker, ReplicaFetch};
use crate::cluster::node::admin::IsrChange;

pub async fn handle(mut request: Request, body: FetchRequest, replica: i32) -> HandlerResult {
    let broker = request.broker.clone();
    let context = super::session::begin(&broker, &body, request.api_version);
    let session_topics = match &context {
        Context::Error(e) => return super::respond_session_error(&request, *e, INVALID_SESSION_ID),
        Context::Incremental { partitions, .. } => Some(super::session::topics_of(partitions)),
        Context::Sessionless | Context::Full => None,
    };
    let topics = session_topics.as_deref().unwrap_or(&body.topics);
    let wait = Duration::from_millis(u64::try_from(body.max_wait_ms).unwrap_or(0));
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(body.min_bytes).unwrap_or(0);
    let wake = Arc::new(tokio::sync::Notify::new());
    loop {
        let (mut responses, bytes, stop_early, charge) = read_all(
            &broker,
            &body,
            topics,
            request.api_version,
            replica,
            &wake,
            &request,
        );
        let done = bytes >= min_bytes
            || stop_early
            || Instant::now() >= deadline
            || *request.shutdown.borrow();
        if done {
            let session_id = match super::session::finish(
                &broker,
                &context,
                &body,
                request.api_version,
                true,
                &mut responses,
            ) {
                Ok(id) => id,
                Err(e) => {
                    let id = super::session::late_error_session_id(&context, e);
                    return super::respond_session_error(&request, e, id);
                }
            };
            let mut response = FetchResponse::default();
            response.session_id = session_id;
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

/// Serves every requested partition once. Returns the responses, the
/// record bytes, whether to answer at once (an error or a divergence),
/// and the charge for the records read.
fn read_all(
    broker: &Broker,
    body: &FetchRequest,
    topics: &[FetchTopic],
    version: i16,
    replica: i32,
    wake: &Arc<tokio::sync::Notify>,
    request: &Request,
) -> (
    Vec<FetchableTopicResponse>,
    usize,
    bool,
    crate::budget::ResponseCharge,
) {
    let by_id = version >= 13;
    let mut charge = request.response_budget.reserve(
        usize::try_from(body.max_bytes)
            .unwrap_or(0)
            .min(FETCH_MAX_BYTES),
    );
    let max_bytes = charge.granted();
    let mut total = 0usize;
    let mut stop_early = false;
    let mut responses = Vec::with_capacity(topics.len());
    // Kafka's `isReplicaIsrEligible`: a fenced or stopping follower is not
    // proposed for the ISR (the controller would refuse it).
    let isr_eligible = broker
        .image()
        .broker(replica)
        .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown);
    for fetch_topic in topics {
        let topic = requested_topic(broker, fetch_topic, by_id);
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for fp in &fetch_topic.partitions {
            let mut out = PartitionData::default();
            out.partition_index = fp.partition;
            out.high_watermark = -1;
            out.aborted_transactions = None;
            out.records = Some(Bytes::new());
            let Some(p) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                out.error_code = if topic.is_none() && by_id {
                    ResponseError::UnknownTopicId.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                stop_early = true;
                partitions.push(out);
                continue;
            };
            // Registered before reading: an append after the read wakes us.
            p.wake_on_append(wake);
            let budget = usize::try_from(fp.partition_max_bytes)
                .unwrap_or(0)
                .min(max_bytes.saturating_sub(total));
            let fetch = ReplicaFetch {
                replica,
                fetch_offset: fp.fetch_offset,
                current_leader_epoch: fp.current_leader_epoch,
                last_fetched_epoch: if version >= 12 {
                    fp.last_fetched_epoch
                } else {
                    -1
                },
                max_bytes: budget,
                isr_eligible,
            };
            match p.replica_fetch(&fetch) {
                Ok(read) => {
                    if let (Some(change), Some(t)) = (read.expand, topic.as_ref()) {
                        tracing::info!(topic = %t.name, partition = p.index, replica, "follower caught up; asking to add it to the ISR");
                        broker.request_isr_change(IsrChange {
                            topic_id: t.id,
                            partition: p.index,
                            leader_epoch: change.0,
                            partition_epoch: change.1,
                            isr: change.2,
                        });
                    }
                    if let Some((epoch, end_offset)) = read.diverging {
                        out.diverging_epoch.epoch = epoch;
                        out.diverging_epoch.end_offset = end_offset;
                        stop_early = true;
                    }
                    if charge.extend_to(total + read.records.len()) {
                        total += read.records.len();
                        out.records = Some(read.records);
                    }
                    out.high_watermark = read.high_watermark;
                    out.last_stable_offset = read.high_watermark;
                    out.log_start_offset = read.log_start_offset;
                }
                Err(code) => {
                    if code != ResponseError::OffsetOutOfRange {
                        tracing::debug!(
                            partition = p.index,
                            replica,
                            "follower fetch refused: {code:?}"
                        );
                    }
                    out.error_code = code.code();
                    out.high_watermark = p.high_watermark();
                    out.log_start_offset = p.log_start_offset();
                    stop_early = true;
                }
            }
            partitions.push(out);
        }
        let mut response = FetchableTopicResponse::default();
        response.topic = fetch_topic.topic.clone();
        response.topic_id = fetch_topic.topic_id;
        response.partitions = partitions;
        responses.push(response);
    }
    charge.settle(total);
    (responses, total, stop_early, charge)
}
