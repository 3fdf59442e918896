//! `kafka-consumer-groups.sh`: --list, --describe (offsets, --members,
//! --state), --delete, --reset-offsets, --delete-offsets.

use std::process::ExitCode;

use clap::{ArgGroup, Parser};

use super::{pad, Bootstrap};
use crate::admin::{GroupDescription, ListedGroup};
use crate::cli::group::{
    describe_offsets, offset_delete_error, parse_topic_partitions, reset_plan, resolve_partitions,
    OffsetRow, ResetOffsetsArgs, TopicPartitions, OFFSET_COLUMNS,
};
use crate::cli::output::print;
use crate::cli::time::{parse_datetime, parse_duration};
use crate::{ClientError, ClusterClient};

/// GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND: i16 = 69;
/// NON_EMPTY_GROUP.
const NON_EMPTY_GROUP: i16 = 68;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-consumer-groups.sh",
    version,
    about = "List, describe and delete consumer groups, reset and delete their offsets \
             (Kafka's kafka-consumer-groups.sh flags)",
    group(ArgGroup::new("action").required(true)
        .args(["list", "describe", "delete", "reset_offsets", "delete_offsets"])),
    group(ArgGroup::new("scenario").multiple(false)
        .args(["to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime", "by_duration", "to_current"]))
)]
pub struct ConsumerGroupsArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    /// List the consumer groups.
    #[arg(long)]
    list: bool,
    /// Describe groups: their offsets and lag (default), --members or --state.
    #[arg(long)]
    describe: bool,
    /// Delete groups (they must have no members).
    #[arg(long)]
    delete: bool,
    /// Reset a group's committed offsets (a dry run unless --execute).
    #[arg(long = "reset-offsets")]
    reset_offsets: bool,
    /// Delete a group's committed offsets of --topic.
    #[arg(long = "delete-offsets")]
    delete_offsets: bool,
    /// The group (repeatable for --describe and --delete).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Every group (--describe, --delete).
    #[arg(long = "all-groups")]
    all_groups: bool,
    /// TOPIC or TOPIC:P,P,... (repeatable).
    #[arg(long = "topic", value_parser = parse_topic_partitions)]
    topics: Vec<TopicPartitions>,
    /// Every topic the group has committed offsets for (--reset-offsets).
    #[arg(long = "all-topics")]
    all_topics: bool,
    /// With --describe: the members.
    #[arg(long)]
    members: bool,
    /// With --describe: the offsets (the default).
    #[arg(long)]
    offsets: bool,
    /// With --describe: the state; with --list: show states, or only
    /// groups in these (comma-separated) states.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    state: Option<String>,
    #[arg(long = "to-earliest")]
    to_earliest: bool,
    #[arg(long = "to-latest")]
    to_latest: bool,
    #[arg(long = "to-current")]
    to_current: bool,
    #[arg(long = "to-offset", allow_negative_numbers = true)]
    to_offset: Option<i64>,
    #[arg(long = "shift-by", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// YYYY-MM-DDTHH:mm:SS.sss
    #[arg(long = "to-datetime", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
    /// PnDTnHnMnS
    #[arg(long = "by-duration", value_parser = parse_duration)]
    by_duration: Option<i64>,
    /// Only print the new offsets (the default).
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long, conflicts_with = "dry_run")]
    execute: bool,
}

