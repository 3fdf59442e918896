//! `wharf consume TOPIC`: prints records, kcat-like.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::output::print;
use super::{ConnectArgs, OutputFormat};
use crate::assignor::Assignor;
use crate::consumer::{ConsumedRecord, Consumer, ConsumerConfig, StartAt};
use crate::group_member::{GroupMember, Heartbeat, MemberConfig};
use crate::{ClientError, ClusterClient};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
    #[value(name = "read_committed")]
    ReadCommitted,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The topic to read.
    pub topic: String,
    /// Start at the beginning of each partition (default: its end).
    #[arg(long = "from-beginning", conflicts_with_all = ["offset", "offset_time"])]
    pub from_beginning: bool,
    /// Start at this offset (clamped into each partition's range).
    #[arg(long, conflicts_with = "offset_time")]
    pub offset: Option<i64>,
    /// Start each partition at its first record whose timestamp is at or
    /// after this time (YYYY-MM-DDTHH:MM:SS[.sss] with Z, +HH:MM or nothing
    /// for local time); at its end when no record is that new.
    #[arg(long = "offset-time", value_name = "DATETIME", value_parser = super::time::parse_datetime)]
    pub offset_time: Option<i64>,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Exit after this many records (default: follow until Ctrl-C or SIGTERM).
    #[arg(long = "max-messages")]
    pub max_messages: Option<u64>,
    /// Exit when no record arrives for this long, in ms.
    #[arg(long = "timeout-ms")]
    pub timeout_ms: Option<u64>,
    /// read_committed skips records of aborted transactions and stops at
    /// the last stable offset.
    #[arg(long, value_enum, default_value_t = Isolation::ReadUncommitted)]
    pub isolation: Isolation,
    /// Format of each record: %k key, %v value, %p partition, %o offset,
    /// %T timestamp (ms), %t topic, %h headers (k=v,...), %% a %, \n \t \\
    /// escapes. A format without \n gets a newline after each record.
    #[arg(long)]
    pub format: Option<String>,
    /// Print the key before the value, tab-separated (without --format).
    #[arg(long = "print-key")]
    pub print_key: bool,
    /// Consume as a member of this consumer group: partitions are shared
    /// with the group's other members and start at the group's committed
    /// offsets (else at the end, or the beginning with --from-beginning);
    /// offsets are committed every 5 s, before partitions are given up and
    /// on exit.
    #[arg(long, conflicts_with_all = ["partition", "offset", "offset_time"])]
    pub group: Option<String>,
    /// The partition assignors to offer the group, most preferred first,
    /// comma-separated (default: cooperative-sticky,range); the group picks
    /// one every member supports.
    #[arg(long, value_enum, value_delimiter = ',', requires = "group")]
    pub assignor: Vec<Assignor>,
    /// What %k and %v print for a null key or value (set by
    /// kafka-console-consumer's null.literal; empty for `wharf consume`).
    #[arg(skip)]
    pub null_literal: String,
}

pub async fn run(args: ConsumeArgs) -> Result<ExitCode, ClientError> {
    let mut client = args.connect.connect().await?;
    let start = match (args.from_beginning, args.offset, args.offset_time) {
        (true, _, _) => StartAt::Beginning,
        (false, Some(n), _) => StartAt::Offset(n),
        (false, None, Some(ts)) => StartAt::Timestamp(ts),
        (false, None, None) => StartAt::End,
    };
    let config = ConsumerConfig {
        isolation_level: match args.isolation {
            Isolation::ReadUncommitted => 0,
            Isolation::ReadCommitted => 1,
        },
        ..ConsumerConfig::default()
    };
    let format = record_format(&args);
    if let Some(group) = args.group.clone() {
        return run_in_group(args, client, &group, start, config, &format).await;
    }
    let partitions = args.partition.map(|p| vec![p]);
    let mut consumer = Consumer::new(
        &mut client,
        &args.topic,
        partitions.as_deref(),
        start,
        config,
    )
    .await?;
    let json = args.connect.output == OutputFormat::Json;
    let mut seen = 0u64;
    let mut last_record = tokio::time::Instant::now();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        if args.max_messages.is_some_and(|max| seen >= max) {
            break;
        }
        if let Some(ms) = args.timeout_ms {
            if last_record.elapsed() >= Duration::from_millis(ms) {
                break;
            }
        }
        let records = tokio::select! {
            records = consumer.poll(&mut client) => records?,
            () = &mut stop => break,
        };
        if !records.is_empty() {
            last_record = tokio::time::Instant::now();
        }
        let print = PrintOptions {
            format: &format,
            json,
            null: &args.null_literal,
        };
        print_records(&records, &print, args.max_messages, &mut seen, |_| {})?;
    }
    eprintln!("Processed a total of {seen} messages");
    Ok(ExitCode::SUCCESS)
}

