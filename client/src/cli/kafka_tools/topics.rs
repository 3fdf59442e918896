//! `kafka-topics.sh`: --create, --list, --describe, --alter, --delete.

use std::process::ExitCode;

use clap::{ArgGroup, Parser};

use super::Bootstrap;
use crate::admin::{TopicInfo, RESOURCE_TOPIC};
use crate::cli::output::print;
use crate::cli::parse_key_value;
use crate::{ClientError, ClusterClient};

/// TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// DescribeConfigs' source of a config nobody set.
const DEFAULT_CONFIG: i8 = 5;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-topics.sh",
    version,
    about = "Create, list, describe, alter and delete topics (Kafka's kafka-topics.sh flags)",
    group(ArgGroup::new("action").required(true)
        .args(["create", "list", "describe", "alter", "delete"]))
)]
pub struct TopicsArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    /// Create a topic.
    #[arg(long)]
    create: bool,
    /// List the topics.
    #[arg(long)]
    list: bool,
    /// Describe topics (all, or those of --topic).
    #[arg(long)]
    describe: bool,
    /// Add partitions to a topic.
    #[arg(long)]
    alter: bool,
    /// Delete a topic.
    #[arg(long)]
    delete: bool,
    /// The topic (a comma-separated list of names for --list and --describe).
    #[arg(long)]
    topic: Option<String>,
    /// Partitions of the topic (--create: the broker's default when absent).
    #[arg(long)]
    partitions: Option<i32>,
    /// Replicas of each partition (--create).
    #[arg(long = "replication-factor")]
    replication_factor: Option<i16>,
    /// A topic config, name=value (--create; repeatable).
    #[arg(long = "config", value_parser = parse_key_value)]
    configs: Vec<(String, String)>,
    /// With --create: no error when the topic exists.
    #[arg(long = "if-not-exists")]
    if_not_exists: bool,
    /// With --alter, --describe, --delete: no error when the topic does not exist.
    #[arg(long = "if-exists")]
    if_exists: bool,
    /// Leave out internal topics (__consumer_offsets, ...).
    #[arg(long = "exclude-internal")]
    exclude_internal: bool,
    /// With --describe: only partitions whose ISR is smaller than their replicas.
    #[arg(long = "under-replicated-partitions")]
    under_replicated: bool,
    /// With --describe: only partitions without a live leader.
    #[arg(long = "unavailable-partitions")]
    unavailable: bool,
    /// With --describe: only topics with configs set, and no partitions.
    #[arg(long = "topics-with-overrides")]
    with_overrides: bool,
}

