//! LeaveGroup: one member (v0-v2) or a batch of members, static ones by
//! instance id (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use wharf_coordinator::LeaveMember;

use super::{HandlerResult, Request};
use crate::broker::groups::{group_error_code, now_ms};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(request: Request) -> HandlerResult {
    let body: LeaveGroupRequest = request.decode()?;
    if let Some(e) = request
        .group_denied(crate::security::authz::Op::Read, &body.group_id.0)
        .or_else(|| request.broker.group_coordinator_error(&body.group_id.0))
    {
        let mut response = LeaveGroupResponse::default();
        response.error_code = e.code();
        return request.respond(&response);
    }
    let version = request.api_version;
    let leaving: Vec<LeaveMember> = if version >= 3 {
        body.members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: body.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let result = request
        .broker
        .groups
        .leave(&body.group_id.0, &leaving, now_ms());
    request.broker.flush_group_records();
    let mut response = LeaveGroupResponse::default();
    match result {
        Err(e) => response.error_code = group_error_code(Some(e)),
        Ok(results) if version >= 3 => {
            response.members = body
                .members
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    let mut out = MemberResponse::default();
                    out.member_id = m.member_id;
                    out.group_instance_id = m.group_instance_id;
                    out.error_code = group_error_code(r.err());
                    out
                })
                .collect();
        }
        Ok(results) => {
            response.error_code =
                group_error_code(results.into_iter().next().and_then(|r| r.err()));
        }
    }
    request.respond(&response)
}