/// The format records are printed with.
fn record_format(args: &ConsumeArgs) -> String {
    match &args.format {
        Some(f) => {
            let f = unescape(f);
            if f.contains('\n') {
                f
            } else {
                format!("{f}\n")
            }
        }
        None if args.print_key => "%k\t%v\n".to_string(),
        None => "%v\n".to_string(),
    }
}

/// How records are printed.
struct PrintOptions<'a> {
    /// The (unescaped) format of each record.
    format: &'a str,
    /// JSON lines instead of the format.
    json: bool,
    /// What a null key or value prints as.
    null: &'a str,
}

/// Prints `records` up to `max` in all (counted in `seen`), calling
/// `printed` for each record printed.
fn print_records(
    records: &[ConsumedRecord],
    options: &PrintOptions<'_>,
    max: Option<u64>,
    seen: &mut u64,
    mut printed: impl FnMut(&ConsumedRecord),
) -> Result<(), ClientError> {
    let mut text = String::new();
    for record in records {
        if max.is_some_and(|max| *seen >= max) {
            break;
        }
        *seen += 1;
        printed(record);
        if options.json {
            text.push_str(&record_json(record).to_string());
            text.push('\n');
        } else {
            text.push_str(&render(options.format, record, options.null));
        }
    }
    if !text.is_empty() {
        print(&text)?;
    }
    Ok(())
}

/// The reading side of a group member: its consumer (on its own
/// connection), how it prints, and what it printed.
struct Reader<'a> {
    topic: &'a str,
    consumer: Consumer,
    client: ClusterClient,
    print: PrintOptions<'a>,
    max: Option<u64>,
    seen: u64,
    /// The next offset of each partition after what was printed: what to
    /// commit.
    to_commit: BTreeMap<i32, i64>,
    last_record: tokio::time::Instant,
}

impl Reader<'_> {
    /// Commits what was printed; a failure is reported and the offsets
    /// kept for the next try.
    async fn commit(&mut self, member: &mut GroupMember, group_client: &mut ClusterClient) {
        match member
            .commit(group_client, self.topic, &self.to_commit)
            .await
        {
            Ok(()) => self.to_commit.clear(),
            Err(e) => eprintln!("wharf: {e}"),
        }
    }

    /// One poll; prints what came.
    async fn read(&mut self) -> Result<(), ClientError> {
        let records = self.consumer.poll(&mut self.client).await?;
        if !records.is_empty() {
            self.last_record = tokio::time::Instant::now();
        }
        let to_commit = &mut self.to_commit;
        print_records(&records, &self.print, self.max, &mut self.seen, |r| {
            to_commit.insert(r.partition, r.offset + 1);
        })
    }
}

/// Joins the group; under a cooperative protocol the reader goes on
/// reading its partitions meanwhile (KIP-429: a rebalance takes away only
/// what moves). A poll under way is never cut short. Returns the new
/// assignment and whether the reader read during the join.
async fn join_while_reading(
    member: &mut GroupMember,
    group_client: &mut ClusterClient,
    reader: &mut Reader<'_>,
) -> Result<(BTreeMap<String, Vec<i32>>, bool), ClientError> {
    let cooperative = member.protocol().is_some_and(Assignor::is_cooperative);
    let join = member.join(group_client);
    tokio::pin!(join);
    if !cooperative || reader.consumer.positions().is_empty() {
        return Ok((join.await?, false));
    }
    let mut joined = None;
    loop {
        {
            let read = reader.read();
            tokio::pin!(read);
            loop {
                tokio::select! {
                    result = &mut read => {
                        result?;
                        break;
                    }
                    result = &mut join, if joined.is_none() => joined = Some(result),
                }
            }
        }
        if let Some(result) = joined {
            return Ok((result?, true));
        }
    }
}

