//! JoinGroup: enter (or re-enter) a group; the answer waits for the
//! rebalance's join phase to complete.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use wharf_coordinator::{GroupError, JoinOutcome, JoinRequest, JoinResponse};

use super::{HandlerResult, Request};
use crate::broker::groups::{group_error_code, now_ms, wait_answer};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 9;

pub async fn handle(mut request: Request) -> HandlerResult {
    let body: JoinGroupRequest = request.decode()?;
    request.broker.ensure_offsets_topic().await;
    if let Some(e) = request
        .group_denied(crate::security::authz::Op::Read, &body.group_id.0)
        .or_else(|| request.broker.group_coordinator_error(&body.group_id.0))
    {
        let mut response = JoinGroupResponse::default();
        response.error_code = e.code();
        response.generation_id = -1;
        return request.respond(&response);
    }
    let version = request.api_version;
    let join = JoinRequest {
        group_id: body.group_id.0.to_string(),
        member_id: body.member_id.to_string(),
        group_instance_id: body.group_instance_id.map(|s| s.to_string()),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        session_timeout_ms: body.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            body.rebalance_timeout_ms
        } else {
            body.session_timeout_ms
        },
        protocol_type: body.protocol_type.to_string(),
        protocols: body
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = join.member_id.clone();
    let outcome = request.broker.groups.join(join, now_ms());
    request.broker.flush_group_records();
    let answer = match outcome {
        JoinOutcome::Done(answer) => answer,
        JoinOutcome::Wait(rx) => match wait_answer(rx, &mut request.shutdown).await {
            Some(answer) => answer,
            None => JoinResponse {
                error: Some(GroupError::CoordinatorNotAvailable),
                generation_id: -1,
                member_id,
                ..JoinResponse::default()
            },
        },
    };
    request.broker.flush_group_records();
    let mut response = JoinGroupResponse::default();
    response.error_code = group_error_code(answer.error);
    response.generation_id = answer.generation_id;
    if version >= 7 {
        response.protocol_type = answer.protocol_type.map(StrBytes::from_string);
        response.protocol_name = answer.protocol_name.map(StrBytes::from_string);
    } else {
        // Not nullable before v7.
        response.protocol_name = Some(StrBytes::from_string(
            answer.protocol_name.unwrap_or_default(),
        ));
    }
    response.leader = StrBytes::from_string(answer.leader);
    response.member_id = StrBytes::from_string(answer.member_id);
    if version >= 9 {
        response.skip_assignment = answer.skip_assignment;
    }
    response.members = answer
        .members
        .into_iter()
        .map(|m| {
            let mut out = JoinGroupResponseMember::default();
            out.member_id = StrBytes::from_string(m.member_id);
            if version >= 5 {
                out.group_instance_id = m.group_instance_id.map(StrBytes::from_string);
            }
            out.metadata = m.metadata;
            out
        })
        .collect();
    request.respond(&response)
}
