//! `wharf group list|describe|delete|reset-offsets|delete-offsets`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;

use super::output::{print, print_json, Table};
use super::time::{parse_datetime, parse_duration};
use super::{ConnectArgs, OutputFormat};
use crate::admin::{GroupDescription, EARLIEST, LATEST, NO_OFFSET};
use crate::{error_name, ClientError, ClusterClient};

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
    /// Reset the committed offsets of a group without active members (a
    /// dry run unless --execute).
    ResetOffsets(ResetOffsetsArgs),
    /// Forget the committed offsets of some partitions of a group.
    DeleteOffsets {
        /// The consumer group.
        group: String,
        /// TOPIC or TOPIC:P,P,... (all partitions when none are named);
        /// may be given several times.
        #[arg(long = "topic", value_name = "TOPIC[:P,...]", required = true, value_parser = parse_topic_partitions)]
        topics: Vec<TopicPartitions>,
    },
}

/// A topic and the partitions asked of it (`None`: all).
#[derive(Debug, Clone)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Option<Vec<i32>>,
}

/// Parses `TOPIC` or `TOPIC:P,P,...`.
pub(crate) fn parse_topic_partitions(s: &str) -> Result<TopicPartitions, String> {
    let (topic, partitions) = match s.rsplit_once(':') {
        None => (s, None),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|p| *p >= 0)
                        .ok_or_else(|| format!("{p:?} is not a partition number"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (topic, Some(partitions))
        }
    };
    if topic.is_empty() {
        return Err(format!("{s:?} names no topic"));
    }
    Ok(TopicPartitions {
        topic: topic.to_string(),
        partitions,
    })
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args([
    "to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime", "by_duration",
])))]
pub struct ResetOffsetsArgs {
    /// The consumer group (one that does not exist yet is created by
    /// --execute).
    pub group: String,
    /// TOPIC or TOPIC:P,P,... (all partitions when none are named); may be
    /// given several times.
    #[arg(long = "topic", value_name = "TOPIC[:P,...]", required = true, value_parser = parse_topic_partitions)]
    pub topics: Vec<TopicPartitions>,
    /// To each partition's log start offset.
    #[arg(long = "to-earliest")]
    pub to_earliest: bool,
    /// To each partition's log end offset.
    #[arg(long = "to-latest")]
    pub to_latest: bool,
    /// To this offset (clamped into each partition's range).
    #[arg(long = "to-offset", value_name = "N", allow_negative_numbers = true)]
    pub to_offset: Option<i64>,
    /// Move the committed offset by N (negative: back), clamped.
    #[arg(long = "shift-by", value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// To the first offset whose timestamp is at or after this time
    /// (YYYY-MM-DDTHH:MM:SS[.sss] with Z, +HH:MM or nothing for local time).
    #[arg(long = "to-datetime", value_name = "DATETIME", value_parser = parse_datetime)]
    pub to_datetime: Option<i64>,
    /// To the first offset whose timestamp is at or after now minus this
    /// ISO-8601 duration (PnDTnHnMnS, e.g. PT1H).
    #[arg(long = "by-duration", value_name = "DURATION", value_parser = parse_duration)]
    pub by_duration: Option<i64>,
    /// Commit the new offsets (without it, only print them).
    #[arg(long)]
    pub execute: bool,
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
            let (description, offsets) = describe_offsets(&mut client, &group).await?;
            let rows: Vec<_> = offsets
                .iter()
                .map(|r| {
                    let member = r.member.and_then(|i| description.members.get(i));
                    (
                        (r.topic.clone(), r.partition),
                        r.current,
                        r.end,
                        r.lag.map(|l| l.max(0)),
                        member,
                    )
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
                    let mut table = Table::new(&OFFSET_COLUMNS);
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
        GroupCommand::ResetOffsets(reset) => {
            return reset_offsets(&mut client, reset, output).await
        }
        GroupCommand::DeleteOffsets { group, topics } => {
            return delete_offsets(&mut client, &group, &topics, output).await
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The columns of a group's offsets, as kafka-consumer-groups.sh names them.
pub(crate) const OFFSET_COLUMNS: [&str; 9] = [
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
];

/// One partition of a group's offsets: committed, log end, lag, owner.
#[derive(Debug, Clone)]
pub(crate) struct OffsetRow {
    pub topic: String,
    pub partition: i32,
    pub current: Option<i64>,
    pub end: Option<i64>,
    /// The log end minus the committed offset (negative when the log was
    /// truncated below the commit).
    pub lag: Option<i64>,
    /// The index of the member that owns the partition, in the description.
    pub member: Option<usize>,
}

/// A group's description and, per partition it owns or has committed
/// offsets for (in topic, partition order), its offsets. A group that does
/// not exist is an error.
pub(crate) async fn describe_offsets(
    client: &mut ClusterClient,
    group: &str,
) -> Result<(GroupDescription, Vec<OffsetRow>), ClientError> {
    let description = client.describe_group(group).await?;
    if description.state == "Dead" {
        return Err(ClientError::Broker {
            context: format!("group '{group}' does not exist"),
            code: 69,
            message: None,
        });
    }
    let committed = client.committed_offsets(group).await?;
    // Who owns each partition.
    let mut owner = BTreeMap::new();
    for (i, m) in description.members.iter().enumerate() {
        for tp in &m.assignment {
            owner.insert(tp.clone(), i);
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
    let rows = partitions
        .iter()
        .map(|tp| {
            let current = committed.get(tp).copied();
            let end = ends.get(tp).copied();
            let lag = match (current, end) {
                (Some(c), Some(e)) => Some(e - c),
                _ => None,
            };
            OffsetRow {
                topic: tp.0.clone(),
                partition: tp.1,
                current,
                end,
                lag,
                member: owner.get(tp).copied(),
            }
        })
        .collect();
    Ok((description, rows))
}

/// The partitions `topics` name, each checked against the topic's.
pub(crate) async fn resolve_partitions(
    client: &mut ClusterClient,
    topics: &[TopicPartitions],
) -> Result<Vec<(String, i32)>, ClientError> {
    let names: Vec<String> = topics.iter().map(|t| t.topic.clone()).collect();
    let described = client.describe_topics(Some(&names)).await?;
    let mut chosen = BTreeSet::new();
    for t in topics {
        let info = described
            .get(&t.topic)
            .ok_or_else(|| crate::admin::unknown_topic(&t.topic))?;
        let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
        match &t.partitions {
            None => chosen.extend(all.iter().map(|&p| (t.topic.clone(), p))),
            Some(asked) => {
                for p in asked {
                    if !all.contains(p) {
                        return Err(ClientError::Invalid(format!(
                            "partition {p} does not exist: topic '{}' has {} partitions",
                            t.topic,
                            all.len()
                        )));
                    }
                    chosen.insert((t.topic.clone(), *p));
                }
            }
        }
    }
    Ok(chosen.into_iter().collect())
}

/// The offsets of every partition of `topics` at `timestamp`.
async fn offsets_at(
    client: &mut ClusterClient,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
    let topics: BTreeSet<&String> = partitions.iter().map(|(t, _)| t).collect();
    let mut offsets = BTreeMap::new();
    for topic in topics {
        for (p, o) in client.list_offsets(topic, timestamp, 0).await? {
            offsets.insert((topic.clone(), p), o);
        }
    }
    Ok(offsets)
}

/// `wharf group reset-offsets`, as kafka-consumer-groups.sh --reset-offsets.
async fn reset_offsets(
    client: &mut ClusterClient,
    args: ResetOffsetsArgs,
    output: OutputFormat,
) -> Result<ExitCode, ClientError> {
    let group = &args.group;
    let plan = reset_plan(client, &args).await?;
    if args.execute {
        client.commit_group_offsets(group, &plan).await?;
    } else {
        eprintln!("Dry run: nothing was changed (add --execute to commit these offsets).");
    }
    match output {
        OutputFormat::Table => {
            let mut table = Table::new(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
            for ((topic, partition), offset) in &plan {
                table.row(vec![
                    group.clone(),
                    topic.clone(),
                    partition.to_string(),
                    offset.to_string(),
                ]);
            }
            print(&table.render())?;
        }
        OutputFormat::Json => {
            let offsets: Vec<_> = plan
                .iter()
                .map(|((topic, partition), offset)| {
                    json!({"topic": topic, "partition": partition, "new_offset": offset})
                })
                .collect();
            print_json(&json!({
                "group": group,
                "executed": args.execute,
                "offsets": offsets,
            }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `reset-offsets` would commit: the new offset of each partition.
/// Fails when the group has active members.
pub(crate) async fn reset_plan(
    client: &mut ClusterClient,
    args: &ResetOffsetsArgs,
) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
    let group = &args.group;
    // A group that does not exist yet (GROUP_ID_NOT_FOUND, or Dead) is
    // created by the commit, as in Kafka.
    match client.describe_group(group).await {
        Err(ClientError::Broker { code: 69, .. }) => {}
        Err(e) => return Err(e),
        Ok(d) if d.members.is_empty() && matches!(d.state.as_str(), "Empty" | "Dead") => {}
        Ok(d) => {
            return Err(ClientError::Invalid(format!(
                "group {group} has active members; stop them first (state {}, {} members)",
                d.state,
                d.members.len()
            )))
        }
    }
    let partitions = resolve_partitions(client, &args.topics).await?;
    let earliest = offsets_at(client, &partitions, EARLIEST).await?;
    let latest = offsets_at(client, &partitions, LATEST).await?;
    let committed = client.committed_offsets(group).await?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let by_time = match (args.to_datetime, args.by_duration) {
        (Some(ts), _) => Some(ts),
        (None, Some(ms)) => Some(now_ms.saturating_sub(ms).max(0)),
        (None, None) => None,
    };
    let at_time = match by_time {
        Some(ts) => offsets_at(client, &partitions, ts).await?,
        None => BTreeMap::new(),
    };
    let mut plan = BTreeMap::new();
    for tp in &partitions {
        let (topic, partition) = tp;
        let (Some(&low), Some(&high)) = (earliest.get(tp), latest.get(tp)) else {
            return Err(ClientError::Invalid(format!(
                "partition {topic}-{partition} has no leader: its offsets are unknown"
            )));
        };
        let wanted = if args.to_earliest {
            low
        } else if args.to_latest {
            high
        } else if let Some(n) = args.to_offset {
            n
        } else if let Some(n) = args.shift_by {
            let current = committed.get(tp).copied().ok_or_else(|| {
                ClientError::Invalid(format!(
                    "cannot shift the offset of {topic}-{partition}: group {group} has no committed offset there"
                ))
            })?;
            current.saturating_add(n)
        } else {
            // By time: the log end when no record is that new.
            match at_time.get(tp).copied() {
                Some(o) if o != NO_OFFSET => o,
                _ => high,
            }
        };
        plan.insert(tp.clone(), wanted.clamp(low, high.max(low)));
    }
    Ok(plan)
}

/// `wharf group delete-offsets`: one row per partition; exits non-zero
/// when any partition's offset could not be deleted.
async fn delete_offsets(
    client: &mut ClusterClient,
    group: &str,
    topics: &[TopicPartitions],
    output: OutputFormat,
) -> Result<ExitCode, ClientError> {
    let partitions = resolve_partitions(client, topics).await?;
    let results = client.delete_group_offsets(group, &partitions).await?;
    let failed = results.values().any(|&code| code != 0);
    match output {
        OutputFormat::Table => {
            let mut table = Table::new(&["TOPIC", "PARTITION", "STATUS"]);
            for ((topic, partition), &code) in &results {
                let status = if code == 0 {
                    "Successful".to_string()
                } else {
                    format!("Error: {}", offset_delete_error(code))
                };
                table.row(vec![topic.clone(), partition.to_string(), status]);
            }
            print(&table.render())?;
        }
        OutputFormat::Json => {
            let rows: Vec<_> = results
                .iter()
                .map(|((topic, partition), &code)| {
                    json!({
                        "topic": topic,
                        "partition": partition,
                        "error": (code != 0).then(|| error_name(code)),
                        "message": (code != 0).then(|| offset_delete_error(code)),
                    })
                })
                .collect();
            print_json(&json!({ "group": group, "partitions": rows }))?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// OffsetDelete's partition errors in plain words, with Kafka's name.
pub(crate) fn offset_delete_error(code: i16) -> String {
    let words = match code {
        // GROUP_SUBSCRIBED_TO_TOPIC
        86 => "an active member of the group is subscribed to this topic; stop it first",
        // UNKNOWN_TOPIC_OR_PARTITION
        3 => "no such topic or partition",
        // GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED
        30 | 29 => "not authorized",
        _ => return error_name(code),
    };
    format!("{words} ({})", error_name(code))
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}
