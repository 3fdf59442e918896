//! ACL changes through the controller: CreateAcls and DeleteAcls go to
//! the active controller as the client sent them; the answer waits until
//! this broker's image shows the change, so that a DescribeAcls right after
//! sees it.

use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
};
use wharf_coordinator::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};

use super::creation::controller_error;
use super::{Broker, BrokerError};
use crate::cluster::node::admin::binding_of;

impl Broker {
    /// CreateAcls via the controller.
    pub async fn create_acls(
        &self,
        request: CreateAclsRequest,
    ) -> Result<CreateAclsResponse, BrokerError> {
        let node = self.node().await?;
        let wanted: Vec<AclBinding> = request.creations.iter().map(binding_of).collect();
        let response = node.create_acls(request).await.map_err(controller_error)?;
        let stored: Vec<&AclBinding> = wanted
            .iter()
            .zip(&response.results)
            .filter(|(_, r)| r.error_code == 0)
            .map(|(b, _)| b)
            .collect();
        self.wait_applied(|image| stored.iter().all(|b| image.acls().find(b).is_some()))
            .await;
        Ok(response)
    }

    /// DeleteAcls via the controller.
    pub async fn delete_acls(
        &self,
        request: DeleteAclsRequest,
    ) -> Result<DeleteAclsResponse, BrokerError> {
        let node = self.node().await?;
        let response = node.delete_acls(request).await.map_err(controller_error)?;
        let gone: Vec<AclBinding> = response
            .filter_results
            .iter()
            .flat_map(|f| &f.matching_acls)
            .map(|m| AclBinding {
                resource_type: ResourceType::from_code(m.resource_type)
                    .unwrap_or(ResourceType::Unknown),
                resource_name: m.resource_name.to_string(),
                pattern_type: PatternType::from_code(m.pattern_type)
                    .unwrap_or(PatternType::Unknown),
                principal: m.principal.to_string(),
                host: m.host.to_string(),
                operation: Operation::from_code(m.operation).unwrap_or(Operation::Unknown),
                permission: Permission::from_code(m.permission_type).unwrap_or(Permission::Unknown),
            })
            .collect();
        self.wait_applied(|image| gone.iter().all(|b| image.acls().find(b).is_none()))
            .await;
        Ok(response)
    }
}
