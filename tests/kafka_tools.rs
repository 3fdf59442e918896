//! The Kafka-compatible forms of the command line (`wharf kafka-topics.sh`,
//! `kafka-console-producer.sh`, `kafka-console-consumer.sh`,
//! `kafka-consumer-groups.sh`, `kafka-configs.sh`, and the binary run
//! through a symlink of those names) against a real `wharf serve`: the
//! command lines of Kafka's quickstart and operations docs, run as
//! written, their output compared with fixtures of Kafka's format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{run_with_input, TestBroker};

const WHARF: &str = env!("CARGO_BIN_EXE_wharf");

/// Runs `program ARGS` with `stdin` as its input (and no WHARF_BOOTSTRAP).
fn run(program: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_with_input(
        Command::new(program)
            .args(args)
            .env_remove("WHARF_BOOTSTRAP"),
        stdin,
    )
}

/// `kafka-topics.sh --create --topic TOPIC --partitions N`.
fn create_topic(broker: &TestBroker, topic: &str, partitions: &str) {
    let created = ok(
        broker,
        "kafka-topics.sh",
        &["--create", "--topic", topic, "--partitions", partitions],
    );
    assert_eq!(created, format!("Created topic {topic}.\n"));
}

/// `wharf TOOL ARGS --bootstrap-server BROKER` with `stdin`.
fn tool_with_input(broker: &TestBroker, tool: &str, args: &[&str], stdin: &[u8]) -> Output {
    let bootstrap = broker.addr.to_string();
    let mut all = vec![tool];
    all.extend(args);
    all.extend(["--bootstrap-server", &bootstrap]);
    run(Path::new(WHARF), &all, stdin)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a tool that must succeed; returns its stdout.
fn ok(broker: &TestBroker, tool: &str, args: &[&str]) -> String {
    ok_with_input(broker, tool, args, b"")
}

fn ok_with_input(broker: &TestBroker, tool: &str, args: &[&str], stdin: &[u8]) -> String {
    let out = tool_with_input(broker, tool, args, stdin);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs a tool that must fail; returns its stdout and stderr.
fn fails(broker: &TestBroker, tool: &str, args: &[&str]) -> String {
    let out = tool_with_input(broker, tool, args, b"");
    assert!(
        !out.status.success(),
        "{tool} {args:?} should fail: {}{}",
        stdout(&out),
        stderr(&out)
    );
    format!("{}{}", stdout(&out), stderr(&out))
}

/// `text` with the value after each `TopicId: ` replaced by `<id>`.
fn mask_topic_ids(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split('\t')
                .map(|field| match field.strip_prefix("TopicId: ") {
                    Some(id) => {
                        assert_eq!(id.len(), 22, "a topic id is 22 base64 characters: {id}");
                        "TopicId: <id>".to_string()
                    }
                    None => field.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\t")
                + "\n"
        })
        .collect()
}

#[test]
fn kafka_topics_creates_lists_describes_alters_and_deletes_in_kafkas_format() {
    let broker = TestBroker::start();
    // Kafka's quickstart, as written (plus a config, as in the ops docs).
    let created = ok(
        &broker,
        "kafka-topics.sh",
        &[
            "--create",
            "--topic",
            "quickstart-events",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=100000",
        ],
    );
    assert_eq!(created, "Created topic quickstart-events.\n");
    let again = fails(
        &broker,
        "kafka-topics.sh",
        &["--create", "--topic", "quickstart-events"],
    );
    assert!(again.contains("already exists"), "{again}");
    let quiet = ok(
        &broker,
        "kafka-topics.sh",
        &[
            "--create",
            "--topic",
            "quickstart-events",
            "--if-not-exists",
        ],
    );
    assert_eq!(quiet, "");

    ok(
        &broker,
        "kafka-topics",
        &["--create", "--topic", "orders", "--partitions", "1"],
    );
    let listed = ok(
        &broker,
        "kafka-topics.sh",
        &["--list", "--exclude-internal"],
    );
    assert_eq!(listed, "orders\nquickstart-events\n");

    let described = ok(
        &broker,
        "kafka-topics.sh",
        &["--describe", "--topic", "quickstart-events"],
    );
    let expected = "\
Topic: quickstart-events\tTopicId: <id>\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=100000
\tTopic: quickstart-events\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: N/A\tLastKnownElr: N/A
\tTopic: quickstart-events\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: N/A\tLastKnownElr: N/A
\tTopic: quickstart-events\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: N/A\tLastKnownElr: N/A
";
    assert_eq!(mask_topic_ids(&described), expected);
    // No partition is under-replicated or unavailable on one healthy broker.
    let under = ok(
        &broker,
        "kafka-topics.sh",
        &["--describe", "--under-replicated-partitions"],
    );
    assert_eq!(under, "");

    let altered = ok(
        &broker,
        "kafka-topics.sh",
        &[
            "--alter",
            "--topic",
            "quickstart-events",
            "--partitions",
            "4",
        ],
    );
    assert_eq!(altered, "");
    let described = ok(
        &broker,
        "kafka-topics.sh",
        &["--describe", "--topic", "quickstart-events"],
    );
    assert!(described.contains("\tPartitionCount: 4\t"), "{described}");
    assert!(
        described.contains("\tPartition: 3\tLeader: 1\t"),
        "{described}"
    );

    let deleted = ok(
        &broker,
        "kafka-topics.sh",
        &["--delete", "--topic", "orders"],
    );
    assert_eq!(deleted, "");
    let listed = ok(
        &broker,
        "kafka-topics.sh",
        &["--list", "--exclude-internal"],
    );
    assert_eq!(listed, "quickstart-events\n");
    let missing = fails(
        &broker,
        "kafka-topics.sh",
        &["--describe", "--topic", "orders"],
    );
    assert!(
        missing.contains("Topic 'orders' does not exist as expected"),
        "{missing}"
    );
    let unneeded = ok(
        &broker,
        "kafka-topics.sh",
        &["--delete", "--topic", "orders", "--if-exists"],
    );
    assert_eq!(unneeded, "");
}

#[test]
fn console_producer_and_consumer_round_trip_keys_as_kafkas_tools_print_them() {
    let broker = TestBroker::start();
    create_topic(&broker, "events", "1");
    // The ops docs' keyed producer, with the old --broker-list spelling.
    let bootstrap = broker.addr.to_string();
    let out = run(
        Path::new(WHARF),
        &[
            "kafka-console-producer.sh",
            "--broker-list",
            &bootstrap,
            "--topic",
            "events",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--producer-property",
            "acks=all",
            "--compression-codec",
            "zstd",
        ],
        b"user1:first\nuser2:second:with:colons\nnokey\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");

    let out = tool_with_input(
        &broker,
        "kafka-console-consumer.sh",
        &[
            "--topic",
            "events",
            "--from-beginning",
            "--max-messages",
            "3",
            "--property",
            "print.key=true",
            "--property",
            "key.separator=|",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A null key prints as Kafka's null literal.
    assert_eq!(
        stdout(&out),
        "user1|first\nuser2|second:with:colons\nnull|nokey\n"
    );
    assert!(
        stderr(&out).contains("Processed a total of 3 messages"),
        "{}",
        stderr(&out)
    );

    // Values only by default; one partition from an offset, with the
    // partition and offset printed.
    let values = ok(
        &broker,
        "kafka-console-consumer.sh",
        &[
            "--topic",
            "events",
            "--partition",
            "0",
            "--offset",
            "1",
            "--max-messages",
            "2",
            "--property",
            "print.partition=true",
            "--property",
            "print.offset=true",
        ],
    );
    assert_eq!(
        values,
        "Partition:0\tOffset:1\tsecond:with:colons\nPartition:0\tOffset:2\tnokey\n"
    );

    // Acks and codec in the old flag spellings.
    ok_with_input(
        &broker,
        "kafka-console-producer",
        &[
            "--topic",
            "events",
            "--request-required-acks",
            "1",
            "--compression-codec",
        ],
        b"gzipped\n",
    );
    let last = ok(
        &broker,
        "kafka-console-consumer.sh",
        &[
            "--topic",
            "events",
            "--partition",
            "0",
            "--offset",
            "3",
            "--max-messages",
            "1",
            "--isolation-level",
            "read_committed",
        ],
    );
    assert_eq!(last, "gzipped\n");

    let refused = fails(
        &broker,
        "kafka-console-consumer.sh",
        &["--topic", "events", "--offset", "1"],
    );
    assert!(
        refused.contains("The partition is required when offset is specified."),
        "{refused}"
    );
}

#[test]
fn consumer_groups_describe_reset_and_delete_in_kafkas_format() {
    let broker = TestBroker::start();
    create_topic(&broker, "orders", "1");
    ok_with_input(
        &broker,
        "kafka-console-producer.sh",
        &["--topic", "orders"],
        b"a\nb\nc\n",
    );
    // A group member reads two of the three records and commits on exit.
    let read = ok(
        &broker,
        "kafka-console-consumer.sh",
        &[
            "--topic",
            "orders",
            "--group",
            "my-group",
            "--from-beginning",
            "--max-messages",
            "2",
        ],
    );
    assert_eq!(read, "a\nb\n");

    assert_eq!(
        ok(&broker, "kafka-consumer-groups.sh", &["--list"]),
        "my-group\n"
    );

    let out = tool_with_input(
        &broker,
        "kafka-consumer-groups.sh",
        &["--describe", "--group", "my-group"],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = "
GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID
my-group        orders          0          2               3               1               -               -               -
";
    assert_eq!(stdout(&out), expected);
    assert!(
        stderr(&out).contains("Consumer group 'my-group' has no active members."),
        "{}",
        stderr(&out)
    );

    let state = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &["--describe", "--group", "my-group", "--state"],
    );
    let coordinator = format!("{}  (1)", broker.addr);
    let width = coordinator.len().max(25);
    let expected = format!(
        "\n{:<width$} {:<25} {:<20} {:<15} {}\n{:<width$} {:<25} {:<20} {:<15} {}\n",
        "GROUP",
        "COORDINATOR (ID)",
        "ASSIGNMENT-STRATEGY",
        "STATE",
        "#MEMBERS",
        "my-group",
        coordinator,
        "",
        "Empty",
        0
    );
    assert_eq!(state, expected);

    // The ops docs' reset: a dry run changes nothing.
    let plan = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &[
            "--reset-offsets",
            "--group",
            "my-group",
            "--topic",
            "orders",
            "--to-earliest",
            "--dry-run",
        ],
    );
    let plan_to = |offset: i64| {
        format!(
            "\n{:<30} {:<30} {:<10} {:<15}\n{:<30} {:<30} {:<10} {:<15}\n",
            "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET", "my-group", "orders", 0, offset
        )
    };
    assert_eq!(plan, plan_to(0));
    for (scenario, offset) in [
        (&["--to-offset", "1"][..], 1),
        (&["--to-latest"][..], 3),
        (&["--to-current"][..], 2),
        (&["--shift-by", "-1"][..], 1),
        // Every record is less than an hour old: the first one.
        (&["--by-duration", "PT1H"][..], 0),
        (&["--to-datetime", "2000-01-01T00:00:00.000"][..], 0),
    ] {
        let mut args = vec![
            "--reset-offsets",
            "--group",
            "my-group",
            "--topic",
            "orders",
        ];
        args.extend(scenario);
        args.push("--dry-run");
        let plan = ok(&broker, "kafka-consumer-groups.sh", &args);
        assert_eq!(plan, plan_to(offset), "{scenario:?}");
    }
    let still = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &["--describe", "--group", "my-group"],
    );
    assert!(still.contains("orders          0          2 "), "{still}");

    let executed = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &[
            "--reset-offsets",
            "--group",
            "my-group",
            "--topic",
            "orders",
            "--to-earliest",
            "--execute",
        ],
    );
    assert_eq!(executed, plan_to(0));
    let reset = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &["--describe", "--group", "my-group"],
    );
    assert!(
        reset.contains(
            "my-group        orders          0          0               3               3 "
        ),
        "{reset}"
    );
    let shifted = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &[
            "--reset-offsets",
            "--group",
            "my-group",
            "--all-topics",
            "--shift-by",
            "2",
            "--execute",
        ],
    );
    assert_eq!(shifted, plan_to(2));

    let deleted_offsets = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &[
            "--delete-offsets",
            "--group",
            "my-group",
            "--topic",
            "orders",
        ],
    );
    let expected = format!(
        "Request succeed for deleting offsets with topic orders group my-group\n\n{:<30} {:<15} {:<15}\n{:<30} {:<15} {:<15}\n",
        "TOPIC", "PARTITION", "STATUS", "orders", 0, "Successful"
    );
    assert_eq!(deleted_offsets, expected);

    let deleted = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &["--delete", "--group", "my-group"],
    );
    assert_eq!(
        deleted,
        "Deletion of requested consumer groups ('my-group') was successful.\n"
    );
    let gone = fails(
        &broker,
        "kafka-consumer-groups.sh",
        &["--describe", "--group", "my-group"],
    );
    assert!(
        gone.contains("Error: Consumer group 'my-group' does not exist."),
        "{gone}"
    );
}