/// Joins the group (again) and moves the reader to its new assignment:
/// partitions kept go on from where they were, new ones start at the
/// group's committed offsets (else at `reset`). Under a cooperative
/// protocol, partitions taken away have what was printed of them committed
/// and the member joins again at once, so that the group can give them to
/// their new members, while the partitions it kept are never given up;
/// under an eager one (range) everything was committed before joining.
async fn rebalance(
    member: &mut GroupMember,
    group_client: &mut ClusterClient,
    reader: &mut Reader<'_>,
    (topic, reset, config): (&str, StartAt, &ConsumerConfig),
) -> Result<(), ClientError> {
    loop {
        let (assignment, read_while_joining) =
            join_while_reading(member, group_client, reader).await?;
        let partitions = assignment.get(topic).cloned().unwrap_or_default();
        let lost = member.take_lost();
        let cooperative = member.protocol().is_some_and(Assignor::is_cooperative);
        let revoked: Vec<i32> = reader
            .consumer
            .positions()
            .keys()
            .filter(|p| !partitions.contains(p))
            .copied()
            .collect();
        if lost {
            // Others may have read further since: commit nothing of what
            // was read before.
            reader.to_commit.clear();
        } else if !revoked.is_empty() && (cooperative || read_while_joining) {
            // Under an eager protocol what was printed was committed before
            // joining (unless the group left cooperative-sticky during this
            // join), and the new owners may have read on since.
            reader.commit(member, group_client).await;
        }
        reader.to_commit.retain(|p, _| !revoked.contains(p));
        let group_offsets = reader.client.committed_offsets(member.group()).await?;
        let committed: BTreeMap<i32, i64> = group_offsets
            .into_iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, p), o)| (p, o))
            .collect();
        let mut consumer = Consumer::assigned(
            &mut reader.client,
            topic,
            &partitions,
            &committed,
            reset,
            config.clone(),
        )
        .await?;
        if !lost {
            consumer.resume_from(&reader.consumer);
        }
        reader.consumer = consumer;
        if revoked.is_empty() || !cooperative {
            return Ok(());
        }
    }
}

