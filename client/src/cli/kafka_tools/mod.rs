//! Kafka's own command-line tools, in Kafka's flags and output format, on
//! the same client as the modern subcommands: `kafka-topics.sh`,
//! `kafka-console-producer.sh`, `kafka-console-consumer.sh`,
//! `kafka-consumer-groups.sh`, `kafka-configs.sh`, `kafka-features.sh` and
//! `kafka-acls.sh`.
//!
//! The binary runs one when its first argument, or the name it was invoked
//! by (a symlink), is one of those names, with or without `.sh`.

mod acls;
mod configs;
mod console_consumer;
mod console_producer;
mod consumer_groups;
mod features;
mod topics;
mod users;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use super::{block_on, ConnectArgs, OutputFormat};
use crate::ClientError;

/// The tools, by their name without `.sh`.
const TOOLS: [&str; 7] = [
    "kafka-topics",
    "kafka-acls",
    "kafka-console-producer",
    "kafka-console-consumer",
    "kafka-consumer-groups",
    "kafka-configs",
    "kafka-features",
];

/// The tool `name` stands for (a program path, a symlink's name or an
/// argument), as its name without `.sh`; `None` when it is none of them.
pub fn kafka_tool_name(name: &str) -> Option<&'static str> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = base.strip_suffix(".sh").unwrap_or(base);
    TOOLS.iter().copied().find(|t| *t == base)
}

/// The Kafka tool a command line runs, with its arguments (program name
/// first): `wharf kafka-topics.sh ARGS`, or the binary run through a symlink
/// named like the tool. `None` for any other command line.
pub fn kafka_tool_invocation(
    args: impl IntoIterator<Item = OsString>,
) -> Option<(&'static str, Vec<OsString>)> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let name_of = |arg: Option<&OsString>| arg.and_then(|a| a.to_str()).and_then(kafka_tool_name);
    if let Some(tool) = name_of(args.first()) {
        return Some((tool, args));
    }
    let tool = name_of(args.get(1))?;
    args.remove(0);
    Some((tool, args))
}

/// Runs Kafka tool `tool` (a name [`kafka_tool_name`] knows) with `args`,
/// the first of which is the program name clap reports in usage.
pub fn run_kafka_tool(tool: &str, args: Vec<OsString>) -> ExitCode {
    if let Some(message) = zookeeper_flag(&args) {
        eprintln!("{message}");
        return ExitCode::FAILURE;
    }
    let name = format!("{tool}.sh");
    let mut args = args;
    if let Some(first) = args.first_mut() {
        *first = OsString::from(&name);
    }
    match tool {
        "kafka-topics" => block_on(topics::run(parse(args))),
        "kafka-console-producer" => block_on(console_producer::run(parse(args))),
        "kafka-console-consumer" => block_on(console_consumer::run(parse(args))),
        "kafka-consumer-groups" => block_on(consumer_groups::run(parse(args))),
        "kafka-configs" => block_on(configs::run(parse(args))),
        "kafka-features" => block_on(features::run(parse(args))),
        "kafka-acls" => block_on(acls::run(parse(args))),
        other => {
            eprintln!("wharf: {other} is not a Kafka tool wharf knows");
            ExitCode::FAILURE
        }
    }
}

/// Parses a tool's flags; on an error (or --help) prints clap's answer
/// and exits.
fn parse<T: Parser>(args: Vec<OsString>) -> T {
    T::try_parse_from(args).unwrap_or_else(|e| e.exit())
}

/// The error for `--zookeeper`, which Kafka 3 removed from these tools.
fn zookeeper_flag(args: &[OsString]) -> Option<String> {
    let used = args.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == "--zookeeper" || a.starts_with("--zookeeper="))
    });
    used.then(|| {
        "Error: --zookeeper is not a recognized option: Kafka 3.0 removed it from its \
         tools, which connect to brokers instead. Use --bootstrap-server host:port."
            .to_string()
    })
}

/// The brokers a tool connects to.
#[derive(Debug, clap::Args)]
struct Bootstrap {
    /// The brokers to bootstrap from: host:port[,host:port...].
    #[arg(
        long = "bootstrap-server",
        env = "WHARF_BOOTSTRAP",
        default_value = "localhost:9092"
    )]
    bootstrap_server: String,
}

impl Bootstrap {
    /// The connection of a tool: its brokers, table output.
    fn connect_args(&self) -> ConnectArgs {
        ConnectArgs {
            bootstrap_server: self.bootstrap_server.clone(),
            output: OutputFormat::Table,
        }
    }
}

/// `name=value`, as `--property` and `--producer-property` take them.
fn parse_property(s: &str) -> Result<(String, String), String> {
    super::parse_key_value(s)
}

/// A `true`/`false` property value.
fn flag_property(name: &str, value: &str) -> Result<bool, ClientError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ClientError::Invalid(format!(
            "property {name} must be true or false, not {value:?}"
        ))),
    }
}

/// Kafka's text of a `printf("%-Ns", s)`: `s` padded with spaces to `width`.
fn pad(s: &str, width: usize) -> String {
    format!("{s:<width$}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_known_with_or_without_sh_and_a_path() {
        assert_eq!(kafka_tool_name("kafka-topics.sh"), Some("kafka-topics"));
        assert_eq!(
            kafka_tool_name("/usr/local/bin/kafka-console-consumer"),
            Some("kafka-console-consumer")
        );
        assert_eq!(kafka_tool_name("wharf"), None);
        assert_eq!(kafka_tool_name("kafka-acls.sh"), Some("kafka-acls"));
        assert_eq!(kafka_tool_name("kafka-features.sh"), Some("kafka-features"));
        assert_eq!(kafka_tool_name("kafka-storage.sh"), None);
    }

    #[test]
    fn a_tool_runs_by_its_program_name_or_as_the_first_argument() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (tool, rest) =
            kafka_tool_invocation(args(&["/bin/kafka-configs", "--describe"])).unwrap();
        assert_eq!(
            (tool, rest),
            ("kafka-configs", args(&["/bin/kafka-configs", "--describe"]))
        );
        let (tool, rest) =
            kafka_tool_invocation(args(&["wharf", "kafka-topics.sh", "--list"])).unwrap();
        assert_eq!(
            (tool, rest),
            ("kafka-topics", args(&["kafka-topics.sh", "--list"]))
        );
        assert!(kafka_tool_invocation(args(&["wharf", "topic", "list"])).is_none());
        assert!(kafka_tool_invocation(args(&["wharf"])).is_none());
    }

    #[test]
    fn the_zookeeper_flag_is_refused_in_either_spelling() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(zookeeper_flag(&args(&["x", "--zookeeper", "zk:2181"])).is_some());
        assert!(zookeeper_flag(&args(&["x", "--zookeeper=zk:2181"])).is_some());
        assert!(zookeeper_flag(&args(&["x", "--bootstrap-server", "b:9092"])).is_none());
    }
}