#[test]
fn kafka_configs_describes_and_alters_topic_and_broker_configs() {
    let broker = TestBroker::start();
    create_topic(&broker, "orders", "1");
    let describe = [
        "--entity-type",
        "topics",
        "--entity-name",
        "orders",
        "--describe",
    ];
    assert_eq!(
        ok(&broker, "kafka-configs.sh", &describe),
        "Dynamic configs for topic orders are:\n"
    );
    let altered = ok(
        &broker,
        "kafka-configs.sh",
        &[
            "--entity-type",
            "topics",
            "--entity-name",
            "orders",
            "--alter",
            "--add-config",
            "retention.ms=5000,cleanup.policy=[compact,delete]",
        ],
    );
    assert_eq!(altered, "Completed updating config for topic orders.\n");
    let described = ok(&broker, "kafka-configs.sh", &describe);
    let lines: Vec<&str> = described.lines().collect();
    assert_eq!(lines.len(), 3, "{described}");
    assert_eq!(lines[0], "Dynamic configs for topic orders are:");
    assert!(
        lines[1].starts_with(
            "  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete"
        ),
        "{described}"
    );
    assert!(
        lines[2].starts_with(
            "  retention.ms=5000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=5000"
        ),
        "{described}"
    );
    assert!(lines[2].ends_with('}'), "{described}");

    // The --topic shorthand, and --delete-config back to the default.
    let removed = ok(
        &broker,
        "kafka-configs.sh",
        &[
            "--topic",
            "orders",
            "--alter",
            "--delete-config",
            "retention.ms,cleanup.policy",
        ],
    );
    assert_eq!(removed, "Completed updating config for topic orders.\n");
    assert_eq!(
        ok(&broker, "kafka-configs.sh", &describe),
        "Dynamic configs for topic orders are:\n"
    );
    let all = ok(
        &broker,
        "kafka-configs.sh",
        &["--topic", "orders", "--describe", "--all"],
    );
    assert!(
        all.starts_with("All configs for topic orders are:\n"),
        "{all}"
    );
    assert!(all.contains("\n  retention.ms="), "{all}");

    let brokers = ok(
        &broker,
        "kafka-configs.sh",
        &[
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--describe",
        ],
    );
    assert!(
        brokers.starts_with("Dynamic configs for broker 1 are:\n"),
        "{brokers}"
    );

    let unsupported = fails(
        &broker,
        "kafka-configs.sh",
        &[
            "--entity-type",
            "clients",
            "--entity-name",
            "u",
            "--describe",
        ],
    );
    assert!(unsupported.contains("clients"), "{unsupported}");
}

