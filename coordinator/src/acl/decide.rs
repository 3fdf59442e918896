//! The controller's ACL decisions (Kafka's `AclControlManager`): the
//! records that create and delete ACLs, as pure functions of the ACLs the
//! image holds.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::authorizer::AclSet;
use super::{AclBinding, AclFilter};
use crate::metadata::records::{
    AccessControlEntryRecord, MetadataRecord, RemoveAccessControlEntryRecord,
};
use crate::metadata::ControllerError;

/// Decides CreateAcls: one result per binding, in order, and the records
/// for the new ones. An invalid binding is INVALID_REQUEST; a binding equal
/// to a stored one (or to an earlier one of the same request) succeeds
/// without a record, as in Kafka. `new_id` gives random ids; one already
/// used is drawn again.
pub fn create_acls(
    acls: &AclSet,
    bindings: &[AclBinding],
    mut new_id: impl FnMut() -> Uuid,
) -> (Vec<Result<(), ControllerError>>, Vec<MetadataRecord>) {
    let mut results = Vec::with_capacity(bindings.len());
    let mut records = Vec::new();
    let mut added: Vec<&AclBinding> = Vec::new();
    let mut ids: BTreeSet<Uuid> = BTreeSet::new();
    for binding in bindings {
        if let Some(reason) = binding.invalid_reason() {
            results.push(Err(ControllerError::new(
                ResponseError::InvalidRequest,
                reason,
            )));
            continue;
        }
        results.push(Ok(()));
        if acls.find(binding).is_some() || added.contains(&binding) {
            continue;
        }
        let id = loop {
            let id = new_id();
            if !id.is_nil() && acls.get(&id).is_none() && ids.insert(id) {
                break id;
            }
        };
        added.push(binding);
        records.push(MetadataRecord::AccessControlEntry(
            AccessControlEntryRecord {
                id,
                acl: binding.clone(),
            },
        ));
    }
    (results, records)
}

/// Decides DeleteAcls: for each filter, the ACLs it matches (with their
/// ids), and one removal record per matched ACL (once, however many filters
/// match it).
pub fn delete_acls(
    acls: &AclSet,
    filters: &[AclFilter],
) -> (Vec<Vec<(Uuid, AclBinding)>>, Vec<MetadataRecord>) {
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    let mut records = Vec::new();
    let matched = filters
        .iter()
        .map(|filter| {
            acls.iter()
                .filter(|(_, acl)| filter.matches(acl))
                .map(|(id, acl)| {
                    if removed.insert(*id) {
                        records.push(MetadataRecord::RemoveAccessControlEntry(
                            RemoveAccessControlEntryRecord { id: *id },
                        ));
                    }
                    (*id, acl.clone())
                })
                .collect()
        })
        .collect();
    (matched, records)
}
