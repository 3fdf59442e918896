//! `kafka-features.sh`: describe the cluster's feature flags (KIP-584),
//! upgrade, downgrade or disable them, in Kafka's flags and output.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{ApiVersionsRequest, UpdateFeaturesRequest};
use kafka_protocol::protocol::StrBytes;

use crate::cli::output::print;
use crate::cli::{ConnectArgs, OutputFormat};
use crate::ClientError;

/// `metadata.version` levels by Kafka release name (Kafka's
/// `MetadataVersion`, from the lowest KRaft bootstrap level).
const METADATA_VERSIONS: [(i16, &str); 21] = [
    (7, "3.3-IV3"),
    (8, "3.4-IV0"),
    (9, "3.5-IV0"),
    (10, "3.5-IV1"),
    (11, "3.5-IV2"),
    (12, "3.6-IV0"),
    (13, "3.6-IV1"),
    (14, "3.6-IV2"),
    (15, "3.7-IV0"),
    (16, "3.7-IV1"),
    (17, "3.7-IV2"),
    (18, "3.7-IV3"),
    (19, "3.7-IV4"),
    (20, "3.8-IV0"),
    (21, "3.9-IV0"),
    (22, "4.0-IV0"),
    (23, "4.0-IV1"),
    (24, "4.0-IV2"),
    (25, "4.0-IV3"),
    (26, "4.1-IV0"),
    (27, "4.1-IV1"),
];

const METADATA_VERSION: &str = "metadata.version";

/// UpdateFeatures' upgrade types.
const UPGRADE: i8 = 1;
const SAFE_DOWNGRADE: i8 = 2;
const UNSAFE_DOWNGRADE: i8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-features.sh",
    version,
    about = "Describe and change the cluster's feature flags (Kafka's kafka-features.sh)"
)]
pub struct FeaturesArgs {
    /// The brokers to bootstrap from: host:port[,host:port...].
    #[arg(
        long = "bootstrap-server",
        env = "WHARF_BOOTSTRAP",
        default_value = "localhost:9092",
        global = true
    )]
    bootstrap_server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Each feature: the levels the brokers support and the finalized one.
    Describe,
    /// Raise features' finalized levels.
    Upgrade(Change),
    /// Lower features' finalized levels.
    Downgrade(Downgrade),
    /// Set features to level 0.
    Disable(Disable),
}

#[derive(Debug, clap::Args)]
struct Change {
    /// A feature and its new level: name=level (repeatable).
    #[arg(long = "feature")]
    feature: Vec<String>,
    /// The new metadata.version, as a release (4.1-IV1) or a level.
    #[arg(long)]
    metadata: Option<String>,
    /// Decide and report, but change nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
}

#[derive(Debug, clap::Args)]
struct Downgrade {
    #[command(flatten)]
    change: Change,
    /// Allow a downgrade that may lose metadata.
    #[arg(long)]
    r#unsafe: bool,
}

#[derive(Debug, clap::Args)]
struct Disable {
    /// A feature to disable (repeatable).
    #[arg(long = "feature")]
    feature: Vec<String>,
    /// Allow a downgrade that may lose metadata.
    #[arg(long)]
    r#unsafe: bool,
    /// Decide and report, but change nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
}

/// How a level shows: metadata.version by its release name.
fn level_text(feature: &str, level: i16) -> String {
    if feature == METADATA_VERSION {
        if let Some((_, name)) = METADATA_VERSIONS.iter().find(|(l, _)| *l == level) {
            return (*name).to_string();
        }
    }
    level.to_string()
}

/// A `--metadata` value: a release (4.1 means its last IV) or a level.
fn metadata_level(text: &str) -> Result<i16, ClientError> {
    if let Ok(level) = text.parse::<i16>() {
        return Ok(level);
    }
    let exact = METADATA_VERSIONS.iter().find(|(_, name)| *name == text);
    let release = METADATA_VERSIONS
        .iter()
        .rev()
        .find(|(_, name)| name.split('-').next() == Some(text));
    exact
        .or(release)
        .map(|(level, _)| *level)
        .ok_or_else(|| ClientError::Invalid(format!("Unsupported metadata.version {text}")))
}

/// `name=level` pairs, then `--metadata`.
fn parse_changes(change: &Change) -> Result<Vec<(String, i16)>, ClientError> {
    let mut out = Vec::new();
    for item in &change.feature {
        let (name, level) = item
            .split_once('=')
            .ok_or_else(|| ClientError::Invalid(format!("--feature {item:?} is not name=level")))?;
        let level = level.trim().parse::<i16>().map_err(|_| {
            ClientError::Invalid(format!("--feature {item:?}: the level is not a number"))
        })?;
        out.push((name.trim().to_string(), level));
    }
    if let Some(metadata) = &change.metadata {
        out.push((METADATA_VERSION.to_string(), metadata_level(metadata)?));
    }
    if out.is_empty() {
        return Err(ClientError::Invalid(
            "name at least one --feature (or --metadata)".to_string(),
        ));
    }
    Ok(out)
}

