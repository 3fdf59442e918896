//! `kafka-acls.sh`: --add, --remove and --list of ACLs, with Kafka's flags
//! (principals, hosts, operations, resources, pattern types, the
//! --producer and --consumer shortcuts) and Kafka's output.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;

use clap::{ArgGroup, Parser};

use super::Bootstrap;
use crate::acls::{code_of, Acl, AclQuery, OPERATIONS, PATTERN_TYPES, RESOURCE_TYPES};
use crate::ClientError;

const ANY: i8 = 1;
const LITERAL: i8 = 3;
const ALLOW: i8 = 3;
const DENY: i8 = 2;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const TRANSACTIONAL_ID: i8 = 5;
const DELEGATION_TOKEN: i8 = 6;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-acls.sh",
    version,
    about = "Add, remove and list ACLs (Kafka's kafka-acls.sh flags)",
    group(ArgGroup::new("action").required(true).args(["add", "remove", "list"]))
)]
pub struct AclsArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    /// A client properties file; wharf's tools connect over PLAINTEXT, so
    /// only `security.protocol=PLAINTEXT` (or none) is accepted.
    #[arg(long = "command-config")]
    command_config: Option<std::path::PathBuf>,
    /// Add ACLs.
    #[arg(long)]
    add: bool,
    /// Remove ACLs.
    #[arg(long)]
    remove: bool,
    /// List ACLs.
    #[arg(long)]
    list: bool,
    /// Principals allowed (User:name, User:* for everyone).
    #[arg(long = "allow-principal")]
    allow_principal: Vec<String>,
    /// Principals denied.
    #[arg(long = "deny-principal")]
    deny_principal: Vec<String>,
    /// Hosts the allowed principals may connect from (default *).
    #[arg(long = "allow-host")]
    allow_host: Vec<String>,
    /// Hosts the denied principals are denied from (default *).
    #[arg(long = "deny-host")]
    deny_host: Vec<String>,
    /// With --list: only this principal's ACLs.
    #[arg(long)]
    principal: Vec<String>,
    /// Operations: Read, Write, Create, Delete, Alter, Describe,
    /// ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite,
    /// CreateTokens, DescribeTokens, All (the default).
    #[arg(long)]
    operation: Vec<String>,
    /// Topics (`*` for all).
    #[arg(long)]
    topic: Vec<String>,
    /// Consumer groups (`*` for all).
    #[arg(long)]
    group: Vec<String>,
    /// The cluster resource.
    #[arg(long)]
    cluster: bool,
    /// Transactional ids (`*` for all).
    #[arg(long = "transactional-id")]
    transactional_id: Vec<String>,
    /// Delegation tokens.
    #[arg(long = "delegation-token")]
    delegation_token: Vec<String>,
    /// literal or prefixed (with --add); also any or match (with --list
    /// and --remove).
    #[arg(long = "resource-pattern-type", default_value = "literal")]
    resource_pattern_type: String,
    /// Producer ACLs: WRITE, DESCRIBE and CREATE on the topics (WRITE and
    /// DESCRIBE on --transactional-id, IDEMPOTENT_WRITE with --idempotent).
    #[arg(long)]
    producer: bool,
    /// Consumer ACLs: READ and DESCRIBE on the topics, READ on the groups.
    #[arg(long)]
    consumer: bool,
    /// With --producer: IDEMPOTENT_WRITE on the cluster.
    #[arg(long)]
    idempotent: bool,
    /// Do not ask before removing.
    #[arg(long)]
    force: bool,
}

/// The resources the flags name, as (type, name).
fn resources(args: &AclsArgs) -> Vec<(i8, String)> {
    let mut out = Vec::new();
    out.extend(args.topic.iter().map(|t| (TOPIC, t.clone())));
    out.extend(args.group.iter().map(|g| (GROUP, g.clone())));
    out.extend(
        args.transactional_id
            .iter()
            .map(|t| (TRANSACTIONAL_ID, t.clone())),
    );
    out.extend(
        args.delegation_token
            .iter()
            .map(|t| (DELEGATION_TOKEN, t.clone())),
    );
    if args.cluster || (args.producer && args.idempotent) {
        out.push((CLUSTER, "kafka-cluster".to_string()));
    }
    out
}