#[test]
fn a_symlink_named_like_a_kafka_tool_runs_that_tool() {
    let broker = TestBroker::start();
    let dir = tempfile::tempdir().unwrap();
    let with_sh = dir.path().join("kafka-topics.sh");
    let without_sh = dir.path().join("kafka-topics");
    std::os::unix::fs::symlink(WHARF, &with_sh).unwrap();
    std::os::unix::fs::symlink(WHARF, &without_sh).unwrap();
    let bootstrap = broker.addr.to_string();
    let out = run(
        &with_sh,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--create",
            "--topic",
            "linked",
            "--partitions",
            "2",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Created topic linked.\n");
    let out = run(
        &without_sh,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--list",
            "--exclude-internal",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "linked\n");
}

#[test]
fn the_zookeeper_flag_is_refused_with_a_pointer_to_bootstrap_server() {
    for tool in [
        "kafka-topics.sh",
        "kafka-configs.sh",
        "kafka-consumer-groups.sh",
    ] {
        let out = run(
            Path::new(WHARF),
            &[tool, "--zookeeper", "localhost:2181", "--list"],
            b"",
        );
        assert_eq!(out.status.code(), Some(1), "{tool}");
        assert!(
            stderr(&out).contains("--zookeeper") && stderr(&out).contains("--bootstrap-server"),
            "{tool}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "", "{tool}");
    }
}

/// The rows of the --members table: its cells split at runs of spaces.
fn member_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with("GROUP "))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn an_active_member_shows_in_describe_and_blocks_a_reset() {
    let broker = TestBroker::start();
    create_topic(&broker, "live", "2");
    ok_with_input(
        &broker,
        "kafka-console-producer.sh",
        &["--topic", "live"],
        b"one\ntwo\nthree\n",
    );
    let bootstrap = broker.addr.to_string();
    let member = Command::new(WHARF)
        .args([
            "kafka-console-consumer.sh",
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "live",
            "--group",
            "live-group",
            "--from-beginning",
        ])
        .env_remove("WHARF_BOOTSTRAP")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut member = member;
    let printed = BufReader::new(member.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in printed.lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // It prints the three records (in partition order, not produce order).
    let mut got: Vec<String> = (0..3)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["one", "three", "two"]);

    // Wait (bounded) for the member to join and get both partitions.
    let deadline = Instant::now() + Duration::from_secs(30);
    let members = loop {
        let text = ok(
            &broker,
            "kafka-consumer-groups.sh",
            &["--describe", "--group", "live-group", "--members"],
        );
        let rows = member_rows(&text);
        if rows.first().and_then(|r| r.last()).map(String::as_str) == Some("2") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the member never got its partitions: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = members.lines().collect();
    assert_eq!(lines.len(), 3, "{members}");
    assert_eq!(lines[0], "");
    // Kafka's header, each column at least 15 wide, and a trailing space.
    assert!(
        lines[1].starts_with("GROUP           CONSUMER-ID"),
        "{members}"
    );
    assert!(
        lines[1].ends_with(" CLIENT-ID       #PARTITIONS     "),
        "{members}"
    );
    let row = &member_rows(&members)[0];
    assert_eq!(row[0], "live-group");
    let consumer_id = row[1].clone();

    // The offsets view names the owner of both partitions.
    let offsets = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &["--describe", "--group", "live-group"],
    );
    let owned: Vec<&str> = offsets
        .lines()
        .filter(|l| l.starts_with("live-group "))
        .collect();
    assert_eq!(owned.len(), 2, "{offsets}");
    for line in owned {
        assert!(line.contains(&consumer_id), "{offsets}");
    }
    let state = ok(
        &broker,
        "kafka-consumer-groups.sh",
        &["--describe", "--group", "live-group", "--state"],
    );
    let cells: Vec<&str> = state.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(cells.first(), Some(&"live-group"), "{state}");
    assert_eq!(
        cells.iter().rev().take(3).collect::<Vec<_>>(),
        [&"1", &"Stable", &"range"]
    );

    let refused = fails(
        &broker,
        "kafka-consumer-groups.sh",
        &[
            "--reset-offsets",
            "--group",
            "live-group",
            "--topic",
            "live",
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(refused.contains("active members"), "{refused}");

    let status = Command::new("kill")
        .args(["-TERM", &member.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = common::wait_bounded(member, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Processed a total of 3 messages"),
        "{}",
        stderr(&out)
    );
    let listed = ok(&broker, "kafka-consumer-groups.sh", &["--list", "--state"]);
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, [vec!["GROUP", "STATE"], vec!["live-group", "Empty"]]);
}
