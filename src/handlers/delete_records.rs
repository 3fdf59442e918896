//! DeleteRecords: moves partitions' log start offsets forward. Records below
//! the new start can no longer be fetched (OFFSET_OUT_OF_RANGE) and whole
//! segments below it are deleted; offset -1 means the high watermark.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};
use crate::broker::storage_error_code;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DeleteRecordsRequest = request.decode()?;
    let broker = request.broker.clone();
    let topics = tokio::task::spawn_blocking(move || {
        let mut moved = false;
        let mut topics = Vec::with_capacity(body.topics.len());
        for t in body.topics {
            let topic = broker.topic(t.name.0.as_str());
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in t.partitions {
                let mut out = DeleteRecordsPartitionResult::default();
                out.partition_index = p.partition_index;
                out.low_watermark = -1;
                let led = topic
                    .as_ref()
                    .and_then(|t| t.partition(p.partition_index))
                    .filter(|partition| broker.leads(partition));
                let result = match led {
                    None => Err(broker.not_led_error(t.name.0.as_str(), p.partition_index)),
                    Some(partition) => {
                        let target = if p.offset == -1 {
                            partition.high_watermark()
                        } else {
                            p.offset
                        };
                        if target < 0 {
                            Err(ResponseError::OffsetOutOfRange)
                        } else {
                            partition
                                .advance_log_start(target)
                                .map_err(|e| storage_error_code(&e))
                        }
                    }
                };
                match result {
                    Ok(low) => {
                        moved = true;
                        out.low_watermark = low;
                    }
                    Err(e) => out.error_code = e.code(),
                }
                partitions.push(out);
            }
            let mut result = DeleteRecordsTopicResult::default();
            result.name = t.name;
            result.partitions = partitions;
            topics.push(result);
        }
        if moved {
            if let Err(e) = broker.write_log_start_checkpoint() {
                tracing::error!("{e}");
            }
        }
        topics
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!("DeleteRecords task failed: {e}");
        Vec::new()
    });
    let mut response = DeleteRecordsResponse::default();
    response.topics = topics;
    request.respond(&response)
}
