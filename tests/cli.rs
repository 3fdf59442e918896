//! The `wharf` command line's client subcommands (`topic`, `produce`,
//! `consume`, `group`, `cluster`, `config`) run as processes against a real
//! `wharf serve`: their output as tables and JSON, their exit codes, and
//! their errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{run_with_input, spawn_lines, wait_bounded, TestBroker};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;
use wharf_client::partitioner::partition_for_key;

/// Runs `wharf ARGS --bootstrap-server BROKER` with `stdin` as its input;
/// fails the test if it runs for more than 60 s.
fn wharf_with_input(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Output {
    run_with_input(
        Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(args)
            .arg("--bootstrap-server")
            .arg(bootstrap),
        stdin,
    )
}

fn wharf(broker: &TestBroker, args: &[&str]) -> Output {
    wharf_with_input(&broker.addr.to_string(), args, b"")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(broker: &TestBroker, args: &[&str]) -> String {
    let out = wharf(broker, args);
    assert!(
        out.status.success(),
        "wharf {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs a command that must succeed with `--output json`; returns its JSON.
fn json(broker: &TestBroker, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    serde_json::from_str(&ok(broker, &all)).unwrap()
}

/// Runs a command that must fail; returns its stderr.
fn fails(broker: &TestBroker, args: &[&str]) -> String {
    let out = wharf(broker, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "wharf {args:?} should fail: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

/// The records `wharf consume` prints as JSON lines.
fn consume_json(broker: &TestBroker, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["consume"];
    all.extend(args);
    all.extend(["--output", "json"]);
    ok(broker, &all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn topics_are_created_listed_described_altered_and_deleted() {
    let broker = TestBroker::start();
    let created = ok(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "cleanup.policy=compact",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert_eq!(created, "Created topic orders.\n");
    ok(&broker, &["topic", "create", "audit", "--partitions", "1"]);

    let list = ok(&broker, &["topic", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["audit", "1", "1"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["orders", "3", "1"]
    );
    // Columns line up: the second column starts at the same place on every line.
    let column = lines[0].find("PARTITIONS").unwrap();
    assert_eq!(lines[2].find('3'), Some(column));

    let listed = json(&broker, &["topic", "list"]);
    let orders = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .unwrap()
        .clone();
    assert_eq!(orders["partitions"], 3);
    assert_eq!(orders["internal"], false);
    let id = orders["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 22, "URL-safe base64 of 16 bytes: {id}");

    // Some records so that the end offsets move.
    let produced = wharf_with_input(
        &broker.addr.to_string(),
        &["produce", "orders", "--key-separator", ":"],
        b"a:1\nb:2\nc:3\nd:4\n",
    );
    assert!(produced.status.success(), "{}", stderr(&produced));

    let described = ok(&broker, &["topic", "describe", "orders"]);
    assert!(described.contains("Topic: orders\n"), "{described}");
    assert!(
        described.contains(&format!("TopicId: {id}\n")),
        "{described}"
    );
    assert!(described.contains("PartitionCount: 3\n"), "{described}");
    assert!(described.contains("ReplicationFactor: 1\n"), "{described}");
    assert!(
        described.contains("Configs: cleanup.policy=compact,retention.ms=3600000\n"),
        "{described}"
    );
    assert!(
        described.contains("PARTITION  LEADER  REPLICAS  ISR  LOG-START-OFFSET  LOG-END-OFFSET"),
        "{described}"
    );
    let rows: Vec<Vec<&str>> = described
        .lines()
        .skip_while(|l| !l.starts_with("PARTITION"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{described}");
    let mut ends = 0;
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], i.to_string());
        assert_eq!(&row[1..5], ["1", "1", "1", "0"]);
        ends += row[5].parse::<i64>().unwrap();
    }
    assert_eq!(ends, 4, "four records over the three partitions");

    let d = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(d["name"], "orders");
    assert_eq!(d["id"], id.as_str());
    assert_eq!(d["partition_count"], 3);
    assert_eq!(d["replication_factor"], 1);
    assert_eq!(d["configs"]["cleanup.policy"]["value"], "compact");
    assert_eq!(
        d["configs"]["cleanup.policy"]["source"],
        "DYNAMIC_TOPIC_CONFIG"
    );
    assert!(
        d["configs"].get("segment.bytes").is_none(),
        "defaults are left out"
    );
    assert_eq!(d["partitions"][1]["leader"], 1);
    assert_eq!(d["partitions"][1]["isr"], serde_json::json!([1]));
    let end_sum: i64 = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["log_end_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(end_sum, 4);

    assert_eq!(
        ok(&broker, &["topic", "alter", "orders", "--partitions", "5"]),
        "Topic orders now has 5 partitions.\n"
    );
    assert_eq!(
        json(&broker, &["topic", "describe", "orders"])["partition_count"],
        5
    );

    assert_eq!(
        json(&broker, &["topic", "delete", "audit"])["deleted"],
        "audit"
    );
    let names: Vec<String> = json(&broker, &["topic", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["orders"]);

    // --internal adds the internal topics once they exist.
    ok(&broker, &["group", "list"]);
    let _ = fails(&broker, &["group", "describe", "nobody"]);
    let internal = ok(&broker, &["topic", "list", "--internal"]);
    assert!(internal.contains("__consumer_offsets"), "{internal}");
    assert!(!ok(&broker, &["topic", "list"]).contains("__consumer_offsets"));
}

#[test]
fn topic_errors_are_plain_words_and_a_nonzero_exit() {
    let broker = TestBroker::start_with(&["--auto-create-topics", "false"]);
    ok(&broker, &["topic", "create", "t", "--partitions", "2"]);
    let err = fails(&broker, &["topic", "create", "t", "--partitions", "2"]);
    assert!(
        err.starts_with("wharf: could not create topic 't': TOPIC_ALREADY_EXISTS: "),
        "{err}"
    );
    assert!(
        err.contains("already exists"),
        "the broker's message: {err}"
    );
    let err = fails(
        &broker,
        &["topic", "create", "u", "--config", "no.such.config=1"],
    );
    assert!(err.contains("INVALID_CONFIG"), "{err}");
    assert!(err.contains("no.such.config"), "{err}");
    let err = fails(&broker, &["topic", "describe", "missing"]);
    assert_eq!(
        err,
        "wharf: topic 'missing' does not exist: UNKNOWN_TOPIC_OR_PARTITION\n"
    );
    let err = fails(&broker, &["topic", "delete", "missing"]);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    let err = fails(&broker, &["topic", "alter", "t", "--partitions", "1"]);
    assert!(err.contains("INVALID_PARTITIONS"), "{err}");
    let err = fails(&broker, &["produce", "missing"]);
    assert!(err.contains("topic 'missing' does not exist"), "{err}");
    let err = fails(&broker, &["consume", "missing", "--max-messages", "1"]);
    assert!(err.contains("topic 'missing' does not exist"), "{err}");
    // Nothing was auto-created by asking.
    assert!(!ok(&broker, &["topic", "list"]).contains("missing"));
    // A bad flag is clap's usage error (exit 2).
    let out = wharf(&broker, &["topic", "create", "v", "--config", "novalue"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn an_unreachable_bootstrap_server_fails_quickly_in_plain_words() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = wharf_with_input(&bootstrap, &["topic", "list"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("wharf: no broker reachable at {bootstrap} (last error: could not connect to {bootstrap}")),
        "{err}"
    );

    // WHARF_BOOTSTRAP stands in for the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["cluster", "health"])
        .env("WHARF_BOOTSTRAP", &bootstrap)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("no broker reachable at {bootstrap}")));
}

#[test]
fn produced_records_land_where_the_java_partitioner_puts_them_and_read_back() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(&broker, &["topic", "create", "keyed", "--partitions", "6"]);
    let mut input = String::new();
    for i in 0..40 {
        input.push_str(&format!("key-{i}=value {i}\n"));
    }
    let out = wharf_with_input(
        &bootstrap,
        &[
            "produce",
            "keyed",
            "--key-separator",
            "=",
            "--header",
            "source=cli",
            "--header",
            "n=1",
            "--compression",
            "gzip",
            "--output",
            "json",
        ],
        input.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["delivered"], 40);
    assert_eq!(report["failed"], 0);
    for r in report["records"].as_array().unwrap() {
        let line = r["line"].as_u64().unwrap();
        let key = format!("key-{}", line - 1);
        assert_eq!(
            r["partition"],
            partition_for_key(key.as_bytes(), 6),
            "{key}"
        );
        assert!(r["offset"].as_i64().unwrap() >= 0);
    }

    let records = consume_json(
        &broker,
        &["keyed", "--from-beginning", "--max-messages", "40"],
    );
    assert_eq!(records.len(), 40);
    let mut seen = std::collections::BTreeSet::new();
    for r in &records {
        let key = r["key"].as_str().unwrap();
        let i: u32 = key.strip_prefix("key-").unwrap().parse().unwrap();
        assert_eq!(r["value"], format!("value {i}"));
        assert_eq!(r["partition"], partition_for_key(key.as_bytes(), 6));
        assert_eq!(r["topic"], "keyed");
        assert_eq!(
            r["headers"],
            serde_json::json!([{"key": "source", "value": "cli"}, {"key": "n", "value": "1"}])
        );
        assert!(r["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        seen.insert(i);
    }
    assert_eq!(seen.len(), 40);

    // kcat-like formats, one partition, from an offset.
    let p = partition_for_key(b"key-0", 6).to_string();
    let text = ok(
        &broker,
        &[
            "consume",
            "keyed",
            "--partition",
            &p,
            "--offset",
            "0",
            "--max-messages",
            "1",
            "--format",
            "%k:%v (partition %p offset %o, %T) %t [%h]",
        ],
    );
    let (first, rest) = text.split_once(" (partition ").unwrap();
    assert_eq!(first, "key-0:value 0");
    assert!(rest.starts_with(&format!("{p} offset 0, ")), "{text}");
    assert!(rest.ends_with(") keyed [source=cli,n=1]\n"), "{text}");
    let printed = ok(
        &broker,
        &[
            "consume",
            "keyed",
            "--partition",
            &p,
            "--from-beginning",
            "--max-messages",
            "1",
            "--print-key",
        ],
    );
    assert_eq!(printed, "key-0\tvalue 0\n");
}

#[test]
fn every_codec_acks_setting_and_explicit_partition_round_trips() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(&broker, &["topic", "create", "codecs", "--partitions", "3"]);
    let mut expected = Vec::new();
    for (codec, acks) in [
        ("none", "all"),
        ("gzip", "1"),
        ("snappy", "0"),
        ("lz4", "all"),
        ("zstd", "1"),
    ] {
        let lines: String = (0..5).map(|i| format!("{codec}-{i}\n")).collect();
        let out = wharf_with_input(
            &bootstrap,
            &[
                "produce",
                "codecs",
                "--compression",
                codec,
                "--acks",
                acks,
                "--partition",
                "2",
            ],
            lines.as_bytes(),
        );
        assert!(out.status.success(), "{codec}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "quiet on success");
        expected.extend((0..5).map(|i| format!("{codec}-{i}")));
    }
    // acks=0 gets no answer: wait until its records are readable.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = json(&broker, &["topic", "describe", "codecs"]);
        if d["partitions"][2]["log_end_offset"] == 25 {
            assert_eq!(d["partitions"][0]["log_end_offset"], 0);
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let values = ok(
        &broker,
        &[
            "consume",
            "codecs",
            "--partition",
            "2",
            "--from-beginning",
            "--max-messages",
            "25",
        ],
    );
    assert_eq!(values.lines().collect::<Vec<_>>(), expected);

    // Keyless records without --partition spread over the partitions
    // (sticky per batch), and a file works as input.
    let file = broker.dir.path().with_extension("records");
    let lines: String = (0..30).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&file, lines).unwrap();
    ok(
        &broker,
        &[
            "produce",
            "codecs",
            "--file",
            file.to_str().unwrap(),
            "--batch-size",
            "40",
        ],
    );
    std::fs::remove_file(&file).unwrap();
    let d = json(&broker, &["topic", "describe", "codecs"]);
    let p0 = d["partitions"][0]["log_end_offset"].as_i64().unwrap();
    let p1 = d["partitions"][1]["log_end_offset"].as_i64().unwrap();
    let p2 = d["partitions"][2]["log_end_offset"].as_i64().unwrap();
    assert_eq!(p0 + p1 + p2, 55);
    assert!(p0 > 0 && p1 > 0 && p2 > 25, "{p0} {p1} {p2}");

    let err = fails(&broker, &["produce", "codecs", "--partition", "7"]);
    assert!(err.contains("partition 7 does not exist"), "{err}");
}

#[test]
fn failed_records_are_reported_on_stderr_with_a_nonzero_exit() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(
        &broker,
        &[
            "topic",
            "create",
            "compacted",
            "--partitions",
            "1",
            "--config",
            "cleanup.policy=compact",
        ],
    );
    // A compacted topic refuses keyless records (INVALID_RECORD), and the
    // batch they are in with them.
    let out = wharf_with_input(
        &bootstrap,
        &["produce", "compacted", "--key-separator", ":"],
        b"no key here\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("wharf: record of line 1 (partition 0) failed: could not produce to compacted-0: INVALID_RECORD"),
        "{err}"
    );
    assert_eq!(stdout(&out), "0 records written, 1 failed\n");
    // Keyed ones go through.
    let out = wharf_with_input(
        &bootstrap,
        &["produce", "compacted", "--key-separator", ":"],
        b"k:v\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Starts `wharf ARGS --bootstrap-server BOOTSTRAP` in the background; its
/// stdout lines arrive on the receiver.
fn spawn_wharf(bootstrap: &str, args: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
    spawn_lines(
        Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(args)
            .args(["--bootstrap-server", bootstrap]),
    )
}

/// SIGTERM to `child`, which must then exit 0 within 10 s.
fn terminate(child: Child) -> Output {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    out
}

#[test]
fn consume_follows_the_log_until_sigterm() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(&broker, &["topic", "create", "live", "--partitions", "2"]);
    ok(&broker, &["topic", "create", "other", "--partitions", "1"]);
    let (child, rx) = spawn_wharf(&bootstrap, &["consume", "live", "--print-key"]);
    // It starts at the end: records produced from now on show up, as they come.
    let mut got = Vec::new();
    for round in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(20);
        let line = format!("k{round}:v{round}\n");
        while got.len() <= round {
            let out = wharf_with_input(
                &bootstrap,
                &["produce", "live", "--key-separator", ":"],
                line.as_bytes(),
            );
            assert!(out.status.success());
            if let Ok(l) = rx.recv_timeout(Duration::from_secs(2)) {
                got.push(l);
            }
            assert!(Instant::now() < deadline, "the consumer printed nothing");
        }
    }
    assert!(got[0].starts_with("k0\tv0"), "{got:?}");
    assert!(got.iter().any(|l| l == "k1\tv1"), "{got:?}");
    let stopping = Instant::now();
    let out = terminate(child);
    assert!(stopping.elapsed() < Duration::from_secs(5));
    assert!(
        stderr(&out).contains("Processed a total of"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cluster_describe_and_health_on_one_broker() {
    let broker = TestBroker::start();
    ok(&broker, &["topic", "create", "t", "--partitions", "4"]);
    let text = ok(&broker, &["cluster", "describe"]);
    assert!(text.contains("Controller: 1\n"), "{text}");
    assert!(text.contains("Partitions: 4\n"), "{text}");
    assert!(text.contains("ID  HOST       PORT"), "{text}");
    let port = broker.addr.port().to_string();
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["1", "127.0.0.1", port.as_str(), "-"]),
        "{text}"
    );
    assert!(
        text.contains("Under-replicated partitions: 0\nOffline partitions: 0\n"),
        "{text}"
    );
    let d = json(&broker, &["cluster", "describe"]);
    assert!(!d["cluster_id"].as_str().unwrap().is_empty());
    assert_eq!(d["controller"], 1);
    assert_eq!(d["brokers"][0]["id"], 1);
    assert_eq!(d["brokers"][0]["port"], broker.addr.port());
    assert_eq!(d["under_replicated_partitions"], serde_json::json!([]));
    assert_eq!(d["offline_partitions"], serde_json::json!([]));

    let health = ok(&broker, &["cluster", "health"]);
    assert_eq!(
        health,
        "healthy: 1 brokers, 4 partitions, all with a leader and a full ISR\n"
    );
    let h = json(&broker, &["cluster", "health"]);
    assert_eq!(h["healthy"], true);
    assert_eq!(h["problems"], serde_json::json!([]));
}

/// Commits `offsets` (partition, offset) of `topic` for `group` as a
/// consumer outside any generation would (through the client crate).
fn commit_offsets(broker: &TestBroker, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = wharf_client::ClusterClient::connect(
            vec![broker.addr.to_string()],
            wharf_client::ConnectionOptions::default(),
            wharf_client::RetryPolicy::default(),
        )
        .await
        .unwrap();
        let mut request = OffsetCommitRequest::default();
        request.group_id = GroupId(StrBytes::from_string(group.to_string()));
        request.generation_id_or_member_epoch = -1;
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partitions = offsets
            .iter()
            .map(|&(p, o)| {
                let mut op = OffsetCommitRequestPartition::default();
                op.partition_index = p;
                op.committed_offset = o;
                op.committed_leader_epoch = -1;
                op
            })
            .collect();
        request.topics = vec![t];
        client
            .with_retries(async |c| {
                let coordinator = c.coordinator(group).await?;
                let response = c.call_node_capped(coordinator, &request, 8).await?;
                for t in &response.topics {
                    for p in &t.partitions {
                        wharf_client::ClientError::check(p.error_code, None, || "commit".into())?;
                    }
                }
                Ok(())
            })
            .await
            .unwrap();
    });
}

#[test]
fn groups_are_listed_described_with_their_lag_and_deleted() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(&broker, &["topic", "create", "events", "--partitions", "2"]);
    let lines: String = (0..10).map(|i| format!("{i}\n")).collect();
    let out = wharf_with_input(
        &bootstrap,
        &["produce", "events", "--partition", "0"],
        lines.as_bytes(),
    );
    assert!(out.status.success());
    let out = wharf_with_input(
        &bootstrap,
        &["produce", "events", "--partition", "1"],
        b"a\nb\n",
    );
    assert!(out.status.success());
    commit_offsets(&broker, "billing", "events", &[(0, 4), (1, 2)]);

    let list = ok(&broker, &["group", "list"]);
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.starts_with("billing"))
        .unwrap_or_else(|| panic!("{list}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[..2], ["billing", "Empty"]);
    assert_eq!(json(&broker, &["group", "list"])[0]["group"], "billing");

    let text = ok(&broker, &["group", "describe", "billing"]);
    assert!(text.contains("State: Empty\n"), "{text}");
    assert!(text.contains("Members: 0\n"), "{text}");
    let header = "GROUP    TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID";
    assert!(text.contains(header), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("GROUP "))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["billing", "events", "0", "4", "10", "6", "-", "-", "-"],
            ["billing", "events", "1", "2", "2", "0", "-", "-", "-"],
        ]
    );
    let d = json(&broker, &["group", "describe", "billing"]);
    assert_eq!(d["state"], "Empty");
    assert_eq!(d["offsets"][0]["lag"], 6);
    assert_eq!(d["offsets"][0]["current_offset"], 4);
    assert_eq!(d["offsets"][0]["log_end_offset"], 10);
    assert_eq!(d["offsets"][1]["consumer_id"], Value::Null);

    assert_eq!(
        ok(&broker, &["group", "delete", "billing"]),
        "Deleted group billing.\n"
    );
    assert!(!ok(&broker, &["group", "list"]).contains("billing"));
    let err = fails(&broker, &["group", "describe", "billing"]);
    assert!(err.contains("GROUP_ID_NOT_FOUND"), "{err}");
    let err = fails(&broker, &["group", "delete", "billing"]);
    assert!(err.contains("could not delete group 'billing'"), "{err}");
}

#[test]
fn configs_are_described_and_altered() {
    let broker = TestBroker::start();
    ok(&broker, &["topic", "create", "c", "--partitions", "1"]);
    let text = ok(&broker, &["config", "describe", "--topic", "c"]);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "VALUE", "SOURCE", "SENSITIVE"]);
    let row = |text: &str, name: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        row(&text, "retention.ms"),
        ["retention.ms", "604800000", "DEFAULT_CONFIG", "false"]
    );

    let out = ok(
        &broker,
        &[
            "config",
            "alter",
            "--topic",
            "c",
            "--set",
            "retention.ms=1000",
            "--set",
            "cleanup.policy=compact",
        ],
    );
    assert_eq!(out, "Altered the configs of topic c.\n");
    let entries = json(&broker, &["config", "describe", "--topic", "c"]);
    let entry = |name: &str| {
        entries
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(entry("retention.ms")["value"], "1000");
    assert_eq!(entry("retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(entry("cleanup.policy")["value"], "compact");
    assert_eq!(entry("retention.ms")["sensitive"], false);

    ok(
        &broker,
        &[
            "config",
            "alter",
            "--topic",
            "c",
            "--delete",
            "retention.ms",
        ],
    );
    let text = ok(&broker, &["config", "describe", "--topic", "c"]);
    assert_eq!(row(&text, "retention.ms")[2], "DEFAULT_CONFIG");
    assert_eq!(row(&text, "cleanup.policy")[2], "DYNAMIC_TOPIC_CONFIG");
    let described = ok(&broker, &["topic", "describe", "c"]);
    assert!(
        described.contains("Configs: cleanup.policy=compact\n"),
        "{described}"
    );

    let err = fails(
        &broker,
        &[
            "config",
            "alter",
            "--topic",
            "c",
            "--set",
            "retention.ms=soon",
        ],
    );
    assert!(
        err.starts_with("wharf: could not alter the configs of topic 'c': INVALID_CONFIG"),
        "{err}"
    );
    let err = fails(&broker, &["config", "describe", "--topic", "nope"]);
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    let err = fails(&broker, &["config", "alter", "--topic", "c"]);
    assert!(err.contains("at least one --set or --delete"), "{err}");

    let brokers = ok(&broker, &["config", "describe", "--broker", "1"]);
    assert_eq!(
        row(&brokers, "broker.id")[1..3],
        ["1", "STATIC_BROKER_CONFIG"]
    );
    // --topic or --broker, exactly one.
    let out = wharf(&broker, &["config", "describe"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Exit code and stdout of `wharf cluster health` against `bootstrap`.
fn health(bootstrap: &str) -> (Option<i32>, String) {
    let out = wharf_with_input(bootstrap, &["cluster", "health"], b"");
    (out.status.code(), stdout(&out))
}

#[test]
fn on_three_brokers_requests_reach_each_leader_and_health_sees_a_lost_broker() {
    let mut cluster = Cluster::start(3);
    let (controller, _) = cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.to_string()).collect();
    let addr = |i: usize| addrs[i].clone();
    // The broker to lose later: neither node 1 nor the controller, so that
    // leadership moves in the usual ~3 s.
    let victim = if controller == 2 { 2 } else { 1 };
    let survivor = 0;
    let all = format!("{},{},{}", addr(0), addr(1), addr(2));
    let create = |args: &[&str]| {
        let out = wharf_with_input(&all, args, b"");
        assert!(out.status.success(), "{}", stderr(&out));
    };
    create(&[
        "topic",
        "create",
        "replicated",
        "--partitions",
        "6",
        "--replication-factor",
        "3",
    ]);
    create(&[
        "topic",
        "create",
        "single",
        "--partitions",
        "3",
        "--replication-factor",
        "1",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = health(&all);
        if code == Some(0) {
            assert!(text.starts_with("healthy: 3 brokers, "), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "never healthy: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = wharf_with_input(
        &addr(2),
        &["topic", "describe", "replicated", "--output", "json"],
        b"",
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let leaders: std::collections::BTreeSet<i64> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["leader"].as_i64().unwrap())
        .collect();
    assert!(leaders.len() > 1, "leaders spread over the brokers: {d}");
    assert_eq!(d["replication_factor"], 3);

    // Produced through node 1 only, records reach every partition's leader.
    let lines: String = (0..60).map(|i| format!("k{i}:v{i}\n")).collect();
    let out = wharf_with_input(
        &addr(survivor),
        &[
            "produce",
            "replicated",
            "--key-separator",
            ":",
            "--acks",
            "all",
            "--output",
            "json",
        ],
        lines.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["delivered"], 60);

    let victim_id = i32::try_from(victim + 1).unwrap();
    cluster.nodes[victim].stop(false);
    // The first bootstrap address is dead now: the next one answers. The
    // partitions the victim led move; the producer retries until it finds
    // their new leaders.
    let bootstrap = format!("{},{}", addr(victim), addr(survivor));
    let lines: String = (60..90).map(|i| format!("k{i}:v{i}\n")).collect();
    let out = wharf_with_input(
        &bootstrap,
        &[
            "produce",
            "replicated",
            "--key-separator",
            ":",
            "--acks",
            "1",
        ],
        lines.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let consumed = wharf_with_input(
        &bootstrap,
        &[
            "consume",
            "replicated",
            "--from-beginning",
            "--max-messages",
            "90",
            "--output",
            "json",
        ],
        b"",
    );
    assert!(consumed.status.success(), "{}", stderr(&consumed));
    assert_eq!(stdout(&consumed).lines().count(), 90);

    // The single-replica partition on the lost broker has no leader now.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let (code, text) = health(&bootstrap);
        if code == Some(1) && text.contains("no leader (offline)") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "health never saw the loss: {code:?} {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(text.starts_with("unhealthy: "), "{text}");
    let out = wharf_with_input(
        &bootstrap,
        &["cluster", "describe", "--output", "json"],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<i64> = d["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert!(!ids.contains(&i64::from(victim_id)), "{d}");
    let offline = d["offline_partitions"].as_array().unwrap();
    assert_eq!(offline.len(), 1, "{d}");
    assert_eq!(offline[0]["topic"], "single");
    assert_eq!(offline[0]["replicas"], serde_json::json!([victim_id]));
    // The topic is still described, its offline partition without a leader
    // or offsets.
    let partition = offline[0]["partition"].as_i64().unwrap();
    let out = wharf_with_input(&bootstrap, &["topic", "describe", "single"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&partition.to_string()))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[1], "none", "{text}");
    assert_eq!(row[4..], ["-", "-"], "{text}");
}

/// The partitions each member of `group` holds (JSON describe), by member id,
/// once the group is Stable.
fn stable_assignment(broker: &TestBroker, group: &str) -> Option<Vec<(String, Vec<i64>)>> {
    let out = wharf(broker, &["group", "describe", group, "--output", "json"]);
    if !out.status.success() {
        return None;
    }
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    if d["state"] != "Stable" {
        return None;
    }
    Some(
        d["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let partitions = m["assignment"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["partition"].as_i64().unwrap())
                    .collect();
                (m["member_id"].as_str().unwrap().to_string(), partitions)
            })
            .collect(),
    )
}

#[test]
fn consumers_in_a_group_share_the_partitions_and_commit_what_they_printed() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(&broker, &["topic", "create", "shared", "--partitions", "4"]);
    let args = [
        "consume",
        "shared",
        "--group",
        "workers",
        "--from-beginning",
        "--print-key",
        "--assignor",
        "range",
    ];
    let (first, first_lines) = spawn_wharf(&bootstrap, &args);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(members) = stable_assignment(&broker, "workers") {
            if members.len() == 1 {
                assert_eq!(members[0].1, [0, 1, 2, 3]);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the first member never got every partition"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (second, second_lines) = spawn_wharf(&bootstrap, &args);
    // The first member learns of the rebalance by its heartbeat and joins
    // again; the range assignor splits 4 partitions 2 and 2.
    let deadline = Instant::now() + Duration::from_secs(30);
    let members = loop {
        if let Some(mut members) = stable_assignment(&broker, "workers") {
            if members.len() == 2 {
                members.sort();
                break members;
            }
        }
        assert!(Instant::now() < deadline, "no rebalance to two members");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(members[0].1, [0, 1], "{members:?}");
    assert_eq!(members[1].1, [2, 3], "{members:?}");

    let lines: String = (0..40).map(|i| format!("key-{i}:{i}\n")).collect();
    let out = wharf_with_input(
        &bootstrap,
        &["produce", "shared", "--key-separator", ":"],
        lines.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut by_member: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + Duration::from_secs(30);
    while by_member[0].len() + by_member[1].len() < 40 {
        assert!(Instant::now() < deadline, "got only {by_member:?}");
        for (i, rx) in [&first_lines, &second_lines].into_iter().enumerate() {
            while let Ok(line) = rx.try_recv() {
                by_member[i].push(line);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut all: Vec<&String> = by_member.iter().flatten().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 40, "each record once");
    // Each member printed only the records of its own partitions.
    for lines in &by_member {
        let partitions: std::collections::BTreeSet<i32> = lines
            .iter()
            .map(|l| partition_for_key(l.split('\t').next().unwrap().as_bytes(), 4))
            .collect();
        assert!(
            partitions.is_subset(&[0, 1].into()) || partitions.is_subset(&[2, 3].into()),
            "{partitions:?}"
        );
    }
    terminate(first);
    terminate(second);

    // What they printed is committed: no lag left.
    let d = json(&broker, &["group", "describe", "workers"]);
    assert_eq!(d["state"], "Empty", "both left the group: {d}");
    let offsets = d["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), 4, "{d}");
    let committed: i64 = offsets
        .iter()
        .map(|o| o["current_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, 40);
    assert!(offsets.iter().all(|o| o["lag"] == 0), "{d}");
    // A new member starts at the committed offsets: nothing left to read.
    let out = ok(
        &broker,
        &[
            "consume",
            "shared",
            "--group",
            "workers",
            "--timeout-ms",
            "2000",
        ],
    );
    assert_eq!(out, "");
}

/// Writes `records` (partition, timestamp in ms, value) to `topic` through
/// the client crate's producer, which sets each record's timestamp.
fn produce_timed(broker: &TestBroker, topic: &str, records: &[(i32, i64, &str)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = wharf_client::ClusterClient::connect(
            vec![broker.addr.to_string()],
            wharf_client::ConnectionOptions::default(),
            wharf_client::RetryPolicy::default(),
        )
        .await
        .unwrap();
        let mut producer = wharf_client::producer::Producer::new(
            &mut client,
            topic,
            wharf_client::producer::ProducerConfig::default(),
        )
        .await
        .unwrap();
        for (i, &(partition, timestamp, value)) in records.iter().enumerate() {
            let record = wharf_client::producer::OutgoingRecord {
                id: i as u64,
                value: Some(value.as_bytes().to_vec()),
                partition: Some(partition),
                timestamp,
                ..Default::default()
            };
            producer.send(&mut client, record).await.unwrap();
        }
        producer.flush(&mut client).await;
        assert!(producer.failures.is_empty(), "{:?}", producer.failures);
        assert_eq!(producer.deliveries.len(), records.len());
    });
}

/// The committed offsets of `group` as `group describe --output json`
/// shows them: (topic, partition, offset) for each partition that has one.
fn committed(broker: &TestBroker, group: &str) -> Vec<(String, i64, i64)> {
    let d = json(broker, &["group", "describe", group]);
    d["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| !o["current_offset"].is_null())
        .map(|o| {
            (
                o["topic"].as_str().unwrap().to_string(),
                o["partition"].as_i64().unwrap(),
                o["current_offset"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn offsets_of(topic: &str, offsets: &[(i64, i64)]) -> Vec<(String, i64, i64)> {
    offsets
        .iter()
        .map(|&(p, o)| (topic.to_string(), p, o))
        .collect()
}

/// The words of a command line, for the long ones.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The rows under the header of a table, split into cells.
fn table_rows(text: &str, header_start: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with(header_start))
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn reset_offsets_plans_by_default_commits_with_execute_and_clamps() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(&broker, &["topic", "create", "orders", "--partitions", "2"]);
    ok(&broker, &["topic", "create", "audit", "--partitions", "1"]);
    let ten: String = (0..10).map(|i| format!("{i}\n")).collect();
    for (topic, partition, lines) in [
        ("orders", "0", ten.as_str()),
        ("orders", "1", "a\nb\nc\nd\n"),
        ("audit", "0", "x\ny\nz\n"),
    ] {
        let out = wharf_with_input(
            &bootstrap,
            &["produce", topic, "--partition", partition],
            lines.as_bytes(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    commit_offsets(&broker, "billing", "orders", &[(0, 3), (1, 1)]);
    let before = committed(&broker, "billing");
    assert_eq!(before, offsets_of("orders", &[(0, 3), (1, 1)]));

    // Without --execute: the plan, and nothing changes.
    let out = wharf(
        &broker,
        &words("group reset-offsets billing --topic orders --to-earliest"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("GROUP    TOPIC   PARTITION  NEW-OFFSET\n"),
        "{text}"
    );
    assert_eq!(
        table_rows(&text, "GROUP "),
        [
            ["billing", "orders", "0", "0"],
            ["billing", "orders", "1", "0"]
        ]
    );
    assert!(stderr(&out).contains("--execute"), "{}", stderr(&out));
    let plan = json(
        &broker,
        &words("group reset-offsets billing --topic orders --to-latest"),
    );
    assert_eq!(plan["executed"], false);
    assert_eq!(plan["offsets"][0]["new_offset"], 10);
    assert_eq!(plan["offsets"][1]["new_offset"], 4);
    assert_eq!(committed(&broker, "billing"), before);

    // Each mode with --execute, checked through group describe.
    let reset = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", "billing"];
        all.extend(args);
        all.push("--execute");
        ok(&broker, &all)
    };
    let text = reset(&["--topic", "orders", "--to-latest"]);
    assert_eq!(
        table_rows(&text, "GROUP "),
        [
            ["billing", "orders", "0", "10"],
            ["billing", "orders", "1", "4"]
        ]
    );
    assert_eq!(
        committed(&broker, "billing"),
        offsets_of("orders", &[(0, 10), (1, 4)])
    );
    reset(&["--topic", "orders", "--to-earliest"]);
    assert_eq!(
        committed(&broker, "billing"),
        offsets_of("orders", &[(0, 0), (1, 0)])
    );
    // To an offset past partition 1's end: clamped to it.
    reset(&["--topic", "orders", "--to-offset", "6"]);
    assert_eq!(
        committed(&broker, "billing"),
        offsets_of("orders", &[(0, 6), (1, 4)])
    );
    // Before the log start: clamped to it.
    reset(&["--topic", "orders:1", "--to-offset", "-5"]);
    assert_eq!(
        committed(&broker, "billing"),
        offsets_of("orders", &[(0, 6), (1, 0)])
    );
    reset(&["--topic", "orders:1", "--to-offset", "4"]);
    // Shift only partition 0 back.
    reset(&["--topic", "orders:0", "--shift-by", "-2"]);
    assert_eq!(
        committed(&broker, "billing"),
        offsets_of("orders", &[(0, 4), (1, 4)])
    );
    // Shifts past either end are clamped.
    reset(&["--topic", "orders", "--shift-by", "100"]);
    assert_eq!(
        committed(&broker, "billing"),
        offsets_of("orders", &[(0, 10), (1, 4)])
    );
    reset(&["--topic", "orders:0,1", "--shift-by", "-100"]);
    assert_eq!(
        committed(&broker, "billing"),
        offsets_of("orders", &[(0, 0), (1, 0)])
    );
    // Several topics; JSON output.
    let done = json(
        &broker,
        &words(
            "group reset-offsets billing --topic orders:1 --topic audit --to-offset 2 --execute",
        ),
    );
    assert_eq!(done["group"], "billing");
    assert_eq!(done["executed"], true);
    assert_eq!(
        done["offsets"],
        serde_json::json!([
            {"topic": "audit", "partition": 0, "new_offset": 2},
            {"topic": "orders", "partition": 1, "new_offset": 2},
        ])
    );
    let mut expected = offsets_of("audit", &[(0, 2)]);
    expected.extend(offsets_of("orders", &[(0, 0), (1, 2)]));
    assert_eq!(committed(&broker, "billing"), expected);

    // A partition that does not exist, a shift without a committed offset,
    // and no reset mode at all are refused.
    let err = fails(
        &broker,
        &words("group reset-offsets billing --topic orders:7 --to-earliest"),
    );
    assert!(err.contains("partition 7 does not exist"), "{err}");
    let err = fails(
        &broker,
        &words("group reset-offsets fresh --topic orders --shift-by 1"),
    );
    assert!(err.contains("no committed offset"), "{err}");
    let out = wharf(
        &broker,
        &["group", "reset-offsets", "billing", "--topic", "orders"],
    );
    assert!(!out.status.success());
    assert_eq!(committed(&broker, "billing"), expected);

    // A group that does not exist yet is created by the commit, as in Kafka.
    reset(&["--topic", "audit", "--to-latest"]);
    ok(
        &broker,
        &words("group reset-offsets fresh --topic audit --to-latest --execute"),
    );
    assert_eq!(committed(&broker, "fresh"), offsets_of("audit", &[(0, 3)]));
}

/// 2026-01-01T00:00:00Z in ms.
const NEW_YEAR: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;

#[test]
fn reset_offsets_by_time_and_consume_from_a_time_pick_the_first_record_that_new() {
    let broker = TestBroker::start();
    ok(&broker, &["topic", "create", "timed", "--partitions", "2"]);
    // Partition 0: a record a minute from 00:00 to 00:05; partition 1 from
    // 00:00 to 00:02.
    let mut records: Vec<(i32, i64, String)> = (0..6)
        .map(|i| (0, NEW_YEAR + i * MINUTE, format!("p0-{i}")))
        .collect();
    records.extend((0..3).map(|i| (1, NEW_YEAR + i * MINUTE, format!("p1-{i}"))));
    let borrowed: Vec<(i32, i64, &str)> = records
        .iter()
        .map(|(p, t, v)| (*p, *t, v.as_str()))
        .collect();
    produce_timed(&broker, "timed", &borrowed);
    commit_offsets(&broker, "clock", "timed", &[(0, 0), (1, 0)]);

    let to_datetime = |datetime: &str| {
        ok(
            &broker,
            &[
                "group",
                "reset-offsets",
                "clock",
                "--topic",
                "timed",
                "--to-datetime",
                datetime,
                "--execute",
            ],
        );
        committed(&broker, "clock")
    };
    // Exactly a record's time: that record.
    assert_eq!(
        to_datetime("2026-01-01T00:02:00Z"),
        offsets_of("timed", &[(0, 2), (1, 2)])
    );
    // Between two records: the later one; past partition 1's last record:
    // its log end.
    assert_eq!(
        to_datetime("2026-01-01T00:02:30.500Z"),
        offsets_of("timed", &[(0, 3), (1, 3)])
    );
    assert_eq!(
        to_datetime("2026-01-01T01:04:00+01:00"),
        offsets_of("timed", &[(0, 4), (1, 3)])
    );
    // Before every record: the first.
    assert_eq!(
        to_datetime("2025-12-31T23:00:00Z"),
        offsets_of("timed", &[(0, 0), (1, 0)])
    );
    // A malformed time is a usage error (clap's exit code 2).
    let args = words("group reset-offsets clock --topic timed --to-datetime noon");
    let out = wharf(&broker, &args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a datetime"),
        "{}",
        stderr(&out)
    );

    // --by-duration counts back from now: records an hour apart ending a
    // minute ago.
    ok(&broker, &["topic", "create", "recent", "--partitions", "1"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    produce_timed(
        &broker,
        "recent",
        &[
            (0, now - 180 * MINUTE, "3h"),
            (0, now - 120 * MINUTE, "2h"),
            (0, now - MINUTE, "1m"),
        ],
    );
    let by_duration = |duration: &str| {
        let d = json(
            &broker,
            &[
                "group",
                "reset-offsets",
                "recent-group",
                "--topic",
                "recent",
                "--by-duration",
                duration,
                "--execute",
            ],
        );
        d["offsets"][0]["new_offset"].as_i64().unwrap()
    };
    assert_eq!(by_duration("PT90M"), 2);
    assert_eq!(by_duration("PT2H30M"), 1);
    assert_eq!(by_duration("P1D"), 0);
    // Newer than every record: the log end.
    assert_eq!(by_duration("PT10S"), 3);
    assert_eq!(
        committed(&broker, "recent-group"),
        offsets_of("recent", &[(0, 3)])
    );

    // consume --offset-time starts each partition at its first record at
    // or after the time (partition 1 has none: it starts at its end).
    let got = consume_json(
        &broker,
        &words("timed --offset-time 2026-01-01T00:02:30Z --timeout-ms 3000"),
    );
    let seen: Vec<(i64, i64, i64, String)> = got
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
                r["timestamp"].as_i64().unwrap(),
                r["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        (3..6)
            .map(|i| (0, i, NEW_YEAR + i * MINUTE, format!("p0-{i}")))
            .collect::<Vec<_>>()
    );
    let args = "timed --partition 1 --offset-time 2026-01-01T00:01:00Z --timeout-ms 3000";
    let got = consume_json(&broker, &words(args));
    let offsets: Vec<i64> = got.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, [1, 2]);
}

#[test]
fn a_group_with_members_is_not_reset_and_delete_offsets_spares_subscribed_topics() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(&broker, &["topic", "create", "subs", "--partitions", "2"]);
    ok(&broker, &["topic", "create", "old", "--partitions", "2"]);
    commit_offsets(&broker, "live", "old", &[(0, 0), (1, 0)]);
    let (child, _lines) = spawn_wharf(&bootstrap, &["consume", "subs", "--group", "live"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stable_assignment(&broker, "live").is_none_or(|members| members.is_empty()) {
        assert!(Instant::now() < deadline, "the member never joined");
        std::thread::sleep(Duration::from_millis(200));
    }

    let err = fails(
        &broker,
        &words("group reset-offsets live --topic old --to-earliest --execute"),
    );
    assert!(
        err.contains("group live has active members; stop them first"),
        "{err}"
    );
    // Neither is a dry run allowed.
    fails(
        &broker,
        &words("group reset-offsets live --topic old --to-latest"),
    );

    // The member's topic is refused, another topic's offset goes.
    let out = wharf(
        &broker,
        &words("group delete-offsets live --topic subs:0 --topic old:1"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("TOPIC  PARTITION  STATUS\n"), "{text}");
    let rows = table_rows(&text, "TOPIC ");
    assert_eq!(rows[0], ["old", "1", "Successful"]);
    assert_eq!(rows[1][..3], ["subs", "0", "Error:"]);
    assert!(
        text.contains("an active member of the group is subscribed to this topic")
            && text.contains("GROUP_SUBSCRIBED_TO_TOPIC"),
        "{text}"
    );
    let remaining: Vec<_> = committed(&broker, "live")
        .into_iter()
        .filter(|(t, _, _)| t == "old")
        .collect();
    assert_eq!(remaining, offsets_of("old", &[(0, 0)]));

    // Once the member is gone the group may be reset and its offsets deleted.
    terminate(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while json(&broker, &["group", "describe", "live"])["state"] != "Empty" {
        assert!(Instant::now() < deadline, "the member never left");
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(
        &broker,
        &words("group reset-offsets live --topic subs --to-offset 0 --execute"),
    );
    let d = json(
        &broker,
        &["group", "delete-offsets", "live", "--topic", "subs:0"],
    );
    assert_eq!(
        d["partitions"],
        serde_json::json!([{"topic": "subs", "partition": 0, "error": null, "message": null}])
    );
    let mut expected = offsets_of("old", &[(0, 0)]);
    expected.extend(offsets_of("subs", &[(1, 0)]));
    assert_eq!(committed(&broker, "live"), expected);
    let err = fails(
        &broker,
        &["group", "delete-offsets", "nobody", "--topic", "old"],
    );
    assert!(err.contains("GROUP_ID_NOT_FOUND"), "{err}");
}

#[test]
fn health_is_an_api_versions_round_trip() {
    let broker = TestBroker::start();
    let out = wharf(&broker, &["health"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));

    // Nothing listening: unhealthy, exit 1, within the timeout.
    let closed = common::cluster::free_port();
    let out = wharf_with_input(
        &format!("127.0.0.1:{closed}"),
        &["health", "--timeout-ms", "1000"],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unhealthy"), "{}", stderr(&out));
}

/// The producer id, epoch and first sequence of each batch of `topic`-0.
fn batch_identities(broker: &TestBroker, topic: &str) -> Vec<(i64, i16, i32)> {
    let mut client = broker.client();
    let fetched = common::fetch_partition(&mut client, topic, 0, 0);
    assert_eq!(fetched.error_code, 0);
    let records = fetched.records.unwrap_or_default();
    wharf_protocol::batch::batches(&records)
        .map(|b| {
            let (header, _) = b.unwrap();
            (
                header.producer_id(),
                header.producer_epoch(),
                header.base_sequence(),
            )
        })
        .collect()
}

#[test]
fn produce_is_idempotent_with_acks_all_unless_told_otherwise() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(&broker, &["topic", "create", "idem", "--partitions", "1"]);
    // Two batches (a small batch size), numbered on from one another.
    let out = wharf_with_input(
        &bootstrap,
        &["produce", "idem", "--batch-size", "1"],
        b"a\nb\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let first = batch_identities(&broker, "idem");
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first[0].0 >= 0, "a producer id: {first:?}");
    assert_eq!(first[1].0, first[0].0);
    assert_eq!((first[0].2, first[1].2), (0, 1), "{first:?}");

    for args in [&["--no-idempotence"][..], &["--acks", "1"]] {
        let mut all = vec!["produce", "idem"];
        all.extend(args);
        let out = wharf_with_input(&bootstrap, &all, b"c\n");
        assert!(out.status.success(), "{}", stderr(&out));
        let last = *batch_identities(&broker, "idem").last().unwrap();
        assert_eq!(last, (-1, -1, -1), "{args:?}");
    }
    let err = fails(&broker, &["produce", "idem", "--idempotent", "--acks", "1"]);
    assert!(err.contains("--idempotent needs --acks all"), "{err}");
    assert_eq!(
        consume_json(
            &broker,
            &["idem", "--from-beginning", "--max-messages", "4"]
        )
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect::<Vec<_>>(),
        ["a", "b", "c", "c"]
    );
}