pub async fn run(args: ConsumerGroupsArgs) -> Result<ExitCode, ClientError> {
    let mut client = args.bootstrap.connect_args().connect().await?;
    if args.list {
        list(&mut client, args.state.as_deref()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.reset_offsets {
        return reset(&mut client, &args).await;
    }
    if args.delete_offsets {
        return delete_offsets(&mut client, &args).await;
    }
    let groups = if args.all_groups {
        consumer_groups(&mut client).await?
    } else if args.groups.is_empty() {
        return Err(ClientError::Invalid(
            "--group or --all-groups is required".to_string(),
        ));
    } else {
        args.groups.clone()
    };
    if args.delete {
        return delete(&mut client, &groups).await;
    }
    let mut ok = true;
    for group in &groups {
        let described = match describe_offsets(&mut client, group).await {
            Ok(described) => described,
            Err(ClientError::Broker {
                code: GROUP_ID_NOT_FOUND,
                ..
            }) => {
                print(&format!(
                    "\nError: Consumer group '{group}' does not exist.\n"
                ))?;
                ok = false;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (description, rows) = described;
        warn_about_state(&description);
        let text = if args.members {
            members_text(&description)
        } else if args.state.is_some() && !args.offsets {
            let coordinator = client
                .brokers()
                .get(&description.coordinator)
                .map_or_else(|| "unknown".to_string(), |b| b.addr());
            state_text(&description, &coordinator)
        } else {
            offsets_text(&description, &rows)
        };
        print(&text)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The groups of the consumer protocol (or of none yet), by name.
async fn listed_consumer_groups(
    client: &mut ClusterClient,
) -> Result<Vec<ListedGroup>, ClientError> {
    let mut groups: Vec<ListedGroup> = client
        .list_groups()
        .await?
        .into_iter()
        .filter(|g| g.protocol_type.is_empty() || g.protocol_type == "consumer")
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(groups)
}

/// The names of the consumer groups.
async fn consumer_groups(client: &mut ClusterClient) -> Result<Vec<String>, ClientError> {
    Ok(listed_consumer_groups(client)
        .await?
        .into_iter()
        .map(|g| g.group)
        .collect())
}

async fn list(client: &mut ClusterClient, states: Option<&str>) -> Result<(), ClientError> {
    let Some(states) = states else {
        let groups = consumer_groups(client).await?;
        return print(&groups.iter().map(|g| format!("{g}\n")).collect::<String>());
    };
    let wanted: Vec<String> = states
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let groups: Vec<(String, String)> = listed_consumer_groups(client)
        .await?
        .into_iter()
        .filter(|g| wanted.is_empty() || wanted.contains(&g.state.to_ascii_lowercase()))
        .map(|g| (g.group, g.state))
        .collect();
    let width = groups
        .iter()
        .map(|(g, _)| g.len().max(15))
        .max()
        .unwrap_or(15)
        + 10;
    let mut text = format!("{} {}\n", pad("GROUP", width), pad("STATE", 20));
    for (group, state) in &groups {
        text.push_str(&format!("{} {}\n", pad(group, width), pad(state, 20)));
    }
    print(&text)
}

/// Kafka's notes on stderr about a group that is empty or rebalancing.
fn warn_about_state(description: &GroupDescription) {
    let group = &description.group;
    match description.state.as_str() {
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
}

/// The offsets table: the partitions of each member (those with the most
/// partitions first), then the committed partitions no member owns.
fn offsets_text(description: &GroupDescription, rows: &[OffsetRow]) -> String {
    let group = &description.group;
    let mut ordered: Vec<&OffsetRow> = rows.iter().collect();
    let owned = |r: &OffsetRow| {
        r.member
            .and_then(|i| description.members.get(i))
            .map(|m| m.assignment.len())
    };
    ordered.sort_by_key(|r| {
        (
            std::cmp::Reverse(owned(r)),
            r.member,
            r.partition,
            r.topic.clone(),
        )
    });
    if ordered.is_empty() {
        return String::new();
    }
    let show = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
    let cells: Vec<[String; 9]> = ordered
        .iter()
        .map(|r| {
            let m = r.member.and_then(|i| description.members.get(i));
            [
                group.clone(),
                r.topic.clone(),
                r.partition.to_string(),
                show(r.current),
                show(r.end),
                show(r.lag),
                m.map_or("-".to_string(), |m| m.member_id.clone()),
                m.map_or("-".to_string(), |m| m.host.clone()),
                m.map_or("-".to_string(), |m| m.client_id.clone()),
            ]
        })
        .collect();
    let width = |column| column_width(&cells, column);
    let widths = [width(0), width(1), 10, 15, 15, 15, width(6), width(7), 0];
    let header = OFFSET_COLUMNS.map(String::from);
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        text.push('\n');
        text.push_str(&columns(row, &widths));
    }
    text.push('\n');
    text
}

/// The width Kafka gives a column of `cells`: its longest, at least 15.
fn column_width<const N: usize>(cells: &[[String; N]], column: usize) -> usize {
    cells
        .iter()
        .filter_map(|c| c.get(column))
        .map(String::len)
        .fold(15, usize::max)
}

/// Cells padded to their widths (0: the last, unpadded) and joined by a space.
fn columns(cells: &[String], widths: &[usize]) -> String {
    cells
        .iter()
        .zip(widths)
        .map(|(c, &w)| pad(c, w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The --members table (Kafka ends each of its lines with a space).
fn members_text(description: &GroupDescription) -> String {
    let group = &description.group;
    let cells: Vec<[String; 5]> = description
        .members
        .iter()
        .map(|m| {
            [
                group.clone(),
                m.member_id.clone(),
                m.host.clone(),
                m.client_id.clone(),
                m.assignment.len().to_string(),
            ]
        })
        .collect();
    let width = |column| column_width(&cells, column);
    let widths = [width(0), width(1), width(2), width(3), 15];
    let header = ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"].map(String::from);
    let mut text = format!("\n{} \n", columns(&header, &widths));
    for row in &cells {
        text.push_str(&format!("{} \n", columns(row, &widths)));
    }
    text
}

/// The --state table.
fn state_text(description: &GroupDescription, coordinator: &str) -> String {
    let coordinator = format!("{coordinator}  ({})", description.coordinator);
    let widths = [coordinator.len().max(25), 25, 20, 15, 0];
    let header = [
        "GROUP",
        "COORDINATOR (ID)",
        "ASSIGNMENT-STRATEGY",
        "STATE",
        "#MEMBERS",
    ]
    .map(String::from);
    let row = [
        description.group.clone(),
        coordinator,
        description.protocol.clone(),
        description.state.clone(),
        description.members.len().to_string(),
    ];
    format!(
        "\n{}\n{}\n",
        columns(&header, &widths),
        columns(&row, &widths)
    )
}

async fn delete(client: &mut ClusterClient, groups: &[String]) -> Result<ExitCode, ClientError> {
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for group in groups {
        match client.delete_group(group).await {
            Ok(()) => deleted.push(group.clone()),
            Err(e) => failed.push((group.clone(), e)),
        }
    }
    if failed.is_empty() {
        print(&format!(
            "Deletion of requested consumer groups ('{}') was successful.\n",
            deleted.join(", ")
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = "\nError: Deletion of some consumer groups failed:\n".to_string();
    for (group, e) in &failed {
        text.push_str(&format!(
            "* Group '{group}' could not be deleted due to: {e}\n"
        ));
    }
    if !deleted.is_empty() {
        text.push_str(&format!(
            "\nThese consumer groups were deleted successfully: '{}'\n",
            deleted.join("', '")
        ));
    }
    print(&text)?;
    Ok(ExitCode::FAILURE)
}

/// The one group --reset-offsets and --delete-offsets act on.
fn one_group(args: &ConsumerGroupsArgs) -> Result<String, ClientError> {
    match args.groups.as_slice() {
        [group] => Ok(group.clone()),
        _ => Err(ClientError::Invalid(
            "exactly one --group is required".to_string(),
        )),
    }
}

async fn reset(
    client: &mut ClusterClient,
    args: &ConsumerGroupsArgs,
) -> Result<ExitCode, ClientError> {
    let group = one_group(args)?;
    let topics = if args.all_topics {
        let committed = client.committed_offsets(&group).await?;
        let mut names: Vec<String> = committed.keys().map(|(t, _)| t.clone()).collect();
        names.dedup();
        names
            .into_iter()
            .map(|topic| TopicPartitions {
                topic,
                partitions: None,
            })
            .collect()
    } else if args.topics.is_empty() {
        return Err(ClientError::Invalid(
            "--reset-offsets needs --topic or --all-topics".to_string(),
        ));
    } else {
        args.topics.clone()
    };
    let scenario = [
        args.to_earliest,
        args.to_latest,
        args.to_current,
        args.to_offset.is_some(),
        args.shift_by.is_some(),
        args.to_datetime.is_some(),
        args.by_duration.is_some(),
    ];
    if !scenario.contains(&true) {
        return Err(ClientError::Invalid(
            "--reset-offsets needs one of --to-earliest, --to-latest, --to-current, --to-offset, \
             --shift-by, --to-datetime, --by-duration"
                .to_string(),
        ));
    }
    let reset = ResetOffsetsArgs {
        group: group.clone(),
        topics,
        to_earliest: args.to_earliest,
        to_latest: args.to_latest,
        to_offset: args.to_offset,
        // The committed offset, moved by nothing.
        shift_by: if args.to_current {
            Some(0)
        } else {
            args.shift_by
        },
        to_datetime: args.to_datetime,
        by_duration: args.by_duration,
        execute: args.execute,
    };
    if !args.execute && !args.dry_run {
        eprintln!("WARN: nothing is changed without --execute (add --dry-run to only print the new offsets).");
    }
    let plan = reset_plan(client, &reset).await?;
    if args.execute {
        client.commit_group_offsets(&group, &plan).await?;
    }
    let widths = [30, 30, 10, 15];
    let mut text = String::new();
    if !plan.is_empty() {
        let header = ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"].map(String::from);
        text.push('\n');
        text.push_str(&columns(&header, &widths));
    }
    for ((topic, partition), offset) in &plan {
        let row = [
            group.clone(),
            topic.clone(),
            partition.to_string(),
            offset.to_string(),
        ];
        text.push('\n');
        text.push_str(&columns(&row, &widths));
    }
    text.push('\n');
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

async fn delete_offsets(
    client: &mut ClusterClient,
    args: &ConsumerGroupsArgs,
) -> Result<ExitCode, ClientError> {
    let group = one_group(args)?;
    if args.topics.is_empty() {
        return Err(ClientError::Invalid(
            "--delete-offsets needs --topic".to_string(),
        ));
    }
    let partitions = resolve_partitions(client, &args.topics).await?;
    let results = match client.delete_group_offsets(&group, &partitions).await {
        Ok(results) => results,
        Err(ClientError::Broker { code, .. })
            if code == GROUP_ID_NOT_FOUND || code == NON_EMPTY_GROUP =>
        {
            let words = if code == GROUP_ID_NOT_FOUND {
                format!("'{group}' does not exist.")
            } else {
                format!(
                    "Deleting offsets of a consumer group '{group}' is forbidden if the group is not empty."
                )
            };
            print(&format!("\nError: {words}\n"))?;
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e),
    };
    let failed = results.values().any(|&code| code != 0);
    let topics: Vec<&str> = args.topics.iter().map(|t| t.topic.as_str()).collect();
    let mut text = if failed {
        "\nError: Encounter some partition level error, see the follow-up details:\n".to_string()
    } else {
        format!(
            "Request succeed for deleting offsets with topic {} group {group}\n",
            topics.join(", ")
        )
    };
    let widths = [30, 15, 15];
    let header = ["TOPIC", "PARTITION", "STATUS"].map(String::from);
    text.push('\n');
    text.push_str(&columns(&header, &widths));
    for ((topic, partition), &code) in &results {
        let status = if code == 0 {
            "Successful".to_string()
        } else {
            format!("Error: :{}", offset_delete_error(code))
        };
        text.push('\n');
        text.push_str(&columns(
            &[topic.clone(), partition.to_string(), status],
            &widths,
        ));
    }
    text.push('\n');
    print(&text)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::GroupMember;

    #[test]
    fn the_offsets_table_lists_each_members_partitions_then_the_unowned() {
        let description = GroupDescription {
            group: "g".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            coordinator: 1,
            members: vec![GroupMember {
                member_id: "m-1".into(),
                client_id: "c".into(),
                host: "/127.0.0.1".into(),
                assignment: vec![("t".into(), 1)],
            }],
        };
        let row = |partition, member| OffsetRow {
            topic: "t".into(),
            partition,
            current: Some(2),
            end: Some(5),
            lag: Some(3),
            member,
        };
        let text = offsets_text(&description, &[row(0, None), row(1, Some(0))]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&""));
        assert_eq!(
            lines.get(1).copied(),
            Some("GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID")
        );
        assert_eq!(
            lines.get(2).copied(),
            Some("g               t               1          2               5               3               m-1             /127.0.0.1      c")
        );
        assert_eq!(
            lines.get(3).copied(),
            Some("g               t               0          2               5               3               -               -               -")
        );
    }
}
