//! DeleteGroups: empty groups go, with tombstones for their offsets and
//! metadata.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::{HandlerResult, Request};
use crate::broker::groups::{group_error_code, now_ms};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DeleteGroupsRequest = request.decode()?;
    let broker = &request.broker;
    let mut response = DeleteGroupsResponse::default();
    response.results = body
        .groups_names
        .into_iter()
        .map(|group_id| {
            let mut r = DeletableGroupResult::default();
            match broker.groups.delete_group(&group_id.0, now_ms()) {
                Ok(tombstones) => {
                    if let Err(e) = broker.write_offsets_records(&tombstones).map(|_| ()) {
                        tracing::error!(group = %&*group_id.0, "could not persist the deletion: {e}");
                        r.error_code = e.kafka_error().code();
                    }
                }
                Err(e) => r.error_code = group_error_code(Some(e)),
            }
            r.group_id = group_id;
            r
        })
        .collect();
    request.respond(&response)
}
