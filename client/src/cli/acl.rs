//! `wharf acl add|list|remove`: ACLs in the style of the other `wharf`
//! subcommands (a table or JSON), on the same client calls as
//! `kafka-acls.sh`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{print, print_json, Table};
use super::{ConnectArgs, OutputFormat};
use crate::acls::{
    code_of, name_of, Acl, AclQuery, OPERATIONS, PATTERN_TYPES, PERMISSIONS, RESOURCE_TYPES,
};
use crate::ClientError;

#[derive(Debug, Args)]
pub struct AclArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: AclCommand,
}

/// The resource an ACL is on: one of --topic, --group, --cluster,
/// --transactional-id.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct AclResource {
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub cluster: bool,
    #[arg(long = "transactional-id")]
    pub transactional_id: Option<String>,
}

impl AclResource {
    /// (resource type, name), or `None` when no resource was named.
    fn get(&self) -> Option<(i8, String)> {
        let named = |kind: &str, name: &Option<String>| {
            name.as_ref()
                .map(|n| (code_of(&RESOURCE_TYPES, kind).unwrap_or(0), n.clone()))
        };
        named("topic", &self.topic)
            .or_else(|| named("group", &self.group))
            .or_else(|| named("transactional_id", &self.transactional_id))
            .or_else(|| {
                self.cluster.then(|| {
                    (
                        code_of(&RESOURCE_TYPES, "cluster").unwrap_or(0),
                        "kafka-cluster".to_string(),
                    )
                })
            })
    }
}

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Allow (or with --deny, deny) a principal an operation on a resource.
    Add {
        #[command(flatten)]
        resource: AclResource,
        /// The principal, e.g. User:alice (User:* for everyone).
        #[arg(long)]
        principal: String,
        /// The operation: read, write, create, delete, alter, describe,
        /// cluster-action, describe-configs, alter-configs,
        /// idempotent-write, all.
        #[arg(long)]
        operation: String,
        /// The client host it applies to (default: any).
        #[arg(long, default_value = "*")]
        host: String,
        /// Deny instead of allow.
        #[arg(long)]
        deny: bool,
        /// The name is a prefix (PREFIXED) rather than a name (LITERAL).
        #[arg(long)]
        prefixed: bool,
    },
    /// List ACLs: all, or those on a resource or of a principal.
    List {
        #[command(flatten)]
        resource: AclResource,
        #[arg(long)]
        principal: Option<String>,
    },
    /// Remove the ACLs on a resource (of one principal, with --principal).
    Remove {
        #[command(flatten)]
        resource: AclResource,
        #[arg(long)]
        principal: Option<String>,
    },
}

fn query(resource: &AclResource, principal: &Option<String>) -> AclQuery {
    let mut q = AclQuery::any();
    if let Some((kind, name)) = resource.get() {
        q.resource_type = kind;
        q.resource_name = Some(name);
    }
    q.principal = principal.clone();
    q
}

fn show(output: OutputFormat, acls: &[Acl]) -> Result<(), ClientError> {
    match output {
        OutputFormat::Table => {
            let mut table = Table::new(&[
                "RESOURCE-TYPE",
                "NAME",
                "PATTERN",
                "PRINCIPAL",
                "HOST",
                "OPERATION",
                "PERMISSION",
            ]);
            for a in acls {
                table.row(vec![
                    name_of(&RESOURCE_TYPES, a.resource_type).to_string(),
                    a.resource_name.clone(),
                    name_of(&PATTERN_TYPES, a.pattern_type).to_string(),
                    a.principal.clone(),
                    a.host.clone(),
                    name_of(&OPERATIONS, a.operation).to_string(),
                    name_of(&PERMISSIONS, a.permission).to_string(),
                ]);
            }
            print(&table.render())
        }
        OutputFormat::Json => {
            let list: Vec<_> = acls
                .iter()
                .map(|a| {
                    json!({
                        "resource_type": name_of(&RESOURCE_TYPES, a.resource_type),
                        "name": a.resource_name,
                        "pattern_type": name_of(&PATTERN_TYPES, a.pattern_type),
                        "principal": a.principal,
                        "host": a.host,
                        "operation": name_of(&OPERATIONS, a.operation),
                        "permission": name_of(&PERMISSIONS, a.permission),
                    })
                })
                .collect();
            print_json(&json!(list))
        }
    }
}

pub async fn run(args: AclArgs) -> Result<ExitCode, ClientError> {
    let output = args.connect.output;
    let invalid = |m: String| ClientError::Invalid(m);
    match args.command {
        AclCommand::Add {
            resource,
            principal,
            operation,
            host,
            deny,
            prefixed,
        } => {
            let (kind, name) = resource.get().ok_or_else(|| {
                invalid("acl add needs --topic, --group, --cluster or --transactional-id".into())
            })?;
            let op = code_of(&OPERATIONS, &operation)
                .filter(|c| *c >= 2)
                .ok_or_else(|| invalid(format!("{operation} is not an ACL operation")))?;
            let acl = Acl {
                resource_type: kind,
                resource_name: name,
                pattern_type: code_of(
                    &PATTERN_TYPES,
                    if prefixed { "prefixed" } else { "literal" },
                )
                .unwrap_or(3),
                principal,
                host,
                operation: op,
                permission: code_of(&PERMISSIONS, if deny { "deny" } else { "allow" }).unwrap_or(3),
            };
            let mut client = args.connect.connect().await?;
            client.create_acls(std::slice::from_ref(&acl)).await?;
            show(output, &[acl])?;
        }
        AclCommand::List {
            resource,
            principal,
        } => {
            let mut client = args.connect.connect().await?;
            let acls = client.describe_acls(&query(&resource, &principal)).await?;
            show(output, &acls)?;
        }
        AclCommand::Remove {
            resource,
            principal,
        } => {
            if resource.get().is_none() && principal.is_none() {
                return Err(invalid(
                    "acl remove needs a resource or --principal (it never removes every ACL)"
                        .into(),
                ));
            }
            let mut client = args.connect.connect().await?;
            let removed = client.delete_acls(&[query(&resource, &principal)]).await?;
            show(output, &removed)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
