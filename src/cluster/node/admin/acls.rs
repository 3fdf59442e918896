//! CreateAcls and DeleteAcls via the active controller: the client's
//! request travels as it came (after this broker authorized it) and is
//! retried across a controller change; the `serve_*` functions run on the
//! controller. DescribeAcls needs no controller: every broker answers it
//! from its own image.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_coordinator::acl::ResourceType;
use wharf_coordinator::acl::{AclBinding, AclFilter, Operation, PatternType, Permission};
use wharf_coordinator::metadata::ControllerError;

use super::wire_error;
use super::{ClusterNode, Controller, Quorum, CONTROLLER_CALL_TIMEOUT};

/// The ACL a CreateAcls entry asks for (undefined codes become UNKNOWN,
/// which the controller refuses).
pub fn binding_of(c: &AclCreation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::from_code(c.resource_type).unwrap_or(ResourceType::Unknown),
        resource_name: c.resource_name.to_string(),
        pattern_type: PatternType::from_code(c.resource_pattern_type)
            .unwrap_or(PatternType::Unknown),
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation).unwrap_or(Operation::Unknown),
        permission: Permission::from_code(c.permission_type).unwrap_or(Permission::Unknown),
    }
}

/// The filter of a DeleteAcls entry, or INVALID_REQUEST's message.
pub fn filter_of(f: &DeleteAclsFilter) -> Result<AclFilter, String> {
    AclFilter::from_wire(
        f.resource_type_filter,
        f.resource_name_filter.as_ref().map(ToString::to_string),
        f.pattern_type_filter,
        f.principal_filter.as_ref().map(ToString::to_string),
        f.host_filter.as_ref().map(ToString::to_string),
        f.operation,
        f.permission_type,
    )
}

/// NOT_CONTROLLER if any result carries it (the whole request is then
/// tried again), else no error.
fn not_controller(codes: impl Iterator<Item = i16>) -> (i16, Option<&'static StrBytes>) {
    let nc = ResponseError::NotController.code();
    (
        if codes.into_iter().any(|c| c == nc) {
            nc
        } else {
            0
        },
        None,
    )
}

impl ClusterNode {
    /// CreateAcls via the active controller.
    pub async fn create_acls(
        &self,
        request: CreateAclsRequest,
    ) -> Result<CreateAclsResponse, ControllerError> {
        self.forward_until(
            request,
            CONTROLLER_CALL_TIMEOUT,
            |c, r, v| async move { serve_create_acls(&c, &r, v).await },
            |r| not_controller(r.results.iter().map(|x| x.error_code)),
        )
        .await
    }

    /// DeleteAcls via the active controller.
    pub async fn delete_acls(
        &self,
        request: DeleteAclsRequest,
    ) -> Result<DeleteAclsResponse, ControllerError> {
        self.forward_until(
            request,
            CONTROLLER_CALL_TIMEOUT,
            |c, r, v| async move { serve_delete_acls(&c, &r, v).await },
            |r| not_controller(r.filter_results.iter().map(|x| x.error_code)),
        )
        .await
    }
}

/// CreateAcls on the controller.
pub(in crate::cluster::node) async fn serve_create_acls(
    controller: &Controller<Quorum>,
    request: &CreateAclsRequest,
    _version: i16,
) -> CreateAclsResponse {
    let bindings: Vec<AclBinding> = request.creations.iter().map(binding_of).collect();
    let results = match controller.create_acls(&bindings).await {
        Ok(results) => results,
        Err(e) => bindings.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut response = CreateAclsResponse::default();
    response.results = results
        .into_iter()
        .map(|r| {
            let mut out = AclCreationResult::default();
            if let Err(e) = r {
                (out.error_code, out.error_message) = wire_error(&e);
            }
            out
        })
        .collect();
    response
}

/// DeleteAcls on the controller: invalid filters are answered
/// INVALID_REQUEST, the others decided together.
pub(in crate::cluster::node) async fn serve_delete_acls(
    controller: &Controller<Quorum>,
    request: &DeleteAclsRequest,
    _version: i16,
) -> DeleteAclsResponse {
    let parsed: Vec<Result<AclFilter, String>> = request.filters.iter().map(filter_of).collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|f| f.clone().ok()).collect();
    let mut matched = match controller.delete_acls(&valid).await {
        Ok(matched) => Ok(matched.into_iter()),
        Err(e) => Err(e),
    };
    let mut response = DeleteAclsResponse::default();
    for filter in &parsed {
        let mut out = DeleteAclsFilterResult::default();
        match (filter, &mut matched) {
            (Err(message), _) => {
                out.error_code = ResponseError::InvalidRequest.code();
                out.error_message = Some(StrBytes::from_string(message.clone()));
            }
            (Ok(_), Err(e)) => (out.error_code, out.error_message) = wire_error(e),
            (Ok(_), Ok(matches)) => {
                out.matching_acls = matches
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, acl)| matching(&acl))
                    .collect();
            }
        }
        response.filter_results.push(out);
    }
    response
}

fn matching(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    let mut m = DeleteAclsMatchingAcl::default();
    m.resource_type = acl.resource_type.code();
    m.resource_name = StrBytes::from_string(acl.resource_name.clone());
    m.pattern_type = acl.pattern_type.code();
    m.principal = StrBytes::from_string(acl.principal.clone());
    m.host = StrBytes::from_string(acl.host.clone());
    m.operation = acl.operation.code();
    m.permission_type = acl.permission.code();
    m
}
