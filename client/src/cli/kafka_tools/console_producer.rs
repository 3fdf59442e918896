//! `kafka-console-producer.sh`: one record per line of stdin, through
//! `wharf produce`.

use std::process::ExitCode;

use clap::Parser;

use super::{flag_property, parse_property};
use crate::cli::produce::{self, Acks, Codec, ProduceArgs};
use crate::cli::{ConnectArgs, OutputFormat};
use crate::ClientError;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-console-producer.sh",
    version,
    about = "Write lines of stdin as records (Kafka's kafka-console-producer.sh flags)"
)]
pub struct ConsoleProducerArgs {
    /// The brokers (--broker-list is the old name of the same).
    #[command(flatten)]
    bootstrap: BrokerList,
    /// The topic to write to.
    #[arg(long, required = true)]
    topic: String,
    /// A line reader property: parse.key=true, key.separator=SEP,
    /// ignore.error=true (repeatable).
    #[arg(long = "property", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// A producer config: acks, compression.type, linger.ms, batch.size,
    /// enable.idempotence; others are ignored with a warning (repeatable).
    #[arg(long = "producer-property", value_parser = parse_property)]
    producer_properties: Vec<(String, String)>,
    /// Acknowledgements to wait for: -1 (all), 1 or 0.
    #[arg(long = "request-required-acks", allow_hyphen_values = true)]
    request_required_acks: Option<String>,
    /// none, gzip, snappy, lz4 or zstd (gzip when given without a value).
    #[arg(long = "compression-codec", num_args = 0..=1, default_missing_value = "gzip")]
    compression_codec: Option<String>,
    /// Linger time of a batch in ms.
    #[arg(long)]
    timeout: Option<u64>,
    /// Records per batch (approximated in bytes: 1 KiB per record).
    #[arg(long = "batch-size")]
    batch_size: Option<usize>,
    /// Accepted for compatibility; sends are always acknowledged in order.
    #[arg(long)]
    sync: bool,
}

/// `--bootstrap-server` or its old name `--broker-list`.
#[derive(Debug, clap::Args)]
struct BrokerList {
    #[arg(
        long = "bootstrap-server",
        visible_alias = "broker-list",
        env = "WHARF_BOOTSTRAP",
        default_value = "localhost:9092"
    )]
    bootstrap_server: String,
}

pub async fn run(args: ConsoleProducerArgs) -> Result<ExitCode, ClientError> {
    let connect = ConnectArgs {
        bootstrap_server: args.bootstrap.bootstrap_server.clone(),
        output: OutputFormat::Table,
    };
    let mut produce = ProduceArgs {
        connect,
        topic: args.topic.clone(),
        key_separator: None,
        acks: Acks::All,
        compression: Codec::None,
        partition: None,
        headers: Vec::new(),
        file: None,
        linger_ms: args.timeout.unwrap_or(1000),
        batch_size: args.batch_size.map_or(16384, |n| n.saturating_mul(1024)),
        idempotent: false,
        no_idempotence: false,
    };
    let mut parse_key = false;
    let mut separator = "\t".to_string();
    for (name, value) in &args.properties {
        match name.as_str() {
            "parse.key" => parse_key = flag_property(name, value)?,
            "key.separator" => separator = value.clone(),
            "ignore.error" => {}
            other => {
                return Err(ClientError::Invalid(format!(
                    "--property {other} is not supported (supported: parse.key, key.separator, ignore.error)"
                )))
            }
        }
    }
    if parse_key {
        produce.key_separator = Some(separator);
    }
    if let Some(acks) = &args.request_required_acks {
        produce.acks = parse_acks(acks)?;
    }
    if let Some(codec) = &args.compression_codec {
        produce.compression = parse_codec(codec)?;
    }
    for (name, value) in &args.producer_properties {
        match name.as_str() {
            "acks" => produce.acks = parse_acks(value)?,
            "compression.type" => produce.compression = parse_codec(value)?,
            "linger.ms" => produce.linger_ms = parse_number(name, value)?,
            "batch.size" => produce.batch_size = parse_number(name, value)?,
            "enable.idempotence" => {
                let on = flag_property(name, value)?;
                produce.idempotent = on;
                produce.no_idempotence = !on;
            }
            other => eprintln!("WARN: producer property {other} is ignored by wharf"),
        }
    }
    produce::run(produce).await
}

fn parse_acks(value: &str) -> Result<Acks, ClientError> {
    match value.trim() {
        "all" | "-1" => Ok(Acks::All),
        "1" => Ok(Acks::Leader),
        "0" => Ok(Acks::None),
        other => Err(ClientError::Invalid(format!(
            "acks must be all, -1, 1 or 0, not {other:?}"
        ))),
    }
}

fn parse_codec(value: &str) -> Result<Codec, ClientError> {
    match value.trim() {
        "none" => Ok(Codec::None),
        "gzip" => Ok(Codec::Gzip),
        "snappy" => Ok(Codec::Snappy),
        "lz4" => Ok(Codec::Lz4),
        "zstd" => Ok(Codec::Zstd),
        other => Err(ClientError::Invalid(format!(
            "compression codec must be none, gzip, snappy, lz4 or zstd, not {other:?}"
        ))),
    }
}

fn parse_number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ClientError> {
    value
        .trim()
        .parse()
        .map_err(|_| ClientError::Invalid(format!("{name} must be a number, not {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_and_codecs_take_kafkas_spellings() {
        assert_eq!(parse_acks("all").ok(), Some(Acks::All));
        assert_eq!(parse_acks("-1").ok(), Some(Acks::All));
        assert_eq!(parse_acks("0").ok(), Some(Acks::None));
        assert!(parse_acks("2").is_err());
        assert_eq!(parse_codec("zstd").ok(), Some(Codec::Zstd));
        assert!(parse_codec("brotli").is_err());
    }
}
