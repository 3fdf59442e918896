//! Heartbeat: keeps a member's session alive and tells it of rebalances.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{HandlerResult, Request};
use crate::broker::groups::{group_error_code, now_ms};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

pub async fn handle(request: Request) -> HandlerResult {
    let body: HeartbeatRequest = request.decode()?;
    let heartbeat = wharf_coordinator::HeartbeatRequest {
        group_id: body.group_id.0.to_string(),
        generation_id: body.generation_id,
        member_id: body.member_id.to_string(),
        group_instance_id: body.group_instance_id.map(|s| s.to_string()),
    };
    let result = match request
        .group_denied(crate::security::authz::Op::Read, &heartbeat.group_id)
        .or_else(|| request.broker.group_coordinator_error(&heartbeat.group_id))
    {
        Some(e) => {
            let mut response = HeartbeatResponse::default();
            response.error_code = e.code();
            return request.respond(&response);
        }
        None => request.broker.groups.heartbeat(&heartbeat, now_ms()),
    };
    let mut response = HeartbeatResponse::default();
    response.error_code = group_error_code(result.err());
    request.respond(&response)
}
