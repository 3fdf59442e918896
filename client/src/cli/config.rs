//! `wharf config describe|alter`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::output::{print, print_json, Table};
use super::{parse_key_value, ConnectArgs, OutputFormat};
use crate::admin::{config_source_name, RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::ClientError;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// Which resource's configs.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Resource {
    /// A topic's configs.
    #[arg(long)]
    pub topic: Option<String>,
    /// A broker's configs, by node id.
    #[arg(long)]
    pub broker: Option<i32>,
}

impl Resource {
    fn get(&self) -> (i8, String) {
        match (&self.topic, self.broker) {
            (Some(topic), _) => (RESOURCE_TOPIC, topic.clone()),
            (None, Some(broker)) => (RESOURCE_BROKER, broker.to_string()),
            (None, None) => (RESOURCE_TOPIC, String::new()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Every config of a topic or broker: name, value, source, sensitive.
    Describe {
        #[command(flatten)]
        resource: Resource,
    },
    /// Set or delete (back to the default) configs (IncrementalAlterConfigs).
    Alter {
        #[command(flatten)]
        resource: Resource,
        /// key=value to set (repeatable).
        #[arg(long = "set", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// A config to delete, back to its default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
}

pub async fn run(args: ConfigArgs) -> Result<ExitCode, ClientError> {
    let output = args.connect.output;
    match args.command {
        ConfigCommand::Describe { resource } => {
            let (kind, name) = resource.get();
            let mut client = args.connect.connect().await?;
            let entries = client.describe_configs(kind, &name).await?;
            let value = |e: &crate::admin::ConfigEntry| {
                if e.sensitive {
                    None
                } else {
                    e.value.clone()
                }
            };
            match output {
                OutputFormat::Table => {
                    let mut table = Table::new(&["NAME", "VALUE", "SOURCE", "SENSITIVE"]);
                    for e in &entries {
                        table.row(vec![
                            e.name.clone(),
                            value(e).unwrap_or_else(|| "-".to_string()),
                            config_source_name(e.source).to_string(),
                            e.sensitive.to_string(),
                        ]);
                    }
                    print(&table.render())?;
                }
                OutputFormat::Json => {
                    let list: Vec<_> = entries
                        .iter()
                        .map(|e| {
                            json!({
                                "name": e.name,
                                "value": value(e),
                                "source": config_source_name(e.source),
                                "sensitive": e.sensitive,
                                "read_only": e.read_only,
                            })
                        })
                        .collect();
                    print_json(&json!(list))?;
                }
            }
        }
        ConfigCommand::Alter {
            resource,
            set,
            delete,
        } => {
            if set.is_empty() && delete.is_empty() {
                return Err(ClientError::Invalid(
                    "config alter needs at least one --set or --delete".to_string(),
                ));
            }
            let (kind, name) = resource.get();
            let mut client = args.connect.connect().await?;
            client.alter_configs(kind, &name, &set, &delete).await?;
            let label = if kind == RESOURCE_BROKER {
                format!("broker {name}")
            } else {
                format!("topic {name}")
            };
            match output {
                OutputFormat::Table => print(&format!("Altered the configs of {label}.\n"))?,
                OutputFormat::Json => print_json(&json!({
                    "altered": label,
                    "set": set.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    "deleted": delete,
                }))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
