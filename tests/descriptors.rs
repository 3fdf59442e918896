//! File descriptors and partition limits: a broker under a low open-files
//! limit, asked for thousands of topics, keeps serving and restarts; topic
//! creations past `--max-partitions` are refused with POLICY_VIOLATION.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_protocol::batch::{self, build_batch};
use wharf_protocol::compression::Compression;

/// The open-files limit the broker runs under.
const NOFILE: u64 = 512;
/// New topics named by one Metadata request: four times the limit.
const TOPICS: usize = 2_000;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn topic_name(i: usize) -> String {
    format!("many-{i:05}")
}

fn metadata(client: &mut Client, topics: &[String]) -> MetadataResponse {
    let mut req = MetadataRequest::default();
    req.topics = Some(
        topics
            .iter()
            .map(|t| {
                let mut m = MetadataRequestTopic::default();
                m.name = Some(name(t));
                m
            })
            .collect(),
    );
    req.allow_auto_topic_creation = true;
    client.call(ApiKey::Metadata, 12, &req)
}

fn value(topic: &str, n: usize) -> String {
    format!("{topic}-value-{n}")
}

fn produce(client: &mut Client, topic: &str, n: usize) -> i64 {
    let v = value(topic, n);
    let records = build_batch(0, &[(None, Some(v.as_bytes()), 1_000)], Compression::None).unwrap();
    let (error, offset) = common::produce_batch(client, topic, 0, records);
    assert_eq!(error, 0, "produce to {topic}");
    offset
}

