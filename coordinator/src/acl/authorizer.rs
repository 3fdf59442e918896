//! The decision Kafka's `StandardAuthorizer` makes for one operation on one
//! resource, from the ACLs of the metadata image:
//!
//! 1. A super user (`super.users`) may do anything.
//! 2. The ACLs that apply to the resource are those of its type whose
//!    pattern covers its name: LITERAL with the same name, LITERAL `*`, and
//!    PREFIXED with a prefix of the name.
//! 3. None apply: allowed only with `allow.everyone.if.no.acl.found=true`.
//! 4. Among those whose principal (or `User:*`) and host (or `*`) match: a
//!    DENY for the operation (or ALL) refuses, whatever else there is.
//! 5. Else an ALLOW for the operation (or ALL) permits; an ALLOW for READ,
//!    WRITE, DELETE or ALTER also permits DESCRIBE, and one for
//!    ALTER_CONFIGS permits DESCRIBE_CONFIGS.
//! 6. Else refused.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use super::{AclBinding, Operation, PatternType, Permission, ResourceType};
use super::{WILDCARD, WILDCARD_PRINCIPAL};

/// The ACLs of the cluster, by id, as the metadata image holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclSet {
    by_id: BTreeMap<Uuid, AclBinding>,
}

impl AclSet {
    pub fn insert(&mut self, id: Uuid, acl: AclBinding) {
        self.by_id.insert(id, acl);
    }

    pub fn remove(&mut self, id: &Uuid) -> Option<AclBinding> {
        self.by_id.remove(id)
    }

    pub fn get(&self, id: &Uuid) -> Option<&AclBinding> {
        self.by_id.get(id)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every ACL with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &AclBinding)> {
        self.by_id.iter()
    }

    /// The id of an ACL equal to `acl`, if one is stored.
    pub fn find(&self, acl: &AclBinding) -> Option<Uuid> {
        self.by_id
            .iter()
            .find(|(_, stored)| *stored == acl)
            .map(|(id, _)| *id)
    }
}

/// What the authorizer decided, and why (for the log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The principal is in `super.users`.
    SuperUser,
    /// No ACL applies to the resource and
    /// `allow.everyone.if.no.acl.found=true`.
    NoAclAllowed,
    /// No ACL applies to the resource (deny by default).
    NoAclDenied,
    /// This ALLOW ACL matched.
    Allowed(AclBinding),
    /// This DENY ACL matched.
    Denied(AclBinding),
    /// ACLs apply to the resource but none allows this principal.
    NoMatchingAllow,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(
            self,
            Decision::SuperUser | Decision::NoAclAllowed | Decision::Allowed(_)
        )
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::SuperUser => f.write_str("super user"),
            Decision::NoAclAllowed => {
                f.write_str("no ACL on the resource and allow.everyone.if.no.acl.found=true")
            }
            Decision::NoAclDenied => f.write_str("no ACL on the resource"),
            Decision::Allowed(acl) | Decision::Denied(acl) => write!(
                f,
                "{} ACL (principal={}, host={}, operation={}) on {}:{}:{}",
                acl.permission,
                acl.principal,
                acl.host,
                acl.operation,
                acl.resource_type,
                acl.pattern_type,
                acl.resource_name
            ),
            Decision::NoMatchingAllow => f.write_str("no ALLOW ACL matches"),
        }
    }
}

/// The authorizer's settings: `super.users` and
/// `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorizer {
    super_users: HashSet<String>,
    allow_if_no_acl: bool,
}

impl Authorizer {
    /// `super_users` as Kafka's `super.users` lists them:
    /// `User:admin;User:bob` (blanks around entries are ignored).
    pub fn new(super_users: &str, allow_if_no_acl: bool) -> Self {
        Authorizer {
            super_users: super_users
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            allow_if_no_acl,
        }
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// The super users, sorted (for `--print-config` and logs).
    pub fn super_users(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.super_users.iter().map(String::as_str).collect();
        out.sort_unstable();
        out
    }

    pub fn allow_if_no_acl(&self) -> bool {
        self.allow_if_no_acl
    }

    /// May `principal`, connected from `host` (an IP address), do
    /// `operation` on the resource `resource_type`/`name`?
    pub fn authorize(
        &self,
        acls: &AclSet,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        if self.is_super_user(principal) {
            return Decision::SuperUser;
        }
        let mut applies = false;
        let mut allow = None;
        for acl in acls.by_id.values() {
            if acl.resource_type != resource_type || !pattern_covers(acl, name) {
                continue;
            }
            applies = true;
            if !(acl.principal == principal || acl.principal == WILDCARD_PRINCIPAL)
                || !(acl.host == host || acl.host == WILDCARD)
            {
                continue;
            }
            match acl.permission {
                Permission::Deny if denies(acl.operation, operation) => {
                    return Decision::Denied(acl.clone());
                }
                Permission::Allow if allow.is_none() && allows(acl.operation, operation) => {
                    allow = Some(acl);
                }
                _ => {}
            }
        }
        match allow {
            Some(acl) => Decision::Allowed(acl.clone()),
            None if !applies && self.allow_if_no_acl => Decision::NoAclAllowed,
            None if !applies => Decision::NoAclDenied,
            None => Decision::NoMatchingAllow,
        }
    }
}

impl Authorizer {
    /// Whether some resource of `resource_type` may see `operation` by
    /// `principal` (Kafka's `authorizeByResourceType`, simplified): a super
    /// user; else an ALLOW ACL for the operation (or ALL) on any name of
    /// that type, unless a DENY on the LITERAL `*` of the type refuses it;
    /// else, with no ACL of that type at all, `allow.everyone.if.no.acl.found`.
    pub fn authorize_any(
        &self,
        acls: &AclSet,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let mut any_of_type = false;
        let mut allowed = false;
        for acl in acls
            .by_id
            .values()
            .filter(|a| a.resource_type == resource_type)
        {
            any_of_type = true;
            let who = (acl.principal == principal || acl.principal == WILDCARD_PRINCIPAL)
                && (acl.host == host || acl.host == WILDCARD);
            if !who || !denies(acl.operation, operation) {
                continue;
            }
            match acl.permission {
                Permission::Deny
                    if acl.pattern_type == PatternType::Literal
                        && acl.resource_name == WILDCARD =>
                {
                    return false;
                }
                Permission::Allow => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_of_type && self.allow_if_no_acl)
    }
}

/// Whether the ACL's resource pattern covers the resource `name`.
fn pattern_covers(acl: &AclBinding, name: &str) -> bool {
    match acl.pattern_type {
        PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
        PatternType::Prefixed => name.starts_with(acl.resource_name.as_str()),
        _ => false,
    }
}

fn denies(acl_op: Operation, wanted: Operation) -> bool {
    acl_op == wanted || acl_op == Operation::All
}

fn allows(acl_op: Operation, wanted: Operation) -> bool {
    if acl_op == wanted || acl_op == Operation::All {
        return true;
    }
    match wanted {
        Operation::Describe => matches!(
            acl_op,
            Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
        ),
        Operation::DescribeConfigs => acl_op == Operation::AlterConfigs,
        _ => false,
    }
}
