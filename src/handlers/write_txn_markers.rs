//! WriteTxnMarkers: what a transaction coordinator sends partition leaders
//! to end a transaction. Wharf's coordinator writes the markers of the
//! partitions it leads directly and sends this to the leaders of the
//! others; each marker is appended to each partition named that this
//! broker leads (NOT_LEADER_OR_FOLLOWER for the others).

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
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
    response.markers = body
        .markers
        .iter()
        .map(|marker| {
            let mut result = WritableTxnMarkerResult::default();
            result.producer_id = marker.producer_id;
            result.topics = marker
                .topics
                .iter()
                .map(|t| {
                    let topic = broker.topic(&t.name.0);
                    let mut tr = WritableTxnMarkerTopicResult::default();
                    tr.name = t.name.clone();
                    tr.partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&index| {
                            let mut pr = WritableTxnMarkerPartitionResult::default();
                            pr.partition_index = index;
                            let partition = topic
                                .as_ref()
                                .and_then(|t| t.partition(index))
                                .filter(|p| broker.leads(p));
                            pr.error_code = match partition {
                                None => broker.not_led_error(&t.name.0, index)
                                    .code(),
                                Some(p) => match p.append_marker(
                                    marker.producer_id.0,
                                    marker.producer_epoch,
                                    marker.transaction_result,
                                    marker.coordinator_epoch,
                                    now,
                                ) {
                                    Ok(_) => {
                                        if *t.name.0 == *OFFSETS_TOPIC {
                                            broker.groups.end_txn_offsets(
                                                marker.producer_id.0,
                                                marker.transaction_result,
                                                now,
                                            );
                                        }
                                        0
                                    }
                                    Err(e) => {
                                        tracing::warn!(topic = %t.name.0, partition = index, "marker not written: {e}");
                                        storage_error_code(&e).code()
                                    }
                                },
                            };
                            pr
                        })
                        .collect();
                    tr
                })
                .collect();
            result
        })
        .collect();
    request.respond(&response)
}
