//! `kafka-configs.sh`: --describe and --alter of topic and broker configs,
//! and of users' SCRAM credentials (`users`).

use std::process::ExitCode;

use clap::{ArgGroup, Parser};

use super::Bootstrap;
use crate::admin::{config_source_name, ConfigEntry, RESOURCE_BROKER, RESOURCE_TOPIC};
use crate::cli::output::print;
use crate::{ClientError, ClusterClient};

/// Not a config resource: users' SCRAM credentials (`super::users`).
const ENTITY_USERS: i8 = -1;

/// DescribeConfigs' sources of the values set on a topic or a broker.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-configs.sh",
    version,
    about = "Describe and alter topic and broker configs (Kafka's kafka-configs.sh flags)",
    group(ArgGroup::new("action").required(true).args(["describe", "alter"])),
    group(ArgGroup::new("entity").args(["entity_type", "topic", "broker"]).multiple(false))
)]
pub struct ConfigsArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    /// topics, brokers or users (SCRAM credentials).
    #[arg(long = "entity-type")]
    entity_type: Option<String>,
    /// The topic name or broker id (all when absent, with --describe).
    #[arg(long = "entity-name")]
    entity_name: Option<String>,
    /// Short for --entity-type topics --entity-name TOPIC.
    #[arg(long)]
    topic: Option<String>,
    /// Short for --entity-type brokers --entity-name ID.
    #[arg(long)]
    broker: Option<String>,
    /// List the configs set on the entity (with --all: every config).
    #[arg(long)]
    describe: bool,
    /// With --describe: every config, not only those set on the entity.
    #[arg(long)]
    all: bool,
    /// Set or delete configs.
    #[arg(long)]
    alter: bool,
    /// Configs to set: k=v,k2=v2 (a value with commas in square brackets:
    /// k=[a,b]).
    #[arg(long = "add-config")]
    add_config: Option<String>,
    /// Configs to delete, back to their defaults: k,k2.
    #[arg(long = "delete-config")]
    delete_config: Vec<String>,
}

/// The entity the flags name: its resource type, Kafka's word for that
/// type (topic, broker), and its name when one was given.
fn entity(args: &ConfigsArgs) -> Result<(i8, &'static str, Option<String>), ClientError> {
    if let Some(topic) = &args.topic {
        return Ok((RESOURCE_TOPIC, "topic", Some(topic.clone())));
    }
    if let Some(broker) = &args.broker {
        return Ok((RESOURCE_BROKER, "broker", Some(broker.clone())));
    }
    match args.entity_type.as_deref() {
        Some("topics") => Ok((RESOURCE_TOPIC, "topic", args.entity_name.clone())),
        Some("brokers") => Ok((RESOURCE_BROKER, "broker", args.entity_name.clone())),
        Some("users") => Ok((ENTITY_USERS, "user", args.entity_name.clone())),
        Some(other) => Err(ClientError::Invalid(format!(
            "--entity-type {other} is not supported by wharf (supported: topics, brokers, users)"
        ))),
        None => Err(ClientError::Invalid(
            "--entity-type (or --topic, --broker) is required".to_string(),
        )),
    }
}

pub async fn run(args: ConfigsArgs) -> Result<ExitCode, ClientError> {
    let (kind, word, name) = entity(&args)?;
    let mut client = args.bootstrap.connect_args().connect().await?;
    if args.describe && kind == ENTITY_USERS {
        return super::users::describe(&mut client, name).await;
    }
    if args.describe {
        let names = match name {
            Some(name) => vec![name],
            None => all_entities(&mut client, kind).await?,
        };
        let mut text = String::new();
        for name in &names {
            let entries = client.describe_configs(kind, name).await?;
            text.push_str(&describe_text(word, name, &entries, args.all));
        }
        print(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let name = name.ok_or_else(|| {
        ClientError::Invalid("--alter needs --entity-name (or --topic, --broker)".to_string())
    })?;
    let set = match &args.add_config {
        Some(list) => parse_configs(list)?,
        None => Vec::new(),
    };
    let delete: Vec<String> = args
        .delete_config
        .iter()
        .flat_map(|d| d.split(','))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(String::from)
        .collect();
    if set.is_empty() && delete.is_empty() {
        return Err(ClientError::Invalid(
            "--alter needs --add-config or --delete-config".to_string(),
        ));
    }
    if kind == ENTITY_USERS {
        return super::users::alter(&mut client, &name, &set, &delete).await;
    }
    client.alter_configs(kind, &name, &set, &delete).await?;
    print(&format!("Completed updating config for {word} {name}.\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Every topic, or every broker id.
async fn all_entities(client: &mut ClusterClient, kind: i8) -> Result<Vec<String>, ClientError> {
    if kind == RESOURCE_BROKER {
        return Ok(client.brokers().keys().map(i32::to_string).collect());
    }
    Ok(client.describe_topics(None).await?.into_keys().collect())
}

/// Kafka's description of one entity's configs: those set on it (every
/// one with `all`), each with its synonyms.
fn describe_text(word: &str, name: &str, entries: &[ConfigEntry], all: bool) -> String {
    let dynamic = if word == "topic" {
        DYNAMIC_TOPIC_CONFIG
    } else {
        DYNAMIC_BROKER_CONFIG
    };
    let label = if all { "All" } else { "Dynamic" };
    let mut text = format!("{label} configs for {word} {name} are:\n");
    for e in entries.iter().filter(|e| all || e.source == dynamic) {
        let synonyms: Vec<String> = e
            .synonyms
            .iter()
            .map(|s| {
                format!(
                    "{}:{}={}",
                    config_source_name(s.source),
                    s.name,
                    s.value.as_deref().unwrap_or("null")
                )
            })
            .collect();
        text.push_str(&format!(
            "  {}={} sensitive={} synonyms={{{}}}\n",
            e.name,
            e.value.as_deref().unwrap_or("null"),
            e.sensitive,
            synonyms.join(", ")
        ));
    }
    text
}

/// `k=v,k2=v2`, where a value in square brackets may hold commas.
fn parse_configs(list: &str) -> Result<Vec<(String, String)>, ClientError> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0u32;
    for c in list.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                let v = v.trim();
                let v = v
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .unwrap_or(v);
                Ok((k.trim().to_string(), v.to_string()))
            }
            _ => Err(ClientError::Invalid(format!(
                "--add-config {item:?} is not name=value"
            ))),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::admin::ConfigSynonym;

    #[test]
    fn add_config_splits_at_commas_outside_brackets() {
        let parsed = parse_configs("retention.ms=1000,cleanup.policy=[compact,delete]").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("retention.ms".to_string(), "1000".to_string()),
                ("cleanup.policy".to_string(), "compact,delete".to_string()),
            ]
        );
        assert!(parse_configs("novalue").is_err());
    }

    #[test]
    fn a_description_lists_the_dynamic_configs_with_synonyms() {
        let entry = |name: &str, source: i8| ConfigEntry {
            name: name.into(),
            value: Some("1".into()),
            source,
            sensitive: false,
            read_only: false,
            synonyms: vec![ConfigSynonym {
                name: name.into(),
                value: Some("1".into()),
                source,
            }],
        };
        let entries = [entry("retention.ms", 1), entry("segment.ms", 5)];
        assert_eq!(
            describe_text("topic", "t", &entries, false),
            "Dynamic configs for topic t are:\n  retention.ms=1 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1}\n"
        );
        assert!(describe_text("topic", "t", &entries, true)
            .starts_with("All configs for topic t are:\n"));
    }
}