fn invalid(message: impl Into<String>) -> ClientError {
    ClientError::Invalid(message.into())
}

fn pattern_type(args: &AclsArgs) -> Result<i8, ClientError> {
    code_of(&PATTERN_TYPES, &args.resource_pattern_type)
        .filter(|c| *c != 0)
        .ok_or_else(|| {
            invalid(format!(
                "--resource-pattern-type {}: use literal, prefixed, match or any",
                args.resource_pattern_type
            ))
        })
}

fn operations(args: &AclsArgs) -> Result<Vec<i8>, ClientError> {
    if args.operation.is_empty() {
        return Ok(vec![2]);
    }
    args.operation
        .iter()
        .map(|op| {
            code_of(&OPERATIONS, op)
                .filter(|c| *c >= 2)
                .ok_or_else(|| invalid(format!("--operation {op} is not an ACL operation")))
        })
        .collect()
}

/// The operations of --producer/--consumer for a resource type, or the
/// --operation list.
fn operations_for(args: &AclsArgs, kind: i8, explicit: &[i8]) -> Vec<i8> {
    let (read, write, create, describe, idempotent) = (3, 4, 5, 8, 12);
    let mut ops = Vec::new();
    if args.producer {
        match kind {
            TOPIC => ops.extend([write, describe, create]),
            TRANSACTIONAL_ID => ops.extend([write, describe]),
            CLUSTER => ops.push(idempotent),
            _ => {}
        }
    }
    if args.consumer {
        match kind {
            TOPIC => ops.extend([read, describe]),
            GROUP => ops.push(read),
            _ => {}
        }
    }
    if !args.producer && !args.consumer {
        ops.extend_from_slice(explicit);
    }
    ops.sort_unstable();
    ops.dedup();
    ops
}

/// The ACLs --add asks for, by resource.
fn wanted(args: &AclsArgs) -> Result<BTreeMap<(i8, String), Vec<Acl>>, ClientError> {
    let pattern = pattern_type(args)?;
    if pattern != LITERAL && pattern != 4 {
        return Err(invalid(
            "--add takes --resource-pattern-type literal or prefixed",
        ));
    }
    if args.allow_principal.is_empty() && args.deny_principal.is_empty() {
        return Err(invalid("--add needs --allow-principal or --deny-principal"));
    }
    let explicit = operations(args)?;
    let hosts = |given: &[String]| -> Vec<String> {
        if given.is_empty() {
            vec!["*".to_string()]
        } else {
            given.to_vec()
        }
    };
    let mut out = BTreeMap::new();
    for (kind, name) in resources(args) {
        let mut acls = Vec::new();
        for (principals, hosts, permission) in [
            (&args.allow_principal, hosts(&args.allow_host), ALLOW),
            (&args.deny_principal, hosts(&args.deny_host), DENY),
        ] {
            for principal in principals {
                for host in &hosts {
                    for op in operations_for(args, kind, &explicit) {
                        acls.push(Acl {
                            resource_type: kind,
                            resource_name: name.clone(),
                            pattern_type: pattern,
                            principal: principal.clone(),
                            host: host.clone(),
                            operation: op,
                            permission,
                        });
                    }
                }
            }
        }
        if acls.is_empty() {
            return Err(invalid(format!(
                "no operation applies to the {} resource {name}",
                crate::acls::name_of(&RESOURCE_TYPES, kind)
            )));
        }
        out.insert((kind, name), acls);
    }
    if out.is_empty() {
        return Err(invalid(
            "name a resource: --topic, --group, --cluster, --transactional-id or --delegation-token",
        ));
    }
    Ok(out)
}

