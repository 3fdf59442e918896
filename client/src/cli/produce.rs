//! `wharf produce TOPIC`: one record per line of stdin or a file.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use wharf_protocol::compression::Compression;

use super::output::{print, print_json};
use super::{parse_key_value, ConnectArgs, OutputFormat};
use crate::producer::{OutgoingRecord, Producer, ProducerConfig};
use crate::ClientError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Acks {
    /// Wait for every in-sync replica.
    All,
    /// Wait for the leader.
    #[value(name = "1")]
    Leader,
    /// Do not wait.
    #[value(name = "0")]
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The topic to write to (it must exist).
    pub topic: String,
    /// Split each line at the first SEP into key and value (lines without
    /// it are keyless).
    #[arg(long = "key-separator", value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Acknowledgements to wait for.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    /// Codec of the record batches.
    #[arg(long, value_enum, default_value_t = Codec::None)]
    pub compression: Codec,
    /// Write every record to this partition instead of partitioning.
    #[arg(long)]
    pub partition: Option<i32>,
    /// A header on every record, key=value (repeatable).
    #[arg(long = "header", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Read records from this file instead of stdin.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// How long a record may wait for its batch to fill, in ms (linger.ms).
    #[arg(long = "linger-ms", default_value_t = 5)]
    pub linger_ms: u64,
    /// Bytes of records after which a partition's batch is sent (batch.size).
    #[arg(long = "batch-size", default_value_t = 16384)]
    pub batch_size: usize,
    /// Produce idempotently: a producer id and sequence numbers, so that a
    /// batch sent again is written once (the default with --acks all).
    #[arg(long, conflicts_with = "no_idempotence")]
    pub idempotent: bool,
    /// Produce without a producer id (retries may write a batch twice).
    #[arg(long = "no-idempotence")]
    pub no_idempotence: bool,
}

pub async fn run(args: ProduceArgs) -> Result<ExitCode, ClientError> {
    let input: Box<dyn AsyncRead + Unpin> =
        match &args.file {
            Some(path) => Box::new(tokio::fs::File::open(path).await.map_err(|source| {
                ClientError::Local {
                    what: format!("could not open {}", path.display()),
                    source,
                }
            })?),
            None => Box::new(tokio::io::stdin()),
        };
    if args.idempotent && args.acks != Acks::All {
        return Err(ClientError::Invalid(
            "--idempotent needs --acks all".to_string(),
        ));
    }
    let mut client = args.connect.connect().await?;
    let config = ProducerConfig {
        idempotent: args.acks == Acks::All && !args.no_idempotence,
        acks: match args.acks {
            Acks::All => -1,
            Acks::Leader => 1,
            Acks::None => 0,
        },
        compression: match args.compression {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        },
        linger: Duration::from_millis(args.linger_ms),
        batch_size: args.batch_size.max(1),
        ..ProducerConfig::default()
    };
    let mut producer = Producer::new(&mut client, &args.topic, config).await?;
    if let Some(p) = args.partition {
        if !(0..producer.partition_count()).contains(&p) {
            return Err(ClientError::Invalid(format!(
                "partition {p} does not exist: topic '{}' has {} partitions",
                args.topic,
                producer.partition_count()
            )));
        }
    }
    let headers: Vec<(Vec<u8>, Option<Vec<u8>>)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec())))
        .collect();

    let mut lines = BufReader::new(input).split(b'\n');
    let mut line_number = 0u64;
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    loop {
        progress.tick(line_number, &producer);
        let next = match producer.linger_deadline() {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline.into(), lines.next_segment()).await {
                    Ok(next) => next,
                    Err(_) => {
                        producer.flush(&mut client).await;
                        continue;
                    }
                }
            }
            None => lines.next_segment().await,
        };
        let line = match next {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(source) => {
                producer.flush(&mut client).await;
                progress.finish(line_number, &producer);
                report(&producer);
                return Err(ClientError::Local {
                    what: "could not read the input".to_string(),
                    source,
                });
            }
        };
        line_number += 1;
        let mut line = line;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let (key, value) = split_key(&line, args.key_separator.as_deref());
        let record = OutgoingRecord {
            id: line_number,
            key,
            value: Some(value),
            headers: headers.clone(),
            partition: args.partition,
            timestamp: now_ms(),
        };
        producer.send(&mut client, record).await?;
    }
    producer.flush(&mut client).await;
    progress.finish(line_number, &producer);
    report(&producer);
    let delivered = producer.deliveries.len();
    let failed = producer.failures.len();
    if args.connect.output == OutputFormat::Json {
        let deliveries: Vec<_> = producer
            .deliveries
            .iter()
            .map(|d| json!({ "line": d.id, "partition": d.partition, "offset": d.offset }))
            .collect();
        let failures: Vec<_> = producer
            .failures
            .iter()
            .map(
                |f| json!({ "line": f.id, "partition": f.partition, "error": f.error.to_string() }),
            )
            .collect();
        print_json(&json!({
            "topic": args.topic,
            "delivered": delivered,
            "failed": failed,
            "records": deliveries,
            "failures": failures,
        }))?;
    } else if failed > 0 {
        print(&format!("{delivered} records written, {failed} failed\n"))?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Progress of a long run on stderr, when it is a terminal: one line
/// redrawn in place at most four times a second, from the first second on.
struct Progress {
    enabled: bool,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    const FIRST: Duration = Duration::from_secs(1);
    const EVERY: Duration = Duration::from_millis(250);

    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            started: Instant::now(),
            drawn: None,
        }
    }

    /// Whether the line is due to be (re)drawn.
    fn due(&self) -> bool {
        self.enabled
            && match self.drawn {
                Some(at) => at.elapsed() >= Self::EVERY,
                None => self.started.elapsed() >= Self::FIRST,
            }
    }

    /// Redraws the line if it is time to.
    fn tick(&mut self, read: u64, producer: &Producer) {
        if self.due() {
            self.draw(read, producer, "");
        }
    }

    /// The last state, with a newline, if the line was ever drawn.
    fn finish(&mut self, read: u64, producer: &Producer) {
        if self.enabled && self.drawn.is_some() {
            self.draw(read, producer, "\n");
        }
    }

    fn draw(&mut self, read: u64, producer: &Producer, end: &str) {
        let line = progress_line(
            read,
            producer.deliveries.len(),
            producer.failures.len(),
            self.started.elapsed(),
        );
        // Carriage return, the line, then clear what a longer line left.
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K{end}");
        let _ = err.flush();
        self.drawn = Some(Instant::now());
    }
}

