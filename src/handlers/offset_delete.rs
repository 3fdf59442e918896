//! OffsetDelete: forget a group's committed offsets of some partitions
//! (not of topics the group's members still subscribe to).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::{HandlerResult, Request};
use crate::broker::groups::group_error_code;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(request: Request) -> HandlerResult {
    let body: OffsetDeleteRequest = request.decode()?;
    let broker = &request.broker;
    let asked: Vec<(String, i32)> = body
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let mut response = OffsetDeleteResponse::default();
    match broker.groups.delete_offsets(&body.group_id.0, &asked) {
        Err(e) => response.error_code = group_error_code(Some(e)),
        Ok((results, tombstones)) => {
            let write_error = broker.write_offsets_records(&tombstones).err().map(|e| {
                tracing::error!(group = %&*body.group_id.0, "could not persist offset deletion: {e}");
                e.kafka_error().code()
            });
            let mut results = results.into_iter();
            response.topics = body
                .topics
                .into_iter()
                .map(|t| {
                    let mut rt = OffsetDeleteResponseTopic::default();
                    rt.partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let mut rp = OffsetDeleteResponsePartition::default();
                            rp.partition_index = p.partition_index;
                            rp.error_code = match results.next() {
                                Some(Err(e)) => group_error_code(Some(e)),
                                _ => write_error.unwrap_or(0),
                            };
                            rp
                        })
                        .collect();
                    rt.name = t.name;
                    rt
                })
                .collect();
        }
    }
    request.respond(&response)
}