pub async fn run(args: TopicsArgs) -> Result<ExitCode, ClientError> {
    let mut client = args.bootstrap.connect_args().connect().await?;
    if args.create {
        create(&mut client, &args).await?;
    } else if args.list {
        let names: Vec<String> = chosen_topics(&mut client, &args)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        print(&format!("{}\n", names.join("\n")))?;
    } else if args.describe {
        describe(&mut client, &args).await?;
    } else if args.alter {
        if !args.configs.is_empty() {
            return Err(ClientError::Invalid(
                "--config is not supported with --alter: use kafka-configs.sh --alter --add-config"
                    .to_string(),
            ));
        }
        let partitions = args.partitions.ok_or_else(|| {
            ClientError::Invalid("--alter needs --partitions (the new count)".to_string())
        })?;
        for topic in chosen_topics(&mut client, &args).await? {
            client.create_partitions(&topic.name, partitions).await?;
        }
    } else if args.delete {
        for topic in chosen_topics(&mut client, &args).await? {
            client.delete_topic(&topic.name).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(client: &mut ClusterClient, args: &TopicsArgs) -> Result<(), ClientError> {
    let name = args
        .topic
        .as_deref()
        .ok_or_else(|| ClientError::Invalid("--create needs --topic".to_string()))?;
    if args.partitions.is_some_and(|p| p < 1) {
        return Err(ClientError::Invalid(
            "The partitions must be greater than 0".to_string(),
        ));
    }
    if args.replication_factor.is_some_and(|r| r < 1) {
        return Err(ClientError::Invalid(format!(
            "The replication factor must be between 1 and {} inclusive",
            i16::MAX
        )));
    }
    if name.contains('.') || name.contains('_') {
        print(
            "WARNING: Due to limitations in metric names, topics with a period ('.') or \
             underscore ('_') could collide. To avoid issues it is best to use either, but not both.\n",
        )?;
    }
    let created = client
        .create_topic(
            name,
            args.partitions.unwrap_or(-1),
            args.replication_factor.unwrap_or(-1),
            &args.configs,
        )
        .await;
    match created {
        Ok(()) => print(&format!("Created topic {name}.\n")),
        Err(ClientError::Broker {
            code: TOPIC_ALREADY_EXISTS,
            ..
        }) if args.if_not_exists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The topics --topic names (all when absent), by name; an error when it
/// names one that does not exist, unless --if-exists.
async fn chosen_topics(
    client: &mut ClusterClient,
    args: &TopicsArgs,
) -> Result<Vec<TopicInfo>, ClientError> {
    let all = client.describe_topics(None).await?;
    let shown = all
        .into_values()
        .filter(|t| !(args.exclude_internal && t.internal));
    let Some(list) = &args.topic else {
        if args.alter || args.delete {
            return Err(ClientError::Invalid("--topic is required".to_string()));
        }
        return Ok(shown.collect());
    };
    let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
    let chosen: Vec<TopicInfo> = shown
        .filter(|t| wanted.contains(&t.name.as_str()))
        .collect();
    if chosen.is_empty() && !args.if_exists && !args.list {
        return Err(ClientError::Invalid(format!(
            "Topic '{list}' does not exist as expected"
        )));
    }
    Ok(chosen)
}

async fn describe(client: &mut ClusterClient, args: &TopicsArgs) -> Result<(), ClientError> {
    let live: Vec<i32> = client.brokers().keys().copied().collect();
    let partition_filter = args.under_replicated || args.unavailable;
    let mut text = String::new();
    for topic in chosen_topics(client, args).await? {
        let configs: Vec<String> = client
            .describe_configs(RESOURCE_TOPIC, &topic.name)
            .await?
            .into_iter()
            .filter(|c| c.source != DEFAULT_CONFIG)
            .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("null")))
            .collect();
        if !partition_filter && (!args.with_overrides || !configs.is_empty()) {
            text.push_str(&topic_line(&topic, &configs.join(",")));
        }
        if args.with_overrides {
            continue;
        }
        for p in &topic.partitions {
            let unavailable = p.leader < 0 || !live.contains(&p.leader);
            let under_replicated = p.isr.len() < p.replicas.len();
            if (args.under_replicated && !under_replicated) || (args.unavailable && !unavailable) {
                continue;
            }
            text.push_str(&partition_line(&topic.name, p));
        }
    }
    print(&text)
}

/// Kafka's first line of a topic's description.
fn topic_line(topic: &TopicInfo, configs: &str) -> String {
    format!(
        "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
        topic.name,
        topic.id,
        topic.partitions.len(),
        topic.replication_factor(),
        configs
    )
}

/// Kafka's line of one partition. Leader eligibility (ELR) is not known
/// from Metadata, which Kafka's tool prints as N/A.
fn partition_line(topic: &str, p: &crate::admin::PartitionInfo) -> String {
    let join = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let leader = if p.leader >= 0 {
        p.leader.to_string()
    } else {
        "none".to_string()
    };
    format!(
        "\tTopic: {topic}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}\tElr: N/A\tLastKnownElr: N/A\n",
        p.partition,
        join(&p.replicas),
        join(&p.isr),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::PartitionInfo;

    #[test]
    fn a_description_is_in_kafka_topics_format() {
        let p = PartitionInfo {
            partition: 0,
            leader: -1,
            leader_epoch: 0,
            replicas: vec![1, 2],
            isr: vec![2],
            offline: vec![],
            error_code: 0,
        };
        let topic = TopicInfo {
            name: "t".into(),
            id: "AAAA".into(),
            internal: false,
            partitions: vec![p.clone()],
        };
        assert_eq!(
            topic_line(&topic, "retention.ms=5"),
            "Topic: t\tTopicId: AAAA\tPartitionCount: 1\tReplicationFactor: 2\tConfigs: retention.ms=5\n"
        );
        assert_eq!(
            partition_line("t", &p),
            "\tTopic: t\tPartition: 0\tLeader: none\tReplicas: 1,2\tIsr: 2\tElr: N/A\tLastKnownElr: N/A\n"
        );
    }
}
