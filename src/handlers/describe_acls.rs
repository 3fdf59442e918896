//! DescribeAcls: the ACLs a filter matches, from this broker's metadata
//! image, grouped by resource pattern. Needs DESCRIBE on the cluster (else
//! CLUSTER_AUTHORIZATION_FAILED); a filter with UNKNOWN codes is
//! INVALID_REQUEST.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_coordinator::acl::AclFilter;

use super::{HandlerResult, Request};
use crate::security::authz::Op;

/// Kafka 4 serves v2-v3 (v0-v1 were removed by KIP-896).
pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 3;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DescribeAclsRequest = request.decode()?;
    let mut response = DescribeAclsResponse::default();
    if !request.authorized_on_cluster(Op::Describe) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        response.error_message = Some(StrBytes::from_static_str("Cluster authorization failed."));
        return request.respond(&response);
    }
    let filter = AclFilter::from_wire(
        body.resource_type_filter,
        body.resource_name_filter.as_ref().map(ToString::to_string),
        body.pattern_type_filter,
        body.principal_filter.as_ref().map(ToString::to_string),
        body.host_filter.as_ref().map(ToString::to_string),
        body.operation,
        body.permission_type,
    );
    let filter = match filter {
        Ok(filter) => filter,
        Err(message) => {
            response.error_code = ResponseError::InvalidRequest.code();
            response.error_message = Some(StrBytes::from_string(message));
            return request.respond(&response);
        }
    };
    let image = request.broker.image();
    let mut grouped: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for (_, acl) in image.acls().iter().filter(|(_, a)| filter.matches(a)) {
        let mut d = AclDescription::default();
        d.principal = StrBytes::from_string(acl.principal.clone());
        d.host = StrBytes::from_string(acl.host.clone());
        d.operation = acl.operation.code();
        d.permission_type = acl.permission.code();
        let key = (
            acl.resource_type.code(),
            acl.resource_name.as_str(),
            acl.pattern_type.code(),
        );
        grouped.entry(key).or_default().push(d);
    }
    response.resources = grouped
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            let mut r = DescribeAclsResource::default();
            r.resource_type = resource_type;
            r.resource_name = StrBytes::from_string(name.to_owned());
            r.pattern_type = pattern_type;
            r.acls = acls;
            r
        })
        .collect();
    request.respond(&response)
}
