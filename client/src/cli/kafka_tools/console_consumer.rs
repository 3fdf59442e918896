//! `kafka-console-consumer.sh`: prints a topic's records, through
//! `wharf consume`, in the format of Kafka's default message formatter.

use std::process::ExitCode;

use clap::Parser;

use super::{flag_property, parse_property, Bootstrap};
use crate::assignor::Assignor;
use crate::cli::consume::{self, ConsumeArgs, Isolation};
use crate::ClientError;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-console-consumer.sh",
    version,
    about = "Print the records of a topic (Kafka's kafka-console-consumer.sh flags)"
)]
pub struct ConsoleConsumerArgs {
    #[command(flatten)]
    bootstrap: Bootstrap,
    /// The topic to read.
    #[arg(long, required = true)]
    topic: String,
    /// Start at the earliest offset when there is no committed one.
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// Consume as a member of this group.
    #[arg(long)]
    group: Option<String>,
    /// Exit after this many records.
    #[arg(long = "max-messages")]
    max_messages: Option<u64>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Where to start in --partition: earliest, latest or an offset.
    #[arg(long, allow_hyphen_values = true)]
    offset: Option<String>,
    /// How records print: print.key, print.value, print.partition,
    /// print.offset, print.timestamp (true/false), key.separator,
    /// null.literal (repeatable).
    #[arg(long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// A consumer config: group.id, isolation.level, auto.offset.reset,
    /// partition.assignment.strategy; others are ignored with a warning
    /// (repeatable).
    #[arg(long = "consumer-property", value_parser = parse_property)]
    consumer_properties: Vec<(String, String)>,
    /// read_uncommitted or read_committed.
    #[arg(long = "isolation-level")]
    isolation_level: Option<String>,
    /// Exit when no record arrives for this long, in ms.
    #[arg(long = "timeout-ms")]
    timeout_ms: Option<u64>,
    /// Only kafka.tools.DefaultMessageFormatter (the default) is supported.
    #[arg(long)]
    formatter: Option<String>,
    /// Accepted for compatibility.
    #[arg(long = "skip-message-on-error")]
    skip_message_on_error: bool,
}

pub async fn run(args: ConsoleConsumerArgs) -> Result<ExitCode, ClientError> {
    if let Some(f) = args.formatter.as_deref() {
        if !f.ends_with("DefaultMessageFormatter") {
            return Err(ClientError::Invalid(format!(
                "--formatter {f} is not supported; only the default message formatter is"
            )));
        }
    }
    let mut group = args.group.clone();
    let mut isolation = args.isolation_level.clone();
    let mut from_beginning = args.from_beginning;
    // Java's default partition.assignment.strategy.
    let mut assignor = vec![Assignor::Range, Assignor::CooperativeSticky];
    for (name, value) in &args.consumer_properties {
        match name.as_str() {
            "partition.assignment.strategy" => {
                assignor = value
                    .split(',')
                    .map(assignor_named)
                    .collect::<Result<_, _>>()?;
            }
            "group.id" => group = Some(value.clone()),
            "isolation.level" => isolation = Some(value.clone()),
            "auto.offset.reset" => from_beginning = value == "earliest",
            other => eprintln!("WARN: consumer property {other} is ignored by wharf"),
        }
    }
    let isolation = match isolation.as_deref() {
        None | Some("read_uncommitted") => Isolation::ReadUncommitted,
        Some("read_committed") => Isolation::ReadCommitted,
        Some(other) => {
            return Err(ClientError::Invalid(format!(
                "--isolation-level must be read_committed or read_uncommitted, not {other:?}"
            )))
        }
    };
    let mut offset = None;
    if let Some(o) = args.offset.as_deref() {
        if args.partition.is_none() {
            return Err(ClientError::Invalid(
                "The partition is required when offset is specified.".to_string(),
            ));
        }
        match o {
            "earliest" => from_beginning = true,
            "latest" => {}
            n => {
                let n: i64 = n.parse().map_err(|_| {
                    ClientError::Invalid(format!(
                        "--offset must be earliest, latest or a number, not {n:?}"
                    ))
                })?;
                if n < 0 {
                    return Err(ClientError::Invalid(format!("--offset {n} is negative")));
                }
                offset = Some(n);
            }
        }
        if args.from_beginning {
            return Err(ClientError::Invalid(
                "Options from-beginning and offset cannot be specified together.".to_string(),
            ));
        }
    }
    if group.is_some() && args.partition.is_some() {
        return Err(ClientError::Invalid(
            "Options group and partition cannot be specified together.".to_string(),
        ));
    }
    let print = PrintProperties::from(&args.properties)?;
    let consume = ConsumeArgs {
        connect: args.bootstrap.connect_args(),
        topic: args.topic.clone(),
        from_beginning: from_beginning && offset.is_none(),
        offset,
        offset_time: None,
        partition: args.partition,
        max_messages: args.max_messages,
        timeout_ms: args.timeout_ms,
        isolation,
        format: Some(print.format()),
        print_key: false,
        group,
        assignor,
        null_literal: print.null_literal.clone(),
    };
    consume::run(consume).await
}

