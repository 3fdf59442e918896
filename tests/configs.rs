//! Topic configs, retention and DeleteRecords against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestBroker};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request as inc;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_protocol::batch::build_batch;
use wharf_protocol::compression::Compression;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn create(client: &mut Client, topic: &str, configs: &[(&str, &str)]) -> CreateTopicsResponse {
    common::create_topic_with_configs(client, topic, 1, configs)
}

fn describe(client: &mut Client, version: i16, kind: i8, name: &str) -> DescribeConfigsResult {
    let mut r = DescribeConfigsResource::default();
    r.resource_type = kind;
    r.resource_name = s(name);
    r.configuration_keys = None;
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![r];
    req.include_synonyms = true;
    req.include_documentation = version >= 3;
    let resp: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, version, &req);
    resp.results.into_iter().next().unwrap()
}

/// (value, source) of config `key` in a describe result.
fn entry(result: &DescribeConfigsResult, key: &str) -> (Option<String>, i8) {
    let c = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"));
    (c.value.as_ref().map(|v| v.to_string()), c.config_source)
}

fn incremental(
    client: &mut Client,
    version: i16,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    let mut r = inc::AlterConfigsResource::default();
    r.resource_type = TOPIC;
    r.resource_name = s(topic);
    r.configs = ops
        .iter()
        .map(|(k, op, v)| {
            let mut c = inc::AlterableConfig::default();
            c.name = s(k);
            c.config_operation = *op;
            c.value = v.map(s);
            c
        })
        .collect();
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![r];
    let resp: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, version, &req);
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn produce(client: &mut Client, topic: &str, values: &[&str], ts: i64) -> (i16, i64) {
    produce_keyed(client, topic, Some(b"k"), values, ts)
}

fn produce_keyed(
    client: &mut Client,
    topic: &str,
    key: Option<&[u8]>,
    values: &[&str],
    ts: i64,
) -> (i16, i64) {
    let records: Vec<_> = values
        .iter()
        .map(|v| (key, Some(v.as_bytes()), ts))
        .collect();
    let batch = build_batch(0, &records, Compression::None).unwrap();
    common::produce_batch(client, topic, 0, batch)
}

/// (error, log start offset) of a fetch at `offset`.
fn fetch(client: &mut Client, topic: &str, offset: i64) -> (i16, i64) {
    let mut p = FetchPartition::default();
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = TopicName(s(topic));
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = (-1).into();
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    let resp: FetchResponse = client.call(ApiKey::Fetch, 12, &req);
    let p = &resp.responses[0].partitions[0];
    (p.error_code, p.log_start_offset)
}

#[test]
fn describe_shows_defaults_static_flags_and_overrides_at_every_version() {
    let broker = TestBroker::start_with(&["--log-retention-hours", "2"]);
    let mut client = broker.client();
    assert_eq!(
        create(&mut client, "t", &[("cleanup.policy", "compact")]).topics[0].error_code,
        0
    );
    for v in 1..=4 {
        let r = describe(&mut client, v, TOPIC, "t");
        assert_eq!(r.error_code, 0);
        assert_eq!(
            entry(&r, "cleanup.policy"),
            (Some("compact".into()), DYNAMIC_TOPIC_CONFIG)
        );
        assert_eq!(
            entry(&r, "retention.ms"),
            (Some("7200000".into()), STATIC_BROKER_CONFIG)
        );
        assert_eq!(
            entry(&r, "segment.bytes"),
            (Some("1073741824".into()), DEFAULT_CONFIG)
        );
        assert_eq!(
            entry(&r, "compression.type"),
            (Some("producer".into()), DEFAULT_CONFIG)
        );
        let retention = r
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .unwrap();
        let syns: Vec<_> = retention
            .synonyms
            .iter()
            .map(|s| (s.name.to_string(), s.source))
            .collect();
        assert_eq!(
            syns,
            [
                ("log.retention.hours".to_string(), STATIC_BROKER_CONFIG),
                ("log.retention.hours".to_string(), DEFAULT_CONFIG)
            ]
        );
        if v >= 3 {
            assert_eq!(retention.config_type, 5); // LONG
            assert!(!retention.documentation.as_ref().unwrap().is_empty());
        }
        let b = describe(&mut client, v, BROKER, "1");
        assert_eq!(b.error_code, 0);
        assert_eq!(
            entry(&b, "log.retention.hours"),
            (Some("2".into()), STATIC_BROKER_CONFIG)
        );
        assert_eq!(
            entry(&b, "log.segment.bytes"),
            (Some("1073741824".into()), DEFAULT_CONFIG)
        );
        assert!(b.configs.iter().all(|c| c.read_only));
    }
    assert_eq!(
        describe(&mut client, 4, TOPIC, "nope").error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        describe(&mut client, 4, BROKER, "7").error_code,
        ResponseError::InvalidRequest.code()
    );
}