/// `wharf consume --group`: a member of a classic consumer group.
async fn run_in_group(
    args: ConsumeArgs,
    client: ClusterClient,
    group: &str,
    start: StartAt,
    config: ConsumerConfig,
    format: &str,
) -> Result<ExitCode, ClientError> {
    let topic = args.topic.clone();
    let reset = if start == StartAt::Beginning {
        StartAt::Beginning
    } else {
        StartAt::End
    };
    let assignors = if args.assignor.is_empty() {
        vec![Assignor::CooperativeSticky, Assignor::Range]
    } else {
        args.assignor.clone()
    };
    let mut member = GroupMember::new(
        group,
        vec![topic.clone()],
        MemberConfig::default(),
        assignors,
    );
    // The member talks to the coordinator on its own connection, so that
    // the reader can fetch while it joins.
    let mut group_client = args.connect.connect().await?;
    let how = (topic.as_str(), reset, &config);
    let mut reader = Reader {
        topic: &topic,
        consumer: Consumer::assigned(
            &mut group_client,
            &topic,
            &[],
            &BTreeMap::new(),
            reset,
            config.clone(),
        )
        .await?,
        client,
        print: PrintOptions {
            format,
            json: args.connect.output == OutputFormat::Json,
            null: &args.null_literal,
        },
        max: args.max_messages,
        seen: 0,
        to_commit: BTreeMap::new(),
        last_record: tokio::time::Instant::now(),
    };
    rebalance(&mut member, &mut group_client, &mut reader, how).await?;
    let mut last_heartbeat = tokio::time::Instant::now();
    let mut last_commit = tokio::time::Instant::now();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let result: Result<(), ClientError> = async {
        loop {
            if args.max_messages.is_some_and(|max| reader.seen >= max) {
                return Ok(());
            }
            if let Some(ms) = args.timeout_ms {
                if reader.last_record.elapsed() >= Duration::from_millis(ms) {
                    return Ok(());
                }
            }
            tokio::select! {
                read = reader.read() => read?,
                () = &mut stop => return Ok(()),
            };
            if last_heartbeat.elapsed() >= member.heartbeat_interval() {
                last_heartbeat = tokio::time::Instant::now();
                if member.heartbeat(&mut group_client).await? == Heartbeat::Rejoin {
                    reader.commit(&mut member, &mut group_client).await;
                    rebalance(&mut member, &mut group_client, &mut reader, how).await?;
                    last_heartbeat = tokio::time::Instant::now();
                }
            }
            if last_commit.elapsed() >= Duration::from_secs(5) {
                last_commit = tokio::time::Instant::now();
                reader.commit(&mut member, &mut group_client).await;
            }
        }
    }
    .await;
    reader.commit(&mut member, &mut group_client).await;
    if let Err(e) = member.leave(&mut group_client).await {
        eprintln!("wharf: {e}");
    }
    result?;
    eprintln!("Processed a total of {} messages", reader.seen);
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM (never, if neither can be watched).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => {
            if r.is_err() {
                std::future::pending::<()>().await;
            }
        }
        () = term => {}
    }
}

fn text(bytes: &Option<Vec<u8>>, null: &str) -> String {
    bytes.as_deref().map_or_else(
        || null.to_string(),
        |b| String::from_utf8_lossy(b).into_owned(),
    )
}

fn record_json(r: &ConsumedRecord) -> serde_json::Value {
    let headers: Vec<_> = r
        .headers
        .iter()
        .map(|(k, v)| json!({ "key": String::from_utf8_lossy(k), "value": v.as_deref().map(String::from_utf8_lossy) }))
        .collect();
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": r.key.as_deref().map(String::from_utf8_lossy),
        "value": r.value.as_deref().map(String::from_utf8_lossy),
        "headers": headers,
    })
}

/// Replaces `\n`, `\t`, `\r` and `\\` with what they stand for.
fn unescape(format: &str) -> String {
    let mut out = String::with_capacity(format.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// One record through a (unescaped) format; a null key or value prints as
/// `null`.
fn render(format: &str, r: &ConsumedRecord, null: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('k') => out.push_str(&text(&r.key, null)),
            Some('v') | Some('s') => out.push_str(&text(&r.value, null)),
            Some('p') => out.push_str(&r.partition.to_string()),
            Some('o') => out.push_str(&r.offset.to_string()),
            Some('T') => out.push_str(&r.timestamp.to_string()),
            Some('t') => out.push_str(&r.topic),
            Some('h') => {
                let headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{}={}", String::from_utf8_lossy(k), text(v, "")))
                    .collect();
                out.push_str(&headers.join(","));
            }
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsumedRecord {
        ConsumedRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            key: Some(b"k1".to_vec()),
            value: Some(b"hello".to_vec()),
            headers: vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)],
        }
    }

    #[test]
    fn format_tokens_and_escapes_render_like_kcat() {
        let f = unescape("%k:%v (partition %p offset %o, %T) %t [%h] 100%%\\n");
        assert_eq!(
            render(&f, &record(), ""),
            "k1:hello (partition 2 offset 7, 1000) t [a=1,b=] 100%\n"
        );
        assert_eq!(unescape("a\\tb\\\\n"), "a\tb\\n");
    }

    #[test]
    fn a_record_as_json_has_every_field() {
        let v = record_json(&record());
        assert_eq!(v["key"], "k1");
        assert_eq!(v["offset"], 7);
        assert_eq!(v["headers"][1]["value"], serde_json::Value::Null);
    }
}
