//! ListGroups: every group, optionally filtered by state (v4+) and type
//! (v5+: "classic", or "consumer" for groups of the KIP-848 protocol).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{HandlerResult, Request};
use crate::broker::groups::group_error_code;
use crate::security::authz::{Op, Resource};
use wharf_coordinator::acl::CLUSTER_NAME;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

const CLASSIC: &str = "classic";
const CONSUMER: &str = "consumer";

pub async fn handle(request: Request) -> HandlerResult {
    let body: ListGroupsRequest = request.decode()?;
    let version = request.api_version;
    let states: Vec<String> = body.states_filter.iter().map(|s| s.to_string()).collect();
    let wants = |kind: &str| {
        body.types_filter.is_empty()
            || body
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(kind))
    };
    let consumer_groups = request.broker.groups.consumer_group_states();
    let mut response = ListGroupsResponse::default();
    match request.broker.groups.list_groups(&[]) {
        Err(e) => response.error_code = group_error_code(Some(e)),
        Ok(groups) => {
            // With the authorizer on: all groups with DESCRIBE on the
            // cluster, else those the principal may DESCRIBE.
            let all = request.authorized_quietly(Op::Describe, Resource::Cluster, CLUSTER_NAME);
            response.groups = groups
                .into_iter()
                .filter(|(id, _, _)| {
                    all || request.authorized_quietly(Op::Describe, Resource::Group, id)
                })
                .filter_map(|(id, protocol_type, state)| {
                    let (kind, state, protocol_type) = match consumer_groups.get(&id) {
                        Some(state) => (
                            CONSUMER,
                            *state,
                            wharf_coordinator::CONSUMER_PROTOCOL_TYPE.to_string(),
                        ),
                        None => (CLASSIC, state.name(), protocol_type),
                    };
                    let state_ok =
                        states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(state));
                    if !wants(kind) || !state_ok {
                        return None;
                    }
                    let mut g = ListedGroup::default();
                    g.group_id = GroupId(StrBytes::from_string(id));
                    g.protocol_type = StrBytes::from_string(protocol_type);
                    if version >= 4 {
                        g.group_state = StrBytes::from_static_str(state);
                    }
                    if version >= 5 {
                        g.group_type = StrBytes::from_static_str(kind);
                    }
                    Some(g)
                })
                .collect();
        }
    }
    request.respond(&response)
}