/// The assignor of one entry of a partition.assignment.strategy list: a
/// protocol name or the Java class name of the assignor.
fn assignor_named(value: &str) -> Result<Assignor, ClientError> {
    let name = value.trim().rsplit('.').next().unwrap_or_default();
    match name {
        "range" | "RangeAssignor" => Ok(Assignor::Range),
        "cooperative-sticky" | "CooperativeStickyAssignor" => Ok(Assignor::CooperativeSticky),
        _ => Err(ClientError::Invalid(format!(
            "partition.assignment.strategy {value:?} is not supported: use range or cooperative-sticky"
        ))),
    }
}

/// What Kafka's default message formatter prints of each record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PrintProperties {
    timestamp: bool,
    partition: bool,
    offset: bool,
    key: bool,
    value: bool,
    separator: String,
    null_literal: String,
}

impl PrintProperties {
    fn from(properties: &[(String, String)]) -> Result<Self, ClientError> {
        let mut p = PrintProperties {
            timestamp: false,
            partition: false,
            offset: false,
            key: false,
            value: true,
            separator: "\t".to_string(),
            null_literal: "null".to_string(),
        };
        for (name, value) in properties {
            match name.as_str() {
                "print.timestamp" => p.timestamp = flag_property(name, value)?,
                "print.partition" => p.partition = flag_property(name, value)?,
                "print.offset" => p.offset = flag_property(name, value)?,
                "print.key" => p.key = flag_property(name, value)?,
                "print.value" => p.value = flag_property(name, value)?,
                "key.separator" => p.separator = value.clone(),
                "null.literal" => p.null_literal = value.clone(),
                other => {
                    return Err(ClientError::Invalid(format!(
                        "--property {other} is not supported (supported: print.key, print.value, \
                         print.partition, print.offset, print.timestamp, key.separator, null.literal)"
                    )))
                }
            }
        }
        Ok(p)
    }

    /// The `wharf consume --format` that prints the same: the fields asked
    /// for in Kafka's order, separated by key.separator.
    fn format(&self) -> String {
        let fields = [
            (self.timestamp, "CreateTime:%T"),
            (self.partition, "Partition:%p"),
            (self.offset, "Offset:%o"),
            (self.key, "%k"),
            (self.value, "%v"),
        ];
        let separator = self.separator.replace('\\', "\\\\").replace('%', "%%");
        let shown: Vec<&str> = fields
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| *f)
            .collect();
        format!("{}\\n", shown.join(&separator))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn assignment_strategies_are_named_as_in_java_or_by_protocol() {
        let java = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor";
        assert_eq!(assignor_named(java).unwrap(), Assignor::CooperativeSticky);
        assert_eq!(assignor_named("range").unwrap(), Assignor::Range);
        assert!(assignor_named("roundrobin").is_err());
        assert_eq!(
            assignor_named(" cooperative-sticky").unwrap(),
            Assignor::CooperativeSticky
        );
    }

    fn props(list: &[(&str, &str)]) -> PrintProperties {
        let owned: Vec<(String, String)> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PrintProperties::from(&owned).unwrap()
    }

    #[test]
    fn print_properties_choose_fields_in_kafkas_order() {
        assert_eq!(props(&[]).format(), "%v\\n");
        assert_eq!(
            props(&[("print.key", "true"), ("key.separator", ":")]).format(),
            "%k:%v\\n"
        );
        assert_eq!(
            props(&[
                ("print.offset", "true"),
                ("print.partition", "true"),
                ("print.timestamp", "true"),
                ("key.separator", "%"),
            ])
            .format(),
            "CreateTime:%T%%Partition:%p%%Offset:%o%%%v\\n"
        );
    }

    #[test]
    fn unknown_print_properties_are_refused() {
        let owned = vec![("print.headers".to_string(), "true".to_string())];
        assert!(PrintProperties::from(&owned).is_err());
    }
}