pub async fn run(args: FeaturesArgs) -> Result<ExitCode, ClientError> {
    let connect = ConnectArgs {
        bootstrap_server: args.bootstrap_server.clone(),
        output: OutputFormat::Table,
    };
    let mut client = connect.connect().await?;
    let (changes, kind, dry_run, verb) = match &args.command {
        Command::Describe => {
            let response = client.call_any(&ApiVersionsRequest::default()).await?;
            let mut text = String::new();
            let mut supported: Vec<_> = response.supported_features.iter().collect();
            supported.sort_by(|a, b| a.name.cmp(&b.name));
            for f in supported {
                let name = f.name.to_string();
                let finalized = response
                    .finalized_features
                    .iter()
                    .find(|x| x.name == f.name)
                    .map_or(0, |x| x.max_version_level);
                text.push_str(&format!(
                    "Feature: {name}\tSupportedMinVersion: {}\tSupportedMaxVersion: {}\tFinalizedVersionLevel: {}\tEpoch: {}\n",
                    level_text(&name, f.min_version),
                    level_text(&name, f.max_version),
                    level_text(&name, finalized),
                    response.finalized_features_epoch
                ));
            }
            print(&text)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Upgrade(change) => (parse_changes(change)?, UPGRADE, change.dry_run, "upgrade"),
        Command::Downgrade(d) => (
            parse_changes(&d.change)?,
            if d.r#unsafe {
                UNSAFE_DOWNGRADE
            } else {
                SAFE_DOWNGRADE
            },
            d.change.dry_run,
            "downgrade",
        ),
        Command::Disable(d) => {
            if d.feature.is_empty() {
                return Err(ClientError::Invalid(
                    "name at least one --feature to disable".to_string(),
                ));
            }
            let changes = d
                .feature
                .iter()
                .map(|f| (f.trim().to_string(), 0))
                .collect();
            let kind = if d.r#unsafe {
                UNSAFE_DOWNGRADE
            } else {
                SAFE_DOWNGRADE
            };
            (changes, kind, d.dry_run, "disable")
        }
    };
    let mut request = UpdateFeaturesRequest::default();
    request.timeout_ms = 60_000;
    request.validate_only = dry_run;
    request.feature_updates = changes
        .iter()
        .map(|(name, level)| {
            let mut u = FeatureUpdateKey::default();
            u.feature = StrBytes::from_string(name.clone());
            u.max_version_level = *level;
            // Wharf and Kafka 3+ serve v1+, where the upgrade type says it.
            u.upgrade_type = kind;
            u
        })
        .collect();
    let response = client.call_controller(&request).await?;
    let mut text = String::new();
    let mut failed = 0;
    for (name, level) in &changes {
        let shown = level_text(name, *level);
        // Wharf's controller decides all updates or none: the top-level
        // error is every feature's (v2 answers with no per-feature results).
        let error = response
            .results
            .iter()
            .find(|r| r.feature.as_str() == name.as_str())
            .map_or((response.error_code, &response.error_message), |r| {
                (r.error_code, &r.error_message)
            });
        // "upgraded to 1", "downgraded to 0", "disabled".
        let target = if verb == "disable" {
            "disabled".to_string()
        } else {
            format!("{verb}d to {shown}")
        };
        match error {
            (0, _) if dry_run => text.push_str(&format!("{name} can be {target}.\n")),
            (0, _) => text.push_str(&format!("{name} was {target}.\n")),
            (_, message) => {
                failed += 1;
                let message = message
                    .as_deref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let what = if verb == "disable" {
                    format!("disable {name}")
                } else {
                    format!("{verb} {name} to {shown}")
                };
                text.push_str(&format!("Could not {what}. {message}\n"));
            }
        }
    }
    print(&text)?;
    if failed > 0 {
        eprintln!("{failed} out of {} operation(s) failed.", changes.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn metadata_versions_read_as_releases_and_levels() {
        assert_eq!(metadata_level("4.1-IV1").unwrap(), 27);
        assert_eq!(metadata_level("4.1").unwrap(), 27);
        assert_eq!(metadata_level("3.3").unwrap(), 7);
        assert_eq!(metadata_level("21").unwrap(), 21);
        assert!(metadata_level("2.8").is_err());
        assert_eq!(level_text(METADATA_VERSION, 27), "4.1-IV1");
        assert_eq!(level_text("group.version", 1), "1");
    }

    #[test]
    fn changes_are_name_equals_level() {
        let change = Change {
            feature: vec!["group.version=1".into()],
            metadata: Some("4.1".into()),
            dry_run: false,
        };
        assert_eq!(
            parse_changes(&change).unwrap(),
            vec![
                ("group.version".to_string(), 1),
                (METADATA_VERSION.to_string(), 27)
            ]
        );
        let bad = Change {
            feature: vec!["group.version".into()],
            metadata: None,
            dry_run: false,
        };
        assert!(parse_changes(&bad).is_err());
    }
}