/// `12000 records read, 11800 acknowledged (5900/s)`, and the failures if any.
fn progress_line(read: u64, acknowledged: usize, failed: usize, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        (acknowledged as f64 / seconds).round()
    } else {
        0.0
    };
    let mut line = format!("{read} records read, {acknowledged} acknowledged ({rate}/s)");
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    line
}

/// Prints each failed record to stderr.
fn report(producer: &Producer) {
    for f in &producer.failures {
        eprintln!(
            "wharf: record of line {} (partition {}) failed: {}",
            f.id, f.partition, f.error
        );
    }
}

/// Key and value of a line: split at the first `separator`, or keyless.
fn split_key(line: &[u8], separator: Option<&str>) -> (Option<Vec<u8>>, Vec<u8>) {
    let Some(sep) = separator.map(str::as_bytes).filter(|s| !s.is_empty()) else {
        return (None, line.to_vec());
    };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(at) => (
            Some(line.get(..at).unwrap_or_default().to_vec()),
            line.get(at + sep.len()..).unwrap_or_default().to_vec(),
        ),
        None => (None, line.to_vec()),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_counts_records_and_their_rate() {
        assert_eq!(
            progress_line(12_000, 11_800, 0, Duration::from_secs(2)),
            "12000 records read, 11800 acknowledged (5900/s)"
        );
        assert_eq!(
            progress_line(10, 7, 3, Duration::ZERO),
            "10 records read, 7 acknowledged (0/s), 3 failed"
        );
    }

    #[test]
    fn progress_is_drawn_on_a_terminal_only_after_a_second_then_four_times_a_second() {
        let second_ago = Instant::now() - Duration::from_millis(1100);
        let mut p = Progress::new(false);
        p.started = second_ago;
        assert!(!p.due(), "never when stderr is not a terminal");
        let mut p = Progress::new(true);
        assert!(!p.due(), "not in the first second");
        p.started = second_ago;
        assert!(p.due());
        p.drawn = Some(Instant::now());
        assert!(!p.due(), "not right after a redraw");
        p.drawn = Some(Instant::now() - Duration::from_millis(300));
        assert!(p.due());
    }

    #[test]
    fn a_line_splits_at_the_first_separator() {
        assert_eq!(
            split_key(b"k:v:w", Some(":")),
            (Some(b"k".to_vec()), b"v:w".to_vec())
        );
        assert_eq!(
            split_key(b"novalue", Some(":")),
            (None, b"novalue".to_vec())
        );
        assert_eq!(
            split_key(b"k::v", Some("::")),
            (Some(b"k".to_vec()), b"v".to_vec())
        );
        assert_eq!(split_key(b"k:v", None), (None, b"k:v".to_vec()));
    }
}
