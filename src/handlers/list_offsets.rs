//! ListOffsets: earliest, latest, max-timestamp and by-timestamp lookups.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::{check_leader_epoch, HandlerResult, Request};
use crate::broker::{storage_error_code, Partition};
use crate::security::authz::{Op, Resource};

pub const MIN_VERSION: i16 = 1;
pub const MAX_VERSION: i16 = 10;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const EARLIEST_PENDING_UPLOAD: i64 = -5;
/// Offsets and timestamps reported when there is no answer.
const NONE: i64 = -1;

pub async fn handle(request: Request) -> HandlerResult {
    let body: ListOffsetsRequest = request.decode()?;
    let broker = &request.broker;
    // The leader epoch field exists from v4.
    let with_epoch = request.api_version >= 4;
    let committed = request.api_version >= 2 && body.isolation_level == 1;
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let topic = broker.topic(t.name.0.as_str());
        let describable = request.authorized(Op::Describe, Resource::Topic, t.name.0.as_str());
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let mut out = ListOffsetsPartitionResponse::default();
                out.partition_index = p.partition_index;
                out.timestamp = NONE;
                out.offset = NONE;
                out.leader_epoch = -1;
                let found = Some(())
                    .filter(|()| describable)
                    .ok_or(ResponseError::TopicAuthorizationFailed)
                    .and_then(|()| {
                        topic
                            .as_ref()
                            .and_then(|topic| topic.partition(p.partition_index))
                            .filter(|partition| broker.leads(partition))
                            .ok_or_else(|| {
                                broker.not_led_error(t.name.0.as_str(), p.partition_index)
                            })
                            .and_then(|partition| {
                                check_leader_epoch(partition, p.current_leader_epoch)?;
                                lookup(partition, p.timestamp, committed)
                                    .map(|r| (r, partition.leader_epoch()))
                            })
                    });
                match found {
                    Ok(((offset, timestamp), epoch)) => {
                        out.offset = offset;
                        out.timestamp = timestamp;
                        if with_epoch {
                            out.leader_epoch = epoch;
                        }
                    }
                    Err(err) => out.error_code = err.code(),
                }
                out
            })
            .collect();
        let mut response = ListOffsetsTopicResponse::default();
        response.name = t.name;
        response.partitions = partitions;
        topics.push(response);
    }
    let mut response = ListOffsetsResponse::default();
    response.topics = topics;
    request.respond(&response)
}

/// (offset, timestamp) for one partition and one requested timestamp;
/// `committed` (read_committed) makes LATEST the last stable offset.
fn lookup(
    partition: &Partition,
    timestamp: i64,
    committed: bool,
) -> Result<(i64, i64), ResponseError> {
    Ok(match timestamp {
        LATEST if committed => (partition.last_stable_offset(), NONE),
        LATEST => (partition.high_watermark(), NONE),
        EARLIEST | EARLIEST_LOCAL => (partition.log_start_offset(), NONE),
        // No tiered storage, so nothing is pending upload.
        EARLIEST_PENDING_UPLOAD => (NONE, NONE),
        MAX_TIMESTAMP => partition
            .max_timestamp()
            .map(|(ts, offset)| (offset, ts))
            .unwrap_or((NONE, NONE)),
        ts if ts >= 0 => partition
            .offset_for_timestamp(ts)
            .map_err(|e| storage_error_code(&e))?
            .unwrap_or((NONE, NONE)),
        _ => return Err(ResponseError::InvalidRequest),
    })
}
