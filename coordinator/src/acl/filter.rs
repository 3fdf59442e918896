//! ACL filters (Kafka's `AclBindingFilter`): what DescribeAcls lists and
//! DeleteAcls removes.

use super::{AclBinding, Operation, PatternType, Permission, ResourceType, WILDCARD};

/// A filter over ACLs. `None` names match any value; ANY codes match any
/// value; a MATCH pattern type matches the ACLs that would apply to a
/// resource of that name (its LITERAL name, LITERAL `*`, and PREFIXED
/// prefixes of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// The filter from its wire form; an undefined code is INVALID_REQUEST
    /// with this message, as Kafka's request parsing refuses it.
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<String>,
        pattern_type: i8,
        principal: Option<String>,
        host: Option<String>,
        operation: i8,
        permission: i8,
    ) -> Result<Self, String> {
        let filter = AclFilter {
            resource_type: ResourceType::from_code(resource_type).unwrap_or(ResourceType::Unknown),
            resource_name,
            pattern_type: PatternType::from_code(pattern_type).unwrap_or(PatternType::Unknown),
            principal,
            host,
            operation: Operation::from_code(operation).unwrap_or(Operation::Unknown),
            permission: Permission::from_code(permission).unwrap_or(Permission::Unknown),
        };
        if filter.pattern_type == PatternType::Unknown {
            return Err("Pattern type filter must not be UNKNOWN".to_string());
        }
        if filter.resource_type == ResourceType::Unknown
            || filter.operation == Operation::Unknown
            || filter.permission == Permission::Unknown
        {
            return Err("Filter contain UNKNOWN elements".to_string());
        }
        Ok(filter)
    }

    /// A filter matching exactly `acl`.
    pub fn exact(acl: &AclBinding) -> Self {
        AclFilter {
            resource_type: acl.resource_type,
            resource_name: Some(acl.resource_name.clone()),
            pattern_type: acl.pattern_type,
            principal: Some(acl.principal.clone()),
            host: Some(acl.host.clone()),
            operation: acl.operation,
            permission: acl.permission,
        }
    }

    /// A filter matching every ACL.
    pub fn any() -> Self {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.matches_resource(acl) && self.matches_entry(acl)
    }

    fn matches_resource(&self, acl: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        let any_pattern = matches!(self.pattern_type, PatternType::Any | PatternType::Match);
        if !any_pattern && self.pattern_type != acl.pattern_type {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type != PatternType::Match {
            return *name == acl.resource_name;
        }
        match acl.pattern_type {
            PatternType::Literal => *name == acl.resource_name || acl.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(acl.resource_name.as_str()),
            _ => false,
        }
    }

    fn matches_entry(&self, acl: &AclBinding) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == Operation::Any || self.operation == acl.operation)
            && (self.permission == Permission::Any || self.permission == acl.permission)
    }
}