/// Values of partition 0 of `topic` from `offset`.
fn fetch_values(client: &mut Client, topic: &str, offset: i64) -> Vec<String> {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = name(topic);
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = (-1).into();
    req.max_wait_ms = 0;
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    let resp: FetchResponse = client.call(ApiKey::Fetch, 12, &req);
    let part = &resp.responses[0].partitions[0];
    assert_eq!(part.error_code, 0, "fetch from {topic}");
    let records: Bytes = part.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    for item in batch::batches(&records) {
        let (header, bytes) = item.unwrap();
        let payload = batch::records_payload(bytes, &header, 1 << 24).unwrap();
        for record in batch::records(&header, &payload) {
            let record = record.unwrap();
            out.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

/// Produces to and fetches from a spread of the topics, on fresh connections.
fn check_serving(broker: &TestBroker, topics: &[String], round: usize) {
    for (k, topic) in topics.iter().enumerate().step_by(97) {
        let mut client = broker.client();
        // This test is about descriptors, not latency: the first writes
        // after thousands of creations have been seen to take over the
        // default 20 s while other tests load the machine.
        client.set_read_timeout(std::time::Duration::from_secs(120));
        let offset = produce(&mut client, topic, round);
        assert_eq!(offset, round as i64, "{topic}");
        let values = fetch_values(&mut client, topic, 0);
        let want: Vec<String> = (0..=round).map(|n| value(topic, n)).collect();
        assert_eq!(values, want, "topic {k}");
    }
}

#[test]
fn thousands_of_auto_created_topics_stay_within_a_low_descriptor_limit_and_restart() {
    let mut broker = TestBroker::start_limited(NOFILE, &["--log-level", "warn"]);
    let topics: Vec<String> = (0..TOPICS).map(topic_name).collect();
    let mut client = broker.client();

    // The first request creates its share and answers the rest "leader not
    // available", as Kafka answers topics being created; clients ask again.
    let first = metadata(&mut client, &topics);
    // Afterwards the broker still accepts connections and has descriptors
    // to spare.
    let mut other = broker.client();
    let answered = metadata(&mut other, &topics[..1]);
    assert_eq!(answered.topics[0].error_code, 0);
    let fds = broker.open_fds();
    assert!(fds < NOFILE as usize - 64, "{fds} descriptors open");
    assert_eq!(first.topics.len(), TOPICS);
    let created = first.topics.iter().filter(|t| t.error_code == 0).count();
    let waiting = first
        .topics
        .iter()
        .filter(|t| t.error_code == ResponseError::LeaderNotAvailable.code())
        .count();
    assert_eq!(
        created, 100,
        "--max-auto-created-topics-per-request's default"
    );
    assert_eq!(created + waiting, TOPICS);

    let mut rounds = 1;
    loop {
        let resp = metadata(&mut client, &topics);
        for t in &resp.topics {
            assert!(
                t.error_code == 0 || t.error_code == ResponseError::LeaderNotAvailable.code(),
                "{:?}: error {}",
                t.name,
                t.error_code
            );
        }
        rounds += 1;
        if resp.topics.iter().all(|t| t.error_code == 0) {
            assert!(resp.topics.iter().all(|t| t.partitions.len() == 1));
            break;
        }
        assert!(rounds <= TOPICS / 100 + 2, "creation does not progress");
    }
    let fds = broker.open_fds();
    eprintln!("{TOPICS} topics created in {rounds} Metadata requests; {fds} descriptors open (limit {NOFILE})");
    assert!(fds < NOFILE as usize - 64, "{fds} descriptors open");

    // New connections are accepted and served; every sampled partition
    // takes writes and reads.
    check_serving(&broker, &topics, 0);
    let many: Vec<Client> = (0..50).map(|_| broker.client()).collect();
    let mut last = broker.client();
    assert_eq!(
        metadata(&mut last, &topics[TOPICS - 1..]).topics[0].error_code,
        0
    );
    drop(many);
    assert!(broker.open_fds() < NOFILE as usize);

    // A restart under the same limit opens every partition and serves them.
    drop(client);
    drop(other);
    drop(last);
    broker.restart(true);
    let mut client = broker.client();
    // Requests wait until the broker has reopened every partition; under
    // a loaded machine that has taken longer than the default 20 s.
    client.set_read_timeout(std::time::Duration::from_secs(120));
    let resp = metadata(&mut client, &topics);
    assert!(resp.topics.iter().all(|t| t.error_code == 0));
    let fds = broker.open_fds();
    eprintln!("after a restart: {fds} descriptors open");
    assert!(
        fds < NOFILE as usize - 64,
        "{fds} descriptors open after restart"
    );
    check_serving(&broker, &topics, 1);
    assert!(broker.open_fds() < NOFILE as usize);
}

fn create_topics(
    client: &mut Client,
    topics: &[(&str, i32)],
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let mut req = CreateTopicsRequest::default();
    req.topics = topics
        .iter()
        .map(|(n, p)| {
            let mut t = CreatableTopic::default();
            t.name = name(n);
            t.num_partitions = *p;
            t.replication_factor = 1;
            t
        })
        .collect();
    req.timeout_ms = 5000;
    req.validate_only = validate_only;
    let resp: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &req);
    resp.topics
        .iter()
        .map(|t| {
            (
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

#[test]
fn creations_past_max_partitions_get_policy_violation_and_create_nothing() {
    let mut broker = TestBroker::start_with(&[
        "--max-partitions",
        "20",
        "--offsets-topic-num-partitions",
        "2",
        "--transaction-state-log-num-partitions",
        "2",
    ]);
    let mut client = broker.client();
    // 4 partitions are kept for the internal topics: 16 for the others.
    let answers = create_topics(
        &mut client,
        &[("fits", 10), ("too-big", 7), ("fits-too", 6)],
        false,
    );
    assert_eq!(answers[0].0, 0);
    assert_eq!(answers[1].0, ResponseError::PolicyViolation.code());
    let message = answers[1].1.clone().unwrap();
    assert!(message.contains("--max-partitions"), "{message}");
    assert_eq!(answers[2].0, 0, "the rest of the request is still answered");
    // validate_only checks the limit too; an exact fit is allowed.
    let answers = create_topics(&mut client, &[("one-more", 1)], true);
    assert_eq!(answers[0].0, ResponseError::PolicyViolation.code());

    // Nothing of the refused topic exists, in Metadata or on disk.
    let mut req = MetadataRequest::default();
    let mut m = MetadataRequestTopic::default();
    m.name = Some(name("too-big"));
    req.topics = Some(vec![m]);
    req.allow_auto_topic_creation = false;
    let resp: MetadataResponse = client.call(ApiKey::Metadata, 12, &req);
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let dirs: Vec<String> = std::fs::read_dir(broker.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("too-big"))
        .collect();
    assert!(dirs.is_empty(), "{dirs:?}");

    // Auto-creation is refused the same way.
    let resp = metadata(&mut client, &["auto".to_string()]);
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::PolicyViolation.code()
    );

    // The internal topics still fit, and count: the limit is then full.
    let mut find = FindCoordinatorRequest::default();
    find.key_type = 0;
    find.coordinator_keys = vec![StrBytes::from_static_str("group")];
    let resp: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &find);
    assert_eq!(resp.coordinators[0].error_code, 0);
    let answers = create_topics(&mut client, &[("last", 1)], false);
    assert_eq!(answers[0].0, ResponseError::PolicyViolation.code());

    // Deleting a topic frees its partitions.
    let mut del = DeleteTopicsRequest::default();
    del.topic_names = vec![name("fits")];
    del.timeout_ms = 5000;
    let resp: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &del);
    assert_eq!(resp.responses[0].error_code, 0);
    let answers = create_topics(&mut client, &[("after-delete", 10)], false);
    assert_eq!(answers[0].0, 0);

    // A restart counts what is on disk.
    drop(client);
    broker.restart(true);
    let mut client = broker.client();
    let answers = create_topics(&mut client, &[("after-restart", 1)], false);
    assert_eq!(answers[0].0, ResponseError::PolicyViolation.code());
}

#[test]
fn a_large_topic_creation_does_not_hold_up_other_clients() {
    let broker = TestBroker::start_with(&["--max-partitions", "100000", "--log-level", "warn"]);
    // Connection A asks for a topic of 5,000 partitions: seconds of file work.
    let mut a = broker.client();
    let mut t = CreatableTopic::default();
    t.name = name("huge");
    t.num_partitions = 5_000;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 60_000;
    a.send(ApiKey::CreateTopics, 7, &req);
    std::thread::sleep(std::time::Duration::from_millis(200));

    // Meanwhile connection B gets a producer id (a metadata log record),
    // auto-creates a topic, produces to it and reads it back.
    let mut b = broker.client();
    let mut init = InitProducerIdRequest::default();
    init.transactional_id = None;
    init.transaction_timeout_ms = 60_000;
    init.producer_id = (-1).into();
    init.producer_epoch = -1;
    let resp: InitProducerIdResponse = b.call(ApiKey::InitProducerId, 4, &init);
    assert_eq!(resp.error_code, 0);
    let resp = metadata(&mut b, &["small".to_string()]);
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(produce(&mut b, "small", 0), 0);
    assert_eq!(fetch_values(&mut b, "small", 0), vec![value("small", 0)]);

    // All of that was answered while A's creation was still under way.
    a.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let pending = a.stream.peek(&mut byte);
    a.stream.set_nonblocking(false).unwrap();
    assert!(
        matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "A's creation finished before B was served: {pending:?}"
    );
    a.stream
        .set_read_timeout(Some(std::time::Duration::from_secs(300)))
        .unwrap();
    let body = a.read_frame().expect("A's answer");
    assert!(!body.is_empty());
    let resp = metadata(&mut b, &["huge".to_string()]);
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].partitions.len(), 5_000);
}
