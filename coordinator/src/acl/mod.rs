//! Kafka's ACLs: the bindings stored in the cluster metadata
//! (AccessControlEntryRecord), the filters CreateAcls, DescribeAcls and
//! DeleteAcls use, and the authorizer that decides a request with them
//! (Kafka's `StandardAuthorizer`). Pure logic over the metadata image: no
//! sockets, no clock.
//!
//! The numeric codes are Kafka's (`ResourceType`, `PatternType`,
//! `AclOperation`, `AclPermissionType`), as they travel on the wire and in
//! the metadata log.

pub mod authorizer;
pub mod decide;
pub mod filter;

pub use authorizer::{Authorizer, Decision};
pub use filter::AclFilter;

/// The name a wildcard ACL uses for its resource name, principal (`User:*`)
/// or host.
pub const WILDCARD: &str = "*";
/// The one name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The principal any user matches.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! codes {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:expr, $text:expr;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// Kafka's code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// The variant with Kafka's code `code`, if there is one.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Kafka's name, as `kafka-acls.sh` prints it (`Topic`,
            /// `Literal`, `Read`, `Allow`).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The variant named `text` in any case, ignoring `_` and `-`
            /// (`transactional-id`, `TRANSACTIONAL_ID`, `TransactionalId`).
            pub fn parse(text: &str) -> Option<Self> {
                let wanted: String = text
                    .chars()
                    .filter(|c| *c != '_' && *c != '-')
                    .collect::<String>()
                    .to_ascii_lowercase();
                [$($name::$variant),*]
                    .into_iter()
                    .find(|v| v.name().to_ascii_lowercase() == wanted)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

codes! {
    /// Kafka's `ResourceType`.
    ResourceType {
        Unknown = 0, "Unknown";
        Any = 1, "Any";
        Topic = 2, "Topic";
        Group = 3, "Group";
        Cluster = 4, "Cluster";
        TransactionalId = 5, "TransactionalId";
        DelegationToken = 6, "DelegationToken";
        User = 7, "User";
    }
}

codes! {
    /// Kafka's `PatternType`: how an ACL's resource name matches.
    PatternType {
        Unknown = 0, "Unknown";
        Any = 1, "Any";
        Match = 2, "Match";
        Literal = 3, "Literal";
        Prefixed = 4, "Prefixed";
    }
}

codes! {
    /// Kafka's `AclOperation`.
    Operation {
        Unknown = 0, "Unknown";
        Any = 1, "Any";
        All = 2, "All";
        Read = 3, "Read";
        Write = 4, "Write";
        Create = 5, "Create";
        Delete = 6, "Delete";
        Alter = 7, "Alter";
        Describe = 8, "Describe";
        ClusterAction = 9, "ClusterAction";
        DescribeConfigs = 10, "DescribeConfigs";
        AlterConfigs = 11, "AlterConfigs";
        IdempotentWrite = 12, "IdempotentWrite";
        CreateTokens = 13, "CreateTokens";
        DescribeTokens = 14, "DescribeTokens";
    }
}

codes! {
    /// Kafka's `AclPermissionType`.
    Permission {
        Unknown = 0, "Unknown";
        Any = 1, "Any";
        Deny = 2, "Deny";
        Allow = 3, "Allow";
    }
}

/// One ACL: who (principal, host) may or may not (permission) do what
/// (operation) on which resources (type, name, pattern).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Why Kafka's controller would refuse to store this ACL
    /// (`AclControlManager.validateNewAcl` and the broker's checks before
    /// it), as an INVALID_REQUEST message; `None` when it is valid.
    pub fn invalid_reason(&self) -> Option<String> {
        match self.resource_type {
            ResourceType::Unknown | ResourceType::Any => {
                return Some(format!(
                    "Invalid resourceType {}",
                    self.resource_type.name()
                ))
            }
            _ => {}
        }
        match self.pattern_type {
            PatternType::Literal | PatternType::Prefixed => {}
            other => return Some(format!("Invalid patternType {}", other.name())),
        }
        match self.operation {
            Operation::Unknown | Operation::Any => {
                return Some(format!("Invalid operation {}", self.operation.name()))
            }
            _ => {}
        }
        match self.permission {
            Permission::Allow | Permission::Deny => {}
            other => return Some(format!("Invalid permissionType {}", other.name())),
        }
        if self.resource_name.is_empty() {
            return Some("Resource name should not be empty".to_string());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Some(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        if !is_principal(&self.principal) {
            return Some(format!(
                "Could not parse principal from `{}` (no colon is found separating the principal type from the principal name)",
                self.principal
            ));
        }
        if self.host.is_empty() {
            return Some("Host should not be empty".to_string());
        }
        None
    }
}

/// A principal as Kafka parses it: `Type:Name`, both parts non-empty.
pub fn is_principal(text: &str) -> bool {
    text.split_once(':')
        .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
