//! DescribeGroups: state, protocol and members (with their assignments
//! while the group is stable) of each group asked for.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{authorized_ops, HandlerResult, Request};
use crate::broker::groups::group_error_code;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 6;

/// READ, DELETE, DESCRIBE: the ACL operations that apply to a group.
pub(super) const GROUP_OPS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(request: Request) -> HandlerResult {
    let body: DescribeGroupsRequest = request.decode()?;
    let version = request.api_version;
    let ops = if body.include_authorized_operations {
        GROUP_OPS
    } else {
        authorized_ops::OMITTED
    };
    let mut response = DescribeGroupsResponse::default();
    response.groups = body
        .groups
        .into_iter()
        .map(|group_id| {
            let mut g = DescribedGroup::default();
            if version >= 3 {
                g.authorized_operations = request.authorized_ops(
                    crate::security::authz::Resource::Group,
                    &group_id.0,
                    ops,
                );
            }
            // With the authorizer on: DESCRIBE on the group.
            if let Some(e) = request.group_denied(crate::security::authz::Op::Describe, &group_id.0)
            {
                g.error_code = e.code();
                g.group_id = group_id;
                return g;
            }
            match request.broker.groups.describe(&group_id.0) {
                Err(e) => g.error_code = group_error_code(Some(e)),
                Ok(None) => {
                    g.group_state = StrBytes::from_static_str("Dead");
                    if version >= 6 {
                        let e = ResponseError::GroupIdNotFound;
                        g.error_code = e.code();
                        g.error_message = Some(StrBytes::from_string(format!(
                            "group {} not found",
                            &*group_id.0
                        )));
                    }
                }
                Ok(Some(summary)) => {
                    g.group_state = StrBytes::from_static_str(summary.state.name());
                    g.protocol_type = StrBytes::from_string(summary.protocol_type);
                    g.protocol_data = StrBytes::from_string(summary.protocol);
                    g.members = summary
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut out = DescribedGroupMember::default();
                            out.member_id = StrBytes::from_string(m.member_id);
                            if version >= 4 {
                                out.group_instance_id =
                                    m.group_instance_id.map(StrBytes::from_string);
                            }
                            out.client_id = StrBytes::from_string(m.client_id);
                            out.client_host = StrBytes::from_string(m.client_host);
                            out.member_metadata = m.metadata;
                            out.member_assignment = m.assignment;
                            out
                        })
                        .collect();
                }
            }
            g.group_id = group_id;
            g
        })
        .collect();
    request.respond(&response)
}
