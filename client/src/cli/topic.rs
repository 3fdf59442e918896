//! `wharf topic create|list|describe|alter|delete`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{ids, print, print_json, Table};
use super::{parse_key_value, ConnectArgs, OutputFormat};
use crate::admin::{config_source_name, unknown_topic, EARLIEST, LATEST, RESOURCE_TOPIC};
use crate::ClientError;

#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replicas of each partition (default: the broker's default.replication.factor).
        #[arg(long = "replication-factor", default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// A topic config, key=value (repeatable).
        #[arg(long = "config", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics.
    List {
        /// Include internal topics (__consumer_offsets, __transaction_state).
        #[arg(long)]
        internal: bool,
    },
    /// Describe a topic: id, partitions, replicas, offsets, overridden configs.
    Describe { name: String },
    /// Add partitions to a topic.
    Alter {
        name: String,
        /// The new partition count (more than today's).
        #[arg(long)]
        partitions: i32,
    },
    /// Delete a topic.
    Delete { name: String },
}

pub async fn run(args: TopicArgs) -> Result<ExitCode, ClientError> {
    let output = args.connect.output;
    let mut client = args.connect.connect().await?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            client
                .create_topic(&name, partitions, replication_factor, &configs)
                .await?;
            match output {
                OutputFormat::Table => print(&format!("Created topic {name}.\n"))?,
                OutputFormat::Json => print_json(&json!({ "created": name }))?,
            }
        }
        TopicCommand::List { internal } => {
            let topics = client.describe_topics(None).await?;
            let shown: Vec<_> = topics
                .values()
                .filter(|t| internal || !t.internal)
                .collect();
            match output {
                OutputFormat::Table => {
                    let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]);
                    for t in &shown {
                        table.row(vec![
                            t.name.clone(),
                            t.partitions.len().to_string(),
                            t.replication_factor().to_string(),
                        ]);
                    }
                    print(&table.render())?;
                }
                OutputFormat::Json => {
                    let list: Vec<_> = shown
                        .iter()
                        .map(|t| {
                            json!({
                                "name": t.name,
                                "id": t.id,
                                "partitions": t.partitions.len(),
                                "replication_factor": t.replication_factor(),
                                "internal": t.internal,
                            })
                        })
                        .collect();
                    print_json(&json!(list))?;
                }
            }
        }
        TopicCommand::Describe { name } => {
            let topics = client
                .describe_topics(Some(std::slice::from_ref(&name)))
                .await?;
            let info = topics.get(&name).ok_or_else(|| unknown_topic(&name))?;
            let configs: Vec<_> = client
                .describe_configs(RESOURCE_TOPIC, &name)
                .await?
                .into_iter()
                .filter(|c| c.source != 5 && c.source != 0)
                .collect();
            let start = client.list_offsets(&name, EARLIEST, 0).await?;
            let end = client.list_offsets(&name, LATEST, 0).await?;
            let offset = |m: &std::collections::BTreeMap<i32, i64>, p: i32| m.get(&p).copied();
            match output {
                OutputFormat::Table => {
                    let configs_text = configs
                        .iter()
                        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",");
                    let mut text = format!(
                        "Topic: {}\nTopicId: {}\nPartitionCount: {}\nReplicationFactor: {}\nConfigs: {}\n\n",
                        info.name,
                        info.id,
                        info.partitions.len(),
                        info.replication_factor(),
                        configs_text
                    );
                    let mut table = Table::new(&[
                        "PARTITION",
                        "LEADER",
                        "REPLICAS",
                        "ISR",
                        "LOG-START-OFFSET",
                        "LOG-END-OFFSET",
                    ]);
                    for p in &info.partitions {
                        let show = |o: Option<i64>| o.map_or("-".to_string(), |o| o.to_string());
                        table.row(vec![
                            p.partition.to_string(),
                            if p.leader >= 0 {
                                p.leader.to_string()
                            } else {
                                "none".to_string()
                            },
                            ids(&p.replicas),
                            ids(&p.isr),
                            show(offset(&start, p.partition)),
                            show(offset(&end, p.partition)),
                        ]);
                    }
                    text.push_str(&table.render());
                    print(&text)?;
                }
                OutputFormat::Json => {
                    let configs: serde_json::Map<String, serde_json::Value> = configs
                        .iter()
                        .map(|c| {
                            let entry = json!({
                                "value": c.value,
                                "source": config_source_name(c.source),
                            });
                            (c.name.clone(), entry)
                        })
                        .collect();
                    let partitions: Vec<_> = info
                        .partitions
                        .iter()
                        .map(|p| {
                            json!({
                                "partition": p.partition,
                                "leader": (p.leader >= 0).then_some(p.leader),
                                "leader_epoch": p.leader_epoch,
                                "replicas": p.replicas,
                                "isr": p.isr,
                                "offline_replicas": p.offline,
                                "log_start_offset": offset(&start, p.partition),
                                "log_end_offset": offset(&end, p.partition),
                            })
                        })
                        .collect();
                    print_json(&json!({
                        "name": info.name,
                        "id": info.id,
                        "internal": info.internal,
                        "partition_count": info.partitions.len(),
                        "replication_factor": info.replication_factor(),
                        "configs": configs,
                        "partitions": partitions,
                    }))?;
                }
            }
        }
        TopicCommand::Alter { name, partitions } => {
            client.create_partitions(&name, partitions).await?;
            match output {
                OutputFormat::Table => {
                    print(&format!("Topic {name} now has {partitions} partitions.\n"))?
                }
                OutputFormat::Json => {
                    print_json(&json!({ "topic": name, "partitions": partitions }))?
                }
            }
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            match output {
                OutputFormat::Table => print(&format!("Deleted topic {name}.\n"))?,
                OutputFormat::Json => print_json(&json!({ "deleted": name }))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
