//! Protocol-level fault injection (`wharf serve --admin-listen`, `wharf
//! faults`) against the real binary: off without the admin listener; with
//! it, rules are added, listed and cleared through the CLI, and requests
//! see their errors, delays and dropped connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{create_topic, fetch_partition, produce_batch, run_with_input, Client, TestBroker};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, HeartbeatRequest, HeartbeatResponse, ProduceRequest, ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

/// NOT_LEADER_OR_FOLLOWER's code.
const NOT_LEADER: i16 = 6;

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn faults(admin: &str, args: &[&str]) -> Output {
    run_with_input(
        Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("faults")
            .args(args)
            .arg("--admin")
            .arg(admin),
        b"",
    )
}

fn ok(admin: &str, args: &[&str]) -> String {
    let out = faults(admin, args);
    assert!(
        out.status.success(),
        "wharf faults {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(admin: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    serde_json::from_str(&ok(admin, &all)).unwrap()
}

/// `wharf faults add` arguments: Produce to orders fails `count` times
/// with NOT_LEADER_OR_FOLLOWER.
fn not_leader_on_orders(count: &str) -> [&str; 9] {
    [
        "add",
        "--api",
        "Produce",
        "--topic",
        "orders",
        "--error",
        "NOT_LEADER_OR_FOLLOWER",
        "--count",
        count,
    ]
}

/// A broker with its admin listener, and that listener's address.
fn broker_with_admin() -> (TestBroker, String) {
    let admin = free_addr();
    let broker = TestBroker::start_logged(&["--admin-listen", &admin]);
    (broker, admin)
}

/// One v2 batch of one record, as `produce_batch` takes it.
fn one_record() -> Vec<u8> {
    let records = [(None, Some(&b"v"[..]), 0)];
    wharf_protocol::batch::build_batch(0, &records, wharf_protocol::compression::Compression::None)
        .unwrap()
}

#[test]
fn without_the_admin_listener_faults_cannot_be_reached() {
    let broker = TestBroker::start();
    let out = faults(&free_addr(), &["list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not connect"), "{stderr}");
    // The Kafka listener does not answer the admin API either.
    let out = faults(&broker.addr.to_string(), &["list"]);
    assert!(!out.status.success());
}

#[test]
fn rules_are_added_listed_and_cleared_with_the_cli() {
    let (_broker, admin) = broker_with_admin();
    let added = json(&admin, &not_leader_on_orders("3"));
    assert_eq!(added["id"], 1);
    assert_eq!(added["api"], "Produce");
    assert_eq!(added["remaining"], 3);
    ok(&admin, &["add", "--api", "fetch", "--latency", "500ms"]);
    ok(
        &admin,
        &["add", "--drop-connection", "--probability", "0.1"],
    );
    let table = ok(&admin, &["list"]);
    assert!(table.contains("error NOT_LEADER_OR_FOLLOWER"), "{table}");
    assert!(table.contains("latency 500ms"), "{table}");
    assert!(table.contains("drop-connection"), "{table}");
    assert_eq!(json(&admin, &["list"]).as_array().unwrap().len(), 3);

    let refused = faults(&admin, &["add", "--api", "Nope", "--latency", "1s"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown Kafka API"));

    assert!(ok(&admin, &["clear"]).contains("cleared 3"));
    assert_eq!(json(&admin, &["list"]), serde_json::json!([]));
}

#[test]
fn produce_errors_hit_the_rules_topic_for_count_requests() {
    let (broker, admin) = broker_with_admin();
    let mut client = broker.client();
    create_topic(&mut client, "orders", 1);
    create_topic(&mut client, "audit", 1);
    ok(&admin, &not_leader_on_orders("2"));
    assert_eq!(produce_batch(&mut client, "audit", 0, one_record()).0, 0);
    // One request for both topics: only orders fails, audit is appended.
    let topic = |name: &str| {
        let mut p = PartitionProduceData::default();
        p.records = Some(Bytes::from(one_record()));
        let mut t = TopicProduceData::default();
        t.name = common::topic_name(name);
        t.partition_data = vec![p];
        t
    };
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![topic("orders"), topic("audit")];
    let resp: ProduceResponse = client.call(ApiKey::Produce, 9, &req);
    let code = |name: &str| {
        resp.responses
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .map(|t| t.partition_responses[0].error_code)
    };
    assert_eq!(code("orders"), Some(NOT_LEADER));
    assert_eq!(code("audit"), Some(0));
    assert_eq!(
        produce_batch(&mut client, "orders", 0, one_record()).0,
        NOT_LEADER
    );
    // The count is spent: the rule is gone and orders takes records again.
    assert_eq!(
        produce_batch(&mut client, "orders", 0, one_record()),
        (0, 0)
    );
    assert_eq!(json(&admin, &["list"]), serde_json::json!([]));
    let log = broker.log();
    assert!(
        log.contains("fault injected") && log.contains("orders"),
        "{log}"
    );
}

#[test]
fn fetch_and_group_errors_latency_and_dropped_connections() {
    let (broker, admin) = broker_with_admin();
    let mut client = broker.client();
    create_topic(&mut client, "orders", 1);
    ok(
        &admin,
        &[
            "add",
            "--api",
            "Fetch",
            "--error",
            "UNKNOWN_TOPIC_OR_PARTITION",
            "--count",
            "1",
        ],
    );
    assert_eq!(fetch_partition(&mut client, "orders", 0, 0).error_code, 3);
    assert_eq!(fetch_partition(&mut client, "orders", 0, 0).error_code, 0);

    ok(
        &admin,
        &[
            "add",
            "--api",
            "Heartbeat",
            "--error",
            "NOT_COORDINATOR",
            "--count",
            "1",
        ],
    );
    let mut hb = HeartbeatRequest::default();
    hb.group_id = kafka_protocol::messages::GroupId(StrBytes::from_static_str("g"));
    let resp: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &hb);
    assert_eq!(resp.error_code, 16);

    ok(
        &admin,
        &[
            "add",
            "--api",
            "Produce",
            "--latency",
            "300ms",
            "--count",
            "1",
        ],
    );
    let started = Instant::now();
    assert_eq!(produce_batch(&mut client, "orders", 0, one_record()).0, 0);
    assert!(started.elapsed() >= Duration::from_millis(300));

    ok(
        &admin,
        &[
            "add",
            "--api",
            "Produce",
            "--drop-connection",
            "--count",
            "1",
        ],
    );
    let mut dropped = broker.client();
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    dropped.send(ApiKey::Produce, 9, &req);
    assert!(dropped.read_frame().is_none());
    assert!(broker.log().contains("drops the connection"));
    let mut again = Client::connect(broker.addr);
    assert_eq!(produce_batch(&mut again, "orders", 0, one_record()).0, 0);
}
