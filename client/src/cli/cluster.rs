//! `wharf cluster describe|health`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use kafka_protocol::messages::DescribeClusterRequest;
use serde_json::json;

use super::output::{ids, print, print_json, Table};
use super::{ConnectArgs, OutputFormat};
use crate::admin::TopicInfo;
use crate::cluster_client::BrokerInfo;
use crate::{ClientError, ClusterClient};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers, and partitions that need attention.
    Describe,
    /// Exit 0 when every partition has a leader and a full ISR, else 1
    /// with the reasons.
    Health,
}

/// A partition that is not fully healthy.
struct Problem {
    topic: String,
    partition: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

impl Problem {
    fn offline(&self) -> bool {
        self.leader < 0
    }

    fn reason(&self) -> String {
        if self.offline() {
            format!("{}-{}: no leader (offline)", self.topic, self.partition)
        } else {
            let missing: Vec<i32> = self
                .replicas
                .iter()
                .copied()
                .filter(|r| !self.isr.contains(r))
                .collect();
            format!(
                "{}-{}: under-replicated, ISR {} lacks replicas {}",
                self.topic,
                self.partition,
                ids(&self.isr),
                ids(&missing)
            )
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "topic": self.topic,
            "partition": self.partition,
            "leader": (self.leader >= 0).then_some(self.leader),
            "replicas": self.replicas,
            "isr": self.isr,
            "reason": self.reason(),
        })
    }
}

fn problems<'a>(topics: impl Iterator<Item = &'a TopicInfo>) -> Vec<Problem> {
    let mut out = Vec::new();
    for t in topics {
        for p in &t.partitions {
            let full = p.replicas.iter().all(|r| p.isr.contains(r));
            if p.leader < 0 || !full {
                out.push(Problem {
                    topic: t.name.clone(),
                    partition: p.partition,
                    leader: p.leader,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                });
            }
        }
    }
    out
}

/// Cluster id, controller and brokers: DescribeCluster when served, else Metadata.
async fn describe(
    client: &mut ClusterClient,
) -> Result<(Option<String>, i32, Vec<BrokerInfo>), ClientError> {
    let serves = client
        .any_connection()
        .await?
        .version_of::<DescribeClusterRequest>()
        .is_some();
    if serves {
        let response = client
            .with_retries(async |c| c.call_any(&DescribeClusterRequest::default()).await)
            .await?;
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            || "could not describe the cluster".to_string(),
        )?;
        let brokers = response
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
            })
            .collect();
        Ok((
            Some(response.cluster_id.to_string()),
            response.controller_id.0,
            brokers,
        ))
    } else {
        client.metadata(Some(&[])).await?;
        Ok((
            client.cluster_id().map(str::to_string),
            client.metadata_controller_id(),
            client.brokers().values().cloned().collect(),
        ))
    }
}

pub async fn run(args: ClusterArgs) -> Result<ExitCode, ClientError> {
    let output = args.connect.output;
    let mut client = args.connect.connect().await?;
    let topics = client.describe_topics(None).await?;
    let problems = problems(topics.values());
    let partitions: usize = topics.values().map(|t| t.partitions.len()).sum();
    match args.command {
        ClusterCommand::Describe => {
            let (cluster_id, controller, brokers) = describe(&mut client).await?;
            let (offline, under): (Vec<&Problem>, Vec<&Problem>) =
                problems.iter().partition(|p| p.offline());
            match output {
                OutputFormat::Table => {
                    let mut text = format!(
                        "Cluster id: {}\nController: {}\nTopics: {}\nPartitions: {}\n\n",
                        cluster_id.as_deref().unwrap_or("-"),
                        if controller >= 0 {
                            controller.to_string()
                        } else {
                            "none".to_string()
                        },
                        topics.len(),
                        partitions,
                    );
                    let mut table = Table::new(&["ID", "HOST", "PORT", "RACK"]);
                    for b in &brokers {
                        table.row(vec![
                            b.id.to_string(),
                            b.host.clone(),
                            b.port.to_string(),
                            b.rack.clone().unwrap_or_else(|| "-".to_string()),
                        ]);
                    }
                    text.push_str(&table.render());
                    text.push_str(&format!("\nUnder-replicated partitions: {}\n", under.len()));
                    for p in &under {
                        text.push_str(&format!("  {}\n", p.reason()));
                    }
                    text.push_str(&format!("Offline partitions: {}\n", offline.len()));
                    for p in &offline {
                        text.push_str(&format!("  {}\n", p.reason()));
                    }
                    print(&text)?;
                }
                OutputFormat::Json => {
                    let brokers: Vec<_> = brokers
                        .iter()
                        .map(|b| json!({ "id": b.id, "host": b.host, "port": b.port, "rack": b.rack }))
                        .collect();
                    print_json(&json!({
                        "cluster_id": cluster_id,
                        "controller": (controller >= 0).then_some(controller),
                        "brokers": brokers,
                        "topics": topics.len(),
                        "partitions": partitions,
                        "under_replicated_partitions": under.iter().map(|p| p.json()).collect::<Vec<_>>(),
                        "offline_partitions": offline.iter().map(|p| p.json()).collect::<Vec<_>>(),
                    }))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Health => {
            let healthy = problems.is_empty();
            match output {
                OutputFormat::Table => {
                    let mut text = if healthy {
                        format!(
                            "healthy: {} brokers, {partitions} partitions, all with a leader and a full ISR\n",
                            client.brokers().len()
                        )
                    } else {
                        format!("unhealthy: {} of {partitions} partitions\n", problems.len())
                    };
                    for p in &problems {
                        text.push_str(&format!("  {}\n", p.reason()));
                    }
                    print(&text)?;
                }
                OutputFormat::Json => print_json(&json!({
                    "healthy": healthy,
                    "brokers": client.brokers().len(),
                    "partitions": partitions,
                    "problems": problems.iter().map(Problem::json).collect::<Vec<_>>(),
                }))?,
            }
            Ok(if healthy {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