/// Prints ACLs grouped by resource pattern, as Kafka's tool does.
fn print_grouped(heading: &str, acls: &[Acl]) {
    let mut by_pattern: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for acl in acls {
        by_pattern
            .entry(acl.pattern_text())
            .or_default()
            .push(acl.entry_text());
    }
    for (pattern, entries) in by_pattern {
        let lines: Vec<String> = entries.iter().map(|e| format!("\t{e}")).collect();
        println!("{heading} `{pattern}`: \n {} \n", lines.join("\n"));
    }
}

/// The filters --list and --remove use: one per resource named (with the
/// pattern type filter), or every ACL.
fn queries(args: &AclsArgs) -> Result<Vec<AclQuery>, ClientError> {
    let pattern = pattern_type(args)?;
    let named = resources(args);
    if named.is_empty() {
        return Ok(vec![AclQuery::any()]);
    }
    Ok(named
        .into_iter()
        .map(|(kind, name)| AclQuery {
            resource_type: kind,
            resource_name: Some(name),
            pattern_type: pattern,
            ..AclQuery::any()
        })
        .collect())
}

fn check_command_config(args: &AclsArgs) -> Result<(), ClientError> {
    let Some(path) = &args.command_config else {
        return Ok(());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("--command-config {}: {e}", path.display())))?;
    for line in text.lines() {
        let line = line.trim();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() == "security.protocol" && !value.trim().eq_ignore_ascii_case("PLAINTEXT") {
            return Err(invalid(format!(
                "--command-config: security.protocol={} is not supported by wharf's tools, which connect over PLAINTEXT; \
                 run them against a PLAINTEXT listener whose principal (User:ANONYMOUS) is in super.users",
                value.trim()
            )));
        }
    }
    Ok(())
}

pub async fn run(args: AclsArgs) -> Result<ExitCode, ClientError> {
    check_command_config(&args)?;
    let mut client = args.bootstrap.connect_args().connect().await?;
    if args.add {
        let wanted = wanted(&args)?;
        for ((kind, name), acls) in &wanted {
            print_grouped("Adding ACLs for resource", acls);
            client.create_acls(acls).await?;
            let query = AclQuery {
                resource_type: *kind,
                resource_name: Some(name.clone()),
                pattern_type: acls.first().map_or(LITERAL, |a| a.pattern_type),
                ..AclQuery::any()
            };
            let current = client.describe_acls(&query).await?;
            print_grouped("Current ACLs for resource", &current);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let queries = queries(&args)?;
    if args.remove {
        let mut queries = queries;
        if !args.allow_principal.is_empty() || !args.deny_principal.is_empty() {
            // Only the named principals' entries (with --operation).
            let explicit = operations(&args)?;
            let mut narrowed = Vec::new();
            for q in &queries {
                for (principals, permission) in
                    [(&args.allow_principal, ALLOW), (&args.deny_principal, DENY)]
                {
                    for p in principals {
                        for op in operations_for(&args, q.resource_type, &explicit) {
                            narrowed.push(AclQuery {
                                principal: Some(p.clone()),
                                operation: if args.operation.is_empty()
                                    && !args.producer
                                    && !args.consumer
                                {
                                    ANY
                                } else {
                                    op
                                },
                                permission,
                                ..q.clone()
                            });
                        }
                    }
                }
            }
            queries = narrowed;
        }
        if !args.force
            && !confirm("Are you sure you want to remove the ACLs matching these filters? (y/n)")?
        {
            return Ok(ExitCode::SUCCESS);
        }
        let removed = client.delete_acls(&queries).await?;
        print_grouped("Removed ACLs for resource", &removed);
        return Ok(ExitCode::SUCCESS);
    }
    // --list
    let mut found = Vec::new();
    for q in &queries {
        let mut acls = client.describe_acls(q).await?;
        if !args.principal.is_empty() {
            acls.retain(|a| args.principal.contains(&a.principal));
        }
        found.extend(acls);
    }
    found.sort();
    found.dedup();
    for principal in &args.principal {
        println!("ACLs for principal `{principal}`");
    }
    print_grouped("Current ACLs for resource", &found);
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; true for "y".
fn confirm(question: &str) -> Result<bool, ClientError> {
    println!("{question}");
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| invalid(format!("reading the answer: {e}")))?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}
