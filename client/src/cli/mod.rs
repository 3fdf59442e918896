//! The client half of the `wharf` command line: `wharf topic`, `produce`,
//! `consume`, `group`, `cluster`, `config`, and `faults` (which talks to a
//! broker's fault-injection admin listener). The binary parses these
//! with clap and hands them to [`run`].

mod acl;
mod cluster;
mod config;
mod consume;
mod faults;
mod group;
mod health;
mod kafka_tools;
mod output;
mod produce;
mod time;
mod topic;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::cluster_client::{parse_bootstrap, ClusterClient, RetryPolicy};
use crate::{ClientError, ConnectionOptions};

pub use acl::{AclArgs, AclCommand};
pub use cluster::{ClusterArgs, ClusterCommand};
pub use config::{ConfigArgs, ConfigCommand};
pub use consume::ConsumeArgs;
pub use faults::{FaultsArgs, FaultsCommand};
pub use group::{GroupArgs, GroupCommand};
pub use health::HealthArgs;
pub use kafka_tools::{kafka_tool_invocation, kafka_tool_name, run_kafka_tool};
pub use produce::ProduceArgs;
pub use topic::{TopicArgs, TopicCommand};

/// The client subcommands of `wharf`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create, list, describe, alter and delete topics.
    Topic(TopicArgs),
    /// Write records read from stdin or a file, one per line.
    Produce(ProduceArgs),
    /// Print the records of a topic.
    Consume(ConsumeArgs),
    /// List, describe and delete consumer groups; reset and delete their offsets.
    Group(GroupArgs),
    /// Describe the cluster and check its health.
    Cluster(ClusterArgs),
    /// Describe and alter topic and broker configs.
    Config(ConfigArgs),
    /// Add, list and remove ACLs.
    Acl(AclArgs),
    /// Exit 0 when the broker answers (an ApiVersions round trip), else 1:
    /// for container health checks.
    Health(HealthArgs),
    /// Make a running broker fail, delay or drop chosen requests, through
    /// its admin listener (`wharf serve --admin-listen`).
    Faults(FaultsArgs),
}

/// How output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns, for people.
    Table,
    /// JSON, for scripts.
    Json,
}

/// Flags every client subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Brokers to bootstrap from: host:port[,host:port...].
    #[arg(
        long = "bootstrap-server",
        env = "WHARF_BOOTSTRAP",
        default_value = "localhost:9092",
        global = true
    )]
    pub bootstrap_server: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
}

impl ConnectArgs {
    /// Connects to the cluster, or says in plain words why it could not.
    pub async fn connect(&self) -> Result<ClusterClient, ClientError> {
        let bootstrap = parse_bootstrap(&self.bootstrap_server)?;
        let options = ConnectionOptions {
            client_id: "wharf-cli".to_string(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(35),
            ..ConnectionOptions::default()
        };
        ClusterClient::connect(bootstrap, options, RetryPolicy::default()).await
    }
}

/// Runs a client subcommand to completion; the exit code says how it went
/// (errors are printed to stderr in plain words).
pub fn run(command: ClientCommand) -> ExitCode {
    block_on(async move {
        match command {
            ClientCommand::Topic(args) => topic::run(args).await,
            ClientCommand::Produce(args) => produce::run(args).await,
            ClientCommand::Consume(args) => consume::run(args).await,
            ClientCommand::Group(args) => group::run(args).await,
            ClientCommand::Cluster(args) => cluster::run(args).await,
            ClientCommand::Config(args) => config::run(args).await,
            ClientCommand::Acl(args) => acl::run(args).await,
            ClientCommand::Health(args) => health::run(args).await,
            ClientCommand::Faults(args) => faults::run(args).await,
        }
    })
}

/// Runs a command on a single-threaded runtime; an error is printed to
/// stderr and exits 1.
fn block_on(command: impl std::future::Future<Output = Result<ExitCode, ClientError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wharf: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wharf: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `key=value`.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}
