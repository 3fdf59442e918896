//! SyncGroup: the leader hands in the assignment; every member waits for
//! its share.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use wharf_coordinator::{GroupError, SyncOutcome, SyncRequest, SyncResponse};

use super::{HandlerResult, Request};
use crate::broker::groups::{group_error_code, now_ms, wait_answer};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(mut request: Request) -> HandlerResult {
    let body: SyncGroupRequest = request.decode()?;
    if let Some(e) = request
        .group_denied(crate::security::authz::Op::Read, &body.group_id.0)
        .or_else(|| request.broker.group_coordinator_error(&body.group_id.0))
    {
        let mut response = SyncGroupResponse::default();
        response.error_code = e.code();
        return request.respond(&response);
    }
    let version = request.api_version;
    let sync = SyncRequest {
        group_id: body.group_id.0.to_string(),
        generation_id: body.generation_id,
        member_id: body.member_id.to_string(),
        group_instance_id: body.group_instance_id.map(|s| s.to_string()),
        protocol_type: body.protocol_type.map(|s| s.to_string()),
        protocol_name: body.protocol_name.map(|s| s.to_string()),
        assignments: body
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let outcome = request.broker.groups.sync(sync, now_ms());
    request.broker.flush_group_records();
    let answer = match outcome {
        SyncOutcome::Done(answer) => answer,
        SyncOutcome::Wait(rx) => {
            wait_answer(rx, &mut request.shutdown)
                .await
                .unwrap_or_else(|| SyncResponse {
                    error: Some(GroupError::CoordinatorNotAvailable),
                    ..SyncResponse::default()
                })
        }
    };
    let mut response = SyncGroupResponse::default();
    response.error_code = group_error_code(answer.error);
    if version >= 5 {
        response.protocol_type = answer.protocol_type.map(StrBytes::from_string);
        response.protocol_name = answer.protocol_name.map(StrBytes::from_string);
    }
    response.assignment = answer.assignment;
    request.respond(&response)
}
