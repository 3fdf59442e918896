//! CreateAcls and DeleteAcls on the active controller: decided by
//! `wharf_coordinator::acl::decide` on the controller's image, proposed as
//! one batch each.

use uuid::Uuid;
use wharf_coordinator::acl::decide;
use wharf_coordinator::acl::{AclBinding, AclFilter};
use wharf_coordinator::metadata::ControllerError;

use super::{Controller, MetadataLog};

/// Each filter's matched ACLs, with their ids.
pub type Deleted = Vec<Vec<(Uuid, AclBinding)>>;

impl<L: MetadataLog> Controller<L> {
    /// Stores the valid new `bindings`: one result per binding, in order.
    pub async fn create_acls(
        &self,
        bindings: &[AclBinding],
    ) -> Result<Vec<Result<(), ControllerError>>, ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let (results, records) = decide::create_acls(image.acls(), bindings, Uuid::new_v4);
        self.commit(&mut state, records).await?;
        Ok(results)
    }

    /// Removes every ACL a filter matches: each filter's matches, in order.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Deleted, ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let (matched, records) = decide::delete_acls(image.acls(), filters);
        self.commit(&mut state, records).await?;
        Ok(matched)
    }
}
