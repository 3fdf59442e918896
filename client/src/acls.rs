//! ACL administration: CreateAcls, DescribeAcls and DeleteAcls, for
//! `kafka-acls.sh` and `wharf acl`. Codes and names are Kafka's
//! (`ResourceType`, `PatternType`, `AclOperation`, `AclPermissionType`).

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use crate::{ClientError, ClusterClient};

/// Kafka's names by code, as `kafka-acls.sh` prints them.
pub const RESOURCE_TYPES: [&str; 8] = [
    "UNKNOWN",
    "ANY",
    "TOPIC",
    "GROUP",
    "CLUSTER",
    "TRANSACTIONAL_ID",
    "DELEGATION_TOKEN",
    "USER",
];
pub const PATTERN_TYPES: [&str; 5] = ["UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"];
pub const OPERATIONS: [&str; 15] = [
    "UNKNOWN",
    "ANY",
    "ALL",
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
    "CREATE_TOKENS",
    "DESCRIBE_TOKENS",
];
pub const PERMISSIONS: [&str; 4] = ["UNKNOWN", "ANY", "DENY", "ALLOW"];

/// The code of `name` in `table`, in any case, ignoring `-` and `_`
/// (`Read`, `idempotent-write`, `TransactionalId`).
pub fn code_of(table: &[&str], name: &str) -> Option<i8> {
    let plain = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let wanted = plain(name);
    table
        .iter()
        .position(|n| plain(n) == wanted)
        .and_then(|i| i8::try_from(i).ok())
}

/// The name of `code` in `table` (UNKNOWN for an undefined code).
pub fn name_of(table: &[&'static str], code: i8) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| table.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// One ACL, by Kafka's codes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

impl Acl {
    /// Kafka's text of the resource pattern:
    /// `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`.
    pub fn pattern_text(&self) -> String {
        format!(
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            name_of(&RESOURCE_TYPES, self.resource_type),
            self.resource_name,
            name_of(&PATTERN_TYPES, self.pattern_type)
        )
    }

    /// Kafka's text of the entry:
    /// `(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)`.
    pub fn entry_text(&self) -> String {
        format!(
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal,
            self.host,
            name_of(&OPERATIONS, self.operation),
            name_of(&PERMISSIONS, self.permission)
        )
    }
}

/// A filter over ACLs (`None` and ANY codes match anything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclQuery {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclQuery {
    /// Every ACL.
    pub fn any() -> Self {
        AclQuery {
            resource_type: 1,
            resource_name: None,
            pattern_type: 1,
            principal: None,
            host: None,
            operation: 1,
            permission: 1,
        }
    }

    /// Exactly `acl`.
    pub fn exact(acl: &Acl) -> Self {
        AclQuery {
            resource_type: acl.resource_type,
            resource_name: Some(acl.resource_name.clone()),
            pattern_type: acl.pattern_type,
            principal: Some(acl.principal.clone()),
            host: Some(acl.host.clone()),
            operation: acl.operation,
            permission: acl.permission,
        }
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn opt(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(text)
}

impl ClusterClient {
    /// CreateAcls of `acls`; the first refused one is the error.
    pub async fn create_acls(&mut self, acls: &[Acl]) -> Result<(), ClientError> {
        let mut request = CreateAclsRequest::default();
        request.creations = acls
            .iter()
            .map(|a| {
                let mut c = AclCreation::default();
                c.resource_type = a.resource_type;
                c.resource_name = text(&a.resource_name);
                c.resource_pattern_type = a.pattern_type;
                c.principal = text(&a.principal);
                c.host = text(&a.host);
                c.operation = a.operation;
                c.permission_type = a.permission;
                c
            })
            .collect();
        let response = self.call_any(&request).await?;
        for (result, acl) in response.results.iter().zip(acls) {
            ClientError::check(result.error_code, result.error_message.as_deref(), || {
                format!(
                    "could not create the ACL {} on {}",
                    acl.entry_text(),
                    acl.pattern_text()
                )
            })?;
        }
        Ok(())
    }

    /// DescribeAcls: the ACLs `query` matches, sorted.
    pub async fn describe_acls(&mut self, query: &AclQuery) -> Result<Vec<Acl>, ClientError> {
        let mut request = DescribeAclsRequest::default();
        request.resource_type_filter = query.resource_type;
        request.resource_name_filter = opt(&query.resource_name);
        request.pattern_type_filter = query.pattern_type;
        request.principal_filter = opt(&query.principal);
        request.host_filter = opt(&query.host);
        request.operation = query.operation;
        request.permission_type = query.permission;
        let response = self.call_any(&request).await?;
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            || "could not describe ACLs".to_string(),
        )?;
        let mut out: Vec<Acl> = response
            .resources
            .iter()
            .flat_map(|r| {
                r.acls.iter().map(|a| Acl {
                    resource_type: r.resource_type,
                    resource_name: r.resource_name.to_string(),
                    pattern_type: r.pattern_type,
                    principal: a.principal.to_string(),
                    host: a.host.to_string(),
                    operation: a.operation,
                    permission: a.permission_type,
                })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// DeleteAcls: removes what each query matches; the ACLs removed.
    pub async fn delete_acls(&mut self, queries: &[AclQuery]) -> Result<Vec<Acl>, ClientError> {
        let mut request = DeleteAclsRequest::default();
        request.filters = queries
            .iter()
            .map(|q| {
                let mut f = DeleteAclsFilter::default();
                f.resource_type_filter = q.resource_type;
                f.resource_name_filter = opt(&q.resource_name);
                f.pattern_type_filter = q.pattern_type;
                f.principal_filter = opt(&q.principal);
                f.host_filter = opt(&q.host);
                f.operation = q.operation;
                f.permission_type = q.permission;
                f
            })
            .collect();
        let response = self.call_any(&request).await?;
        let mut out = Vec::new();
        for result in &response.filter_results {
            ClientError::check(result.error_code, result.error_message.as_deref(), || {
                "could not delete ACLs".to_string()
            })?;
            out.extend(result.matching_acls.iter().map(|m| Acl {
                resource_type: m.resource_type,
                resource_name: m.resource_name.to_string(),
                pattern_type: m.pattern_type,
                principal: m.principal.to_string(),
                host: m.host.to_string(),
                operation: m.operation,
                permission: m.permission_type,
            }));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}
