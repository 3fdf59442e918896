//! `wharf group list|describe|delete`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{print, print_json, Table};
use super::{ConnectArgs, OutputFormat};
use crate::admin::LATEST;
use crate::ClientError;

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the groups of every broker.
    List,
    /// State, protocol, members, and per partition the committed offset and lag.
    Describe { group: String },
    /// Delete a group (it must have no members).
    Delete { group: String },
}

pub async fn run(args: GroupArgs) -> Result<ExitCode, ClientError> {
    let output = args.connect.output;
    let mut client = args.connect.connect().await?;
    match args.command {
        GroupCommand::List => {
            let groups = client.list_groups().await?;
            match output {
                OutputFormat::Table => {
                    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"]);
                    for g in &groups {
                        table.row(vec![
                            g.group.clone(),
                            g.state.clone(),
                            g.protocol_type.clone(),
                            g.coordinator.to_string(),
                        ]);
                    }
                    print(&table.render())?;
                }
                OutputFormat::Json => {
                    let list: Vec<_> = groups
                        .iter()
                        .map(|g| {
                            json!({
                                "group": g.group,
                                "state": g.state,
                                "protocol_type": g.protocol_type,
                                "coordinator": g.coordinator,
                            })
                        })
                        .collect();
                    print_json(&json!(list))?;
                }
            }
        }
        GroupCommand::Describe { group } => {
            let description = client.describe_group(&group).await?;
            if description.state == "Dead" {
                return Err(ClientError::Broker {
                    context: format!("group '{group}' does not exist"),
                    code: 69,
                    message: None,
                });
            }
            let committed = client.committed_offsets(&group).await?;
            // Who owns each partition.
            let mut owner = BTreeMap::new();
            for m in &description.members {
                for tp in &m.assignment {
                    owner.insert(tp.clone(), m);
                }
            }
            let partitions: BTreeSet<(String, i32)> =
                committed.keys().chain(owner.keys()).cloned().collect();
            let topics: BTreeSet<&String> = partitions.iter().map(|(t, _)| t).collect();
            let mut ends = BTreeMap::new();
            for topic in topics {
                match client.list_offsets(topic, LATEST, 0).await {
                    Ok(offsets) => {
                        for (p, o) in offsets {
                            ends.insert((topic.clone(), p), o);
                        }
                    }
                    Err(e) => tracing::debug!("no end offsets of {topic}: {e}"),
                }
            }
            let rows: Vec<_> = partitions
                .iter()
                .map(|tp| {
                    let current = committed.get(tp).copied();
                    let end = ends.get(tp).copied();
                    let lag = match (current, end) {
                        (Some(c), Some(e)) => Some((e - c).max(0)),
                        _ => None,
                    };
                    (tp, current, end, lag, owner.get(tp).copied())
                })
                .collect();
            match output {
                OutputFormat::Table => {
                    let mut text = format!(
                        "Group: {}\nState: {}\nProtocol type: {}\nProtocol: {}\nMembers: {}\nCoordinator: {}\n\n",
                        description.group,
                        description.state,
                        or_dash(&description.protocol_type),
                        or_dash(&description.protocol),
                        description.members.len(),
                        description.coordinator,
                    );
                    let mut table = Table::new(&[
                        "GROUP",
                        "TOPIC",
                        "PARTITION",
                        "CURRENT-OFFSET",
                        "LOG-END-OFFSET",
                        "LAG",
                        "CONSUMER-ID",
                        "HOST",
                        "CLIENT-ID",
                    ]);
                    let show = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
                    for ((topic, partition), current, end, lag, member) in &rows {
                        table.row(vec![
                            group.clone(),
                            topic.clone(),
                            partition.to_string(),
                            show(*current),
                            show(*end),
                            show(*lag),
                            member.map_or("-".to_string(), |m| m.member_id.clone()),
                            member.map_or("-".to_string(), |m| m.host.clone()),
                            member.map_or("-".to_string(), |m| m.client_id.clone()),
                        ]);
                    }
                    // Members without partitions still show up, as in
                    // kafka-consumer-groups.sh.
                    for m in description
                        .members
                        .iter()
                        .filter(|m| m.assignment.is_empty())
                    {
                        table.row(vec![
                            group.clone(),
                            "-".into(),
                            "-".into(),
                            "-".into(),
                            "-".into(),
                            "-".into(),
                            m.member_id.clone(),
                            m.host.clone(),
                            m.client_id.clone(),
                        ]);
                    }
                    text.push_str(&table.render());
                    print(&text)?;
                }
                OutputFormat::Json => {
                    let members: Vec<_> = description
                        .members
                        .iter()
                        .map(|m| {
                            json!({
                                "member_id": m.member_id,
                                "client_id": m.client_id,
                                "host": m.host,
                                "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                    let offsets: Vec<_> = rows
                        .iter()
                        .map(|((topic, partition), current, end, lag, member)| {
                            json!({
                                "topic": topic,
                                "partition": partition,
                                "current_offset": current,
                                "log_end_offset": end,
                                "lag": lag,
                                "consumer_id": member.map(|m| m.member_id.clone()),
                                "host": member.map(|m| m.host.clone()),
                                "client_id": member.map(|m| m.client_id.clone()),
                            })
                        })
                        .collect();
                    print_json(&json!({
                        "group": description.group,
                        "state": description.state,
                        "protocol_type": description.protocol_type,
                        "protocol": description.protocol,
                        "coordinator": description.coordinator,
                        "members": members,
                        "offsets": offsets,
                    }))?;
                }
            }
        }
        GroupCommand::Delete { group } => {
            client.delete_group(&group).await?;
            match output {
                OutputFormat::Table => print(&format!("Deleted group {group}.\n"))?,
                OutputFormat::Json => print_json(&json!({ "deleted": group }))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}