#[test]
fn create_rejects_unknown_and_invalid_configs_with_messages() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    for (k, v, why) in [
        (
            "no.such.config",
            "1",
            "Unknown topic config name: no.such.config",
        ),
        ("retention.ms", "soon", "retention.ms"),
        ("cleanup.policy", "shred", "cleanup.policy"),
    ] {
        let r = create(&mut client, "bad", &[(k, v)]);
        assert_eq!(
            r.topics[0].error_code,
            ResponseError::InvalidConfig.code(),
            "{k}"
        );
        assert!(r.topics[0].error_message.as_ref().unwrap().contains(why));
    }
}

#[test]
fn alterations_apply_durably_and_deleting_restores_the_default() {
    let mut broker = TestBroker::start();
    let mut client = broker.client();
    create(&mut client, "t", &[]);
    for v in 0..=1 {
        let set = [
            ("retention.ms", 0, Some("1000")),
            ("cleanup.policy", 2, Some("compact")),
        ];
        assert_eq!(incremental(&mut client, v, "t", &set).0, 0);
        let r = describe(&mut client, 4, TOPIC, "t");
        assert_eq!(
            entry(&r, "retention.ms"),
            (Some("1000".into()), DYNAMIC_TOPIC_CONFIG)
        );
        assert_eq!(
            entry(&r, "cleanup.policy"),
            (Some("delete,compact".into()), DYNAMIC_TOPIC_CONFIG)
        );
        let undo = [
            ("retention.ms", 1, None),
            ("cleanup.policy", 3, Some("compact")),
        ];
        assert_eq!(incremental(&mut client, v, "t", &undo).0, 0);
        let r = describe(&mut client, 4, TOPIC, "t");
        assert_eq!(
            entry(&r, "retention.ms"),
            (Some("604800000".into()), DEFAULT_CONFIG)
        );
        assert_eq!(
            entry(&r, "cleanup.policy"),
            (Some("delete".into()), DYNAMIC_TOPIC_CONFIG)
        );
    }
    // APPEND on a non-list config, unknown names, duplicates, bad values.
    let (code, msg) = incremental(&mut client, 1, "t", &[("retention.ms", 2, Some("5"))]);
    assert_eq!(code, ResponseError::InvalidConfig.code());
    assert!(msg.unwrap().contains("append is not allowed"));
    let (code, _) = incremental(&mut client, 1, "t", &[("bogus", 0, Some("5"))]);
    assert_eq!(code, ResponseError::InvalidConfig.code());
    let dup = [
        ("retention.ms", 0, Some("5")),
        ("retention.ms", 0, Some("6")),
    ];
    assert_eq!(
        incremental(&mut client, 1, "t", &dup).0,
        ResponseError::InvalidRequest.code()
    );
    assert_eq!(
        incremental(&mut client, 1, "t", &[("segment.bytes", 0, Some("1"))]).0,
        ResponseError::InvalidConfig.code()
    );

    // Legacy AlterConfigs replaces the whole set, at every version.
    for v in 0..=2 {
        let mut r = alter_configs_request::AlterConfigsResource::default();
        r.resource_type = TOPIC;
        r.resource_name = s("t");
        let mut c = alter_configs_request::AlterableConfig::default();
        c.name = s("max.message.bytes");
        c.value = Some(s(&format!("{}", 200 + v)));
        r.configs = vec![c];
        let mut req = AlterConfigsRequest::default();
        req.resources = vec![r];
        let resp: AlterConfigsResponse = client.call(ApiKey::AlterConfigs, v, &req);
        assert_eq!(resp.responses[0].error_code, 0);
    }
    let r = describe(&mut client, 4, TOPIC, "t");
    assert_eq!(
        entry(&r, "cleanup.policy"),
        (Some("delete".into()), DEFAULT_CONFIG)
    );
    assert_eq!(
        entry(&r, "max.message.bytes"),
        (Some("202".into()), DYNAMIC_TOPIC_CONFIG)
    );

    // max.message.bytes applies to the live partition...
    let big = "x".repeat(300);
    assert_eq!(
        produce(&mut client, "t", &[&big], 0).0,
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(produce(&mut client, "t", &["small"], 0).0, 0);
    // ...and survives a crash.
    broker.restart(false);
    let mut client = broker.client();
    let r = describe(&mut client, 4, TOPIC, "t");
    assert_eq!(
        entry(&r, "max.message.bytes"),
        (Some("202".into()), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        produce(&mut client, "t", &[&big], 0).0,
        ResponseError::MessageTooLarge.code()
    );
    // Broker configs cannot be changed.
    let mut r = inc::AlterConfigsResource::default();
    r.resource_type = BROKER;
    r.resource_name = s("1");
    let mut c = inc::AlterableConfig::default();
    c.name = s("log.retention.ms");
    c.value = Some(s("5"));
    r.configs = vec![c];
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![r];
    let resp: IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    assert_eq!(
        resp.responses[0].error_code,
        ResponseError::InvalidRequest.code()
    );
}

#[test]
fn retention_ms_removes_old_data_within_seconds() {
    let broker = TestBroker::start_with(&["--log-retention-check-interval-ms", "100"]);
    let mut client = broker.client();
    create(&mut client, "r", &[("retention.ms", "-1")]);
    let now = || {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    };
    for _ in 0..3 {
        produce(&mut client, "r", &["old"], 1_000); // stamped in 1970
    }
    produce(&mut client, "r", &["recent"], now());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        fetch(&mut client, "r", 0),
        (0, 0),
        "retention.ms=-1 keeps everything"
    );
    assert_eq!(
        incremental(&mut client, 1, "r", &[("retention.ms", 0, Some("1000"))]).0,
        0
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, start) = fetch(&mut client, "r", 0);
        if code == ResponseError::OffsetOutOfRange.code() && fetch(&mut client, "r", 4).1 == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old data still readable (start {start})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Appends continue at the old log end; deleting the override restores
    // the 7-day default, which keeps fresh records.
    assert_eq!(
        incremental(&mut client, 1, "r", &[("retention.ms", 1, None)]).0,
        0
    );
    assert_eq!(produce(&mut client, "r", &["new"], now()).1, 4);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(fetch(&mut client, "r", 4), (0, 4));
}

#[test]
fn a_retention_change_runs_a_pass_at_once() {
    // The default check interval (5 minutes): only the change itself can
    // run the pass within the wait below.
    let broker = TestBroker::start();
    let mut client = broker.client();
    create(&mut client, "watch", &[]);
    for _ in 0..3 {
        produce(&mut client, "watch", &["old"], 1_000); // stamped in 1970
    }
    assert_eq!(
        fetch(&mut client, "watch", 0),
        (0, 0),
        "no pass has run yet"
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            "watch",
            &[("retention.ms", 0, Some("1000"))]
        )
        .0,
        0
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch(&mut client, "watch", 3).1 != 3 {
        assert!(
            Instant::now() < deadline,
            "old data still there 10 s after retention.ms=1000"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn delete_records_moves_log_start_across_restarts() {
    let mut broker = TestBroker::start();
    let mut client = broker.client();
    create(&mut client, "d", &[]);
    for i in 0..5 {
        assert_eq!(produce(&mut client, "d", &["a", "b"], 1_000_000 + i).0, 0);
    }
    let call = |client: &mut Client, version: i16, offset: i64| {
        let mut p = DeleteRecordsPartition::default();
        p.offset = offset;
        let mut t = DeleteRecordsTopic::default();
        t.name = TopicName(s("d"));
        t.partitions = vec![p];
        let mut req = DeleteRecordsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 1000;
        let resp: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, version, &req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(call(&mut client, 0, 3), (0, 3));
    assert_eq!(call(&mut client, 1, 2), (0, 3));
    assert_eq!(
        call(&mut client, 2, 11).0,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(
        fetch(&mut client, "d", 2).0,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(fetch(&mut client, "d", 3), (0, 3));
    broker.restart(false);
    let mut client = broker.client();
    assert_eq!(
        fetch(&mut client, "d", 2).0,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(fetch(&mut client, "d", 3), (0, 3));
    assert_eq!(call(&mut client, 2, -1), (0, 10));
    assert_eq!(
        fetch(&mut client, "d", 9).0,
        ResponseError::OffsetOutOfRange.code()
    );
    assert_eq!(produce(&mut client, "d", &["c"], 0).1, 10);
}

#[test]
fn compacted_topics_refuse_keyless_records_until_the_policy_changes() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create(&mut client, "c", &[("cleanup.policy", "compact")]);
    assert_eq!(
        produce_keyed(&mut client, "c", None, &["v"], 0).0,
        ResponseError::InvalidRecord.code()
    );
    assert_eq!(
        produce_keyed(&mut client, "c", Some(b"k"), &["v"], 0),
        (0, 0)
    );
    assert_eq!(
        incremental(
            &mut client,
            1,
            "c",
            &[("cleanup.policy", 0, Some("delete"))]
        )
        .0,
        0
    );
    assert_eq!(produce_keyed(&mut client, "c", None, &["v"], 0), (0, 1));
}

#[test]
fn a_recreated_topic_does_not_inherit_the_deleted_ones_log_start() {
    let mut broker = TestBroker::start();
    let mut client = broker.client();
    create(&mut client, "re", &[]);
    for _ in 0..5 {
        produce(&mut client, "re", &["a", "b"], 0);
    }
    let mut p = DeleteRecordsPartition::default();
    p.offset = 8;
    let mut t = DeleteRecordsTopic::default();
    t.name = TopicName(s("re"));
    t.partitions = vec![p];
    let mut req = DeleteRecordsRequest::default();
    req.topics = vec![t];
    let resp: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, 2, &req);
    assert_eq!(resp.topics[0].partitions[0].low_watermark, 8);
    let mut del = DeleteTopicsRequest::default();
    del.topic_names = vec![TopicName(s("re"))];
    let resp: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &del);
    assert_eq!(resp.responses[0].error_code, 0);
    create(&mut client, "re", &[]);
    for _ in 0..5 {
        produce(&mut client, "re", &["c", "d"], 0);
    }
    broker.restart(false);
    let mut client = broker.client();
    assert_eq!(fetch(&mut client, "re", 0), (0, 0));
}

#[test]
fn broker_compression_flag_is_the_described_default() {
    let broker = TestBroker::start_with(&["--compression-type", "zstd"]);
    let mut client = broker.client();
    assert_eq!(create(&mut client, "t", &[]).topics[0].error_code, 0);
    let r = describe(&mut client, 4, TOPIC, "t");
    assert_eq!(
        entry(&r, "compression.type"),
        (Some("zstd".into()), STATIC_BROKER_CONFIG)
    );
    // Kafka allows gzip levels 1-9 or -1, not 0.
    let bad = create(&mut client, "g", &[("compression.gzip.level", "0")]);
    assert_eq!(
        bad.topics[0].error_code,
        ResponseError::InvalidConfig.code()
    );
}

/// Partition counts of the topics Metadata lists (internal ones aside).
fn partition_counts(client: &mut Client) -> Vec<(String, usize)> {
    let mut request = MetadataRequest::default();
    request.topics = None;
    request.allow_auto_topic_creation = false;
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    let mut topics: Vec<(String, usize)> = response
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .filter_map(|t| Some((t.name.as_ref()?.to_string(), t.partitions.len())))
        .collect();
    topics.sort();
    topics
}

#[test]
fn create_topics_at_start_makes_them_once() {
    let mut broker = TestBroker::start_with(&["--create-topics", "orders:3, audit:1:1"]);
    let mut client = broker.client();
    let wanted = vec![("audit".to_string(), 1), ("orders".to_string(), 3)];
    let deadline = Instant::now() + Duration::from_secs(30);
    while partition_counts(&mut client) != wanted {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            partition_counts(&mut client)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Restarted with the same flag: the topics are there and unchanged.
    broker.restart(true);
    let mut client = broker.client();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(partition_counts(&mut client), wanted);
}

#[test]
fn a_bad_create_topics_spec_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, expected) in [
        ("orders", "is not NAME:PARTITIONS[:REPLICATION_FACTOR]"),
        ("orders:0", "partitions must be a positive number"),
        ("orders:1:x", "replication factor must be a positive number"),
    ] {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["serve", "--listen", "127.0.0.1:0", "--create-topics", spec])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = common::wait_bounded(child, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{spec} started");
        assert!(stderr.contains(expected), "{spec}: {stderr}");
    }
}
