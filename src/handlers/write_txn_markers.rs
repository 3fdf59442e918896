//! WriteTxnMarkers: what a transaction coordinator sends partition leaders
//! to end a transaction. Wharf's coordinator writes the markers of the
//! partitions it leads directly and sends this to the leaders of the
//! others; each marker is appended to each partition named that this
//! broker leads (NOT_LEADER_OR_FOLLOWER for the others), and answered once
//! replicated to the partition's ISR.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;
use wharf_coordinator::OFFSETS_TOPIC;

use super::{HandlerResult, Request};
use crate::broker::groups::now_ms;
use crate::broker::storage_error_code;

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 1;

pub async fn handle(request: Request) -> HandlerResult {
    let body: WriteTxnMarkersRequest = request.decode()?;
    let broker = &request.broker;
    let now = now_ms();
    let mut response = WriteTxnMarkersResponse::default();
    // Markers appended here, answered once replicated: (marker, topic,
    // partition) indexes in the response, the partition, end, epoch.
    let mut pending = Vec::new();
    for (m, marker) in body.markers.iter().enumerate() {
        let mut result = WritableTxnMarkerResult::default();
        result.producer_id = marker.producer_id;
        for (ti, t) in marker.topics.iter().enumerate() {
            let topic = broker.topic(&t.name.0);
            let mut tr = WritableTxnMarkerTopicResult::default();
            tr.name = t.name.clone();
            for (pi, &index) in t.partition_indexes.iter().enumerate() {
                let mut pr = WritableTxnMarkerPartitionResult::default();
                pr.partition_index = index;
                let partition = topic
                    .as_ref()
                    .and_then(|t| t.partition(index))
                    .filter(|p| broker.leads(p));
                pr.error_code = match partition {
                    None => broker.not_led_error(&t.name.0, index).code(),
                    Some(p) => {
                        let epoch = p.leader_epoch();
                        match p.append_marker(
                            marker.producer_id.0,
                            marker.producer_epoch,
                            marker.transaction_result,
                            marker.coordinator_epoch,
                            now,
                        ) {
                            Ok(info) => {
                                if *t.name.0 == *OFFSETS_TOPIC {
                                    broker.groups.end_txn_offsets(
                                        marker.producer_id.0,
                                        marker.transaction_result,
                                        now,
                                    );
                                }
                                let end = info.last_offset.saturating_add(1);
                                pending.push((m, ti, pi, p.clone(), end, epoch));
                                0
                            }
                            Err(e) => {
                                tracing::warn!(topic = %t.name.0, partition = index, "marker not written: {e}");
                                storage_error_code(&e).code()
                            }
                        }
                    }
                };
                tr.partitions.push(pr);
            }
            result.topics.push(tr);
        }
        response.markers.push(result);
    }
    // As Kafka's leaders append markers with acks=all: the coordinator
    // writes the transaction's Complete state only after this answer, so
    // a marker must survive the leader's failover.
    let deadline = tokio::time::Instant::now() + MARKER_TIMEOUT;
    for (m, ti, pi, partition, end, epoch) in pending {
        let code =
            match tokio::time::timeout_at(deadline, partition.wait_committed(end, epoch)).await {
                Ok(true) => continue,
                Ok(false) => ResponseError::NotLeaderOrFollower,
                Err(_) => ResponseError::RequestTimedOut,
            };
        let slot = response
            .markers
            .get_mut(m)
            .and_then(|r| r.topics.get_mut(ti))
            .and_then(|t| t.partitions.get_mut(pi));
        if let Some(pr) = slot {
            pr.error_code = code.code();
        }
    }
    request.respond(&response)
}

/// How long markers may take to replicate before the answer says
/// REQUEST_TIMED_OUT (the coordinator retries): within the 5 s the
/// coordinator's peer client waits for the answer.
const MARKER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);
