//! End-to-end tests of the `wharf` binary over TCP, one behaviour each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;
use wharf_protocol::batch::{self, build_batch};
use wharf_protocol::compression::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create_topic(client: &mut Client, topic: &str, partitions: i32) -> CreateTopicsResponse {
    let mut t = CreatableTopic::default();
    t.name = name(topic);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 5000;
    client.call(ApiKey::CreateTopics, 7, &req)
}

fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
    acks: i16,
) -> Option<ProduceResponse> {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(Bytes::from(records));
    let mut t = TopicProduceData::default();
    t.name = name(topic);
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    if acks == 0 {
        client.send(ApiKey::Produce, 9, &req);
        None
    } else {
        Some(client.call(ApiKey::Produce, 9, &req))
    }
}

fn produce_result(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
) -> (i16, i64) {
    common::produce_batch(client, topic, partition, records)
}

fn simple_batch(values: &[&str], timestamp: i64) -> Vec<u8> {
    let records: Vec<_> = values
        .iter()
        .map(|v| (Some(&b"key"[..]), Some(v.as_bytes()), timestamp))
        .collect();
    build_batch(0, &records, Compression::None).unwrap()
}

fn fetch(
    client: &mut Client,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchResponse {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = name(topic);
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = (-1).into();
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = min_bytes;
    req.max_bytes = 50 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    client.call(ApiKey::Fetch, 12, &req)
}

/// Values of every record in a fetch response's first partition, with offsets.
fn fetched_values(resp: &FetchResponse) -> Vec<(i64, String)> {
    let records = resp.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let mut out = Vec::new();
    for item in batch::batches(&records) {
        let (header, bytes) = item.unwrap();
        let payload = batch::records_payload(bytes, &header, 1 << 24).unwrap();
        for record in batch::records(&header, &payload) {
            let record = record.unwrap();
            out.push((
                record.offset,
                String::from_utf8(record.value.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

fn list_offset(client: &mut Client, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = timestamp;
    p.current_leader_epoch = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.replica_id = (-1).into();
    req.topics = vec![t];
    let resp: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 8, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

fn metadata(client: &mut Client, topics: Option<&[&str]>, auto_create: bool) -> MetadataResponse {
    let mut req = MetadataRequest::default();
    req.topics = topics.map(|ts| {
        ts.iter()
            .map(|t| {
                let mut m = MetadataRequestTopic::default();
                m.name = Some(name(t));
                m
            })
            .collect()
    });
    req.allow_auto_topic_creation = auto_create;
    client.call(ApiKey::Metadata, 12, &req)
}

#[test]
fn api_versions_lists_produce_from_v0_and_answers_unknown_versions_in_v0() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let mut req = ApiVersionsRequest::default();
    req.client_software_name = StrBytes::from_static_str("wharf-tests");
    req.client_software_version = StrBytes::from_static_str("1");
    let resp: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 3, &req);
    assert_eq!(resp.error_code, 0);
    let produce = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 13));
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Fetch as i16));

    // A version from the future: v0 body with UNSUPPORTED_VERSION and the list.
    // The codec cannot encode v99, so the frame is written by hand: header v2
    // (key 18, version 99, correlation 77, null client id, no tags), no body.
    client.send_frame(&[0, 18, 0, 99, 0, 0, 0, 77, 0xff, 0xff, 0]);
    let mut frame = client.read_frame().unwrap();
    assert_eq!(
        &frame[..4],
        &77i32.to_be_bytes(),
        "header v0: correlation id only"
    );
    let _ = frame.split_to(4);
    let v0 = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(v0.error_code, ResponseError::UnsupportedVersion.code());
    assert_eq!(v0.api_keys.len(), resp.api_keys.len());
}

#[test]
fn metadata_auto_creates_topics_with_ids_that_survive_restart() {
    let mut broker = TestBroker::start_with(&["--num-partitions", "3"]);
    let mut client = broker.client();
    let resp = metadata(&mut client, Some(&["orders"]), true);
    let topic = &resp.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.partitions.len(), 3);
    assert!(!topic.topic_id.is_nil());
    let id = topic.topic_id;

    let missing = metadata(&mut client, Some(&["nope"]), false);
    assert_eq!(
        missing.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    broker.restart(true);
    let mut client = broker.client();
    let all = metadata(&mut client, None, false);
    assert_eq!(all.topics.len(), 1);
    assert_eq!(all.topics[0].topic_id, id);
    assert_eq!(all.brokers[0].port as u16, broker.addr.port());
}

#[test]
fn produce_assigns_offsets_and_fetch_returns_them() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "t", 1).topics[0].error_code, 0);
    assert_eq!(
        produce_result(&mut client, "t", 0, simple_batch(&["a", "b"], 1000)),
        (0, 0)
    );
    assert_eq!(
        produce_result(&mut client, "t", 0, simple_batch(&["c"], 2000)),
        (0, 2)
    );
    let resp = fetch(&mut client, "t", 0, 0, 0);
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 3);
    assert_eq!(
        fetched_values(&resp),
        vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]
    );
    // From the middle of the first batch, that whole batch comes back.
    let resp = fetch(&mut client, "t", 1, 0, 0);
    assert_eq!(fetched_values(&resp)[0].0, 0);
    // Past the end: OFFSET_OUT_OF_RANGE.
    let resp = fetch(&mut client, "t", 10, 0, 0);
    assert_eq!(
        resp.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
}

#[test]
fn waiting_fetch_wakes_when_data_arrives() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "t", 1);
    let addr = broker.addr;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut c = Client::connect(addr);
        produce_result(&mut c, "t", 0, simple_batch(&["late"], 1))
    });
    let started = Instant::now();
    let resp = fetch(&mut client, "t", 0, 20_000, 1);
    // Far less than max_wait: the append woke the fetch.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fetch waited {:?}",
        started.elapsed()
    );
    assert_eq!(fetched_values(&resp), vec![(0, "late".into())]);
    assert_eq!(producer.join().unwrap(), (0, 0));

    // With nothing arriving, the fetch returns empty after max_wait.
    let started = Instant::now();
    let resp = fetch(&mut client, "t", 1, 200, 1);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(fetched_values(&resp).is_empty());
}

#[test]
fn acks_zero_gets_no_response_but_is_stored() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "t", 1);
    assert!(produce(&mut client, "t", 0, simple_batch(&["x"], 1), 0).is_none());
    // The next response on this connection belongs to the next request.
    let resp = fetch(&mut client, "t", 0, 1000, 1);
    assert_eq!(fetched_values(&resp), vec![(0, "x".into())]);
}

#[test]
fn produce_errors_are_per_partition() {
    let broker = TestBroker::start_with(&["--auto-create-topics", "false"]);
    let mut client = broker.client();
    create_topic(&mut client, "t", 1);
    let (err, _) = produce_result(&mut client, "t", 7, simple_batch(&["x"], 1));
    assert_eq!(err, ResponseError::UnknownTopicOrPartition.code());
    let (err, _) = produce_result(&mut client, "absent", 0, simple_batch(&["x"], 1));
    assert_eq!(err, ResponseError::UnknownTopicOrPartition.code());
    let mut corrupt = simple_batch(&["x"], 1);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let (err, _) = produce_result(&mut client, "t", 0, corrupt);
    assert_eq!(err, ResponseError::CorruptMessage.code());
    // Nothing was written by the failures.
    assert_eq!(
        produce_result(&mut client, "t", 0, simple_batch(&["ok"], 1)),
        (0, 0)
    );
}

#[test]
fn list_offsets_answers_earliest_latest_max_and_by_timestamp() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "t", 1);
    assert_eq!(list_offset(&mut client, "t", -1), (0, 0, -1));
    assert_eq!(list_offset(&mut client, "t", -3), (0, -1, -1));
    produce_result(&mut client, "t", 0, simple_batch(&["a", "b"], 1000));
    produce_result(&mut client, "t", 0, simple_batch(&["c"], 5000));
    produce_result(&mut client, "t", 0, simple_batch(&["d"], 3000));
    assert_eq!(list_offset(&mut client, "t", -2), (0, 0, -1));
    assert_eq!(list_offset(&mut client, "t", -1), (0, 4, -1));
    assert_eq!(list_offset(&mut client, "t", -3), (0, 2, 5000));
    assert_eq!(list_offset(&mut client, "t", 1000), (0, 0, 1000));
    assert_eq!(list_offset(&mut client, "t", 1001), (0, 2, 5000));
    assert_eq!(list_offset(&mut client, "t", 9999), (0, -1, -1));
}

#[test]
fn create_topics_validates_and_delete_removes_data() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let resp = create_topic(&mut client, "t", 2);
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].num_partitions, 2);
    assert_eq!(
        create_topic(&mut client, "t", 2).topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );
    assert_eq!(
        create_topic(&mut client, "bad name", 1).topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        create_topic(&mut client, "zero", 0).topics[0].error_code,
        ResponseError::InvalidPartitions.code()
    );

    let mut rf3 = CreatableTopic::default();
    rf3.name = name("rf3");
    rf3.num_partitions = 1;
    rf3.replication_factor = 3;
    let mut cfg = CreatableTopic::default();
    cfg.name = name("cfg");
    cfg.num_partitions = 1;
    cfg.replication_factor = -1;
    let mut c = CreatableTopicConfig::default();
    c.name = StrBytes::from_static_str("retention.ms");
    c.value = Some(StrBytes::from_static_str("1000"));
    cfg.configs = vec![c];
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![rf3, cfg];
    req.validate_only = true;
    let resp: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::InvalidReplicationFactor.code()
    );
    assert_eq!(resp.topics[1].error_code, 0);
    // validate_only created nothing.
    assert_eq!(
        metadata(&mut client, Some(&["cfg"]), false).topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    produce_result(&mut client, "t", 1, simple_batch(&["x"], 1));
    assert!(broker
        .dir
        .path()
        .join("t-1")
        .join("00000000000000000000.log")
        .exists());
    let id = resp_topic_id(&mut client, "t");
    let mut del = DeleteTopicsRequest::default();
    let mut state = DeleteTopicState::default();
    state.topic_id = id;
    del.topics = vec![state];
    let resp: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 6, &del);
    assert_eq!(resp.responses[0].error_code, 0);
    assert!(!broker.dir.path().join("t-0").exists());
    assert!(!broker.dir.path().join("t-1").exists());
    let resp: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 6, &del);
    assert_eq!(
        resp.responses[0].error_code,
        ResponseError::UnknownTopicId.code()
    );
    let mut by_name = DeleteTopicsRequest::default();
    by_name.topic_names = vec![name("t")];
    let resp: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &by_name);
    assert_eq!(
        resp.responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

fn resp_topic_id(client: &mut Client, topic: &str) -> uuid::Uuid {
    metadata(client, Some(&[topic]), false).topics[0].topic_id
}

#[test]
fn acknowledged_records_survive_kill_and_graceful_restart() {
    let mut broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "t", 1);
    for i in 0..50 {
        let v = format!("v{i}");
        assert_eq!(
            produce_result(&mut client, "t", 0, simple_batch(&[&v], i)),
            (0, i)
        );
    }
    broker.restart(false);
    let mut client = broker.client();
    let resp = fetch(&mut client, "t", 0, 0, 0);
    let values = fetched_values(&resp);
    assert_eq!(values.len(), 50);
    assert_eq!(values[49], (49, "v49".into()));
    assert_eq!(
        produce_result(&mut client, "t", 0, simple_batch(&["after"], 1)),
        (0, 50)
    );
    broker.restart(true);
    let mut client = broker.client();
    assert_eq!(list_offset(&mut client, "t", -1), (0, 51, -1));
}

#[test]
fn bad_frames_close_only_their_own_connection() {
    let broker = TestBroker::start_with(&["--max-request-size", "1024"]);
    let mut good = broker.client();
    create_topic(&mut good, "t", 1);

    let mut big = broker.client();
    big.send_frame(&vec![0u8; 2048]);
    assert!(big.is_closed(), "oversized frame closes the connection");

    let mut garbage = broker.client();
    garbage.send_frame(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    assert!(garbage.is_closed(), "unknown API key closes the connection");

    let mut negative = broker.client();
    use std::io::Write;
    negative.stream.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(negative.is_closed(), "negative size closes the connection");

    let mut truncated = broker.client();
    truncated.stream.write_all(&[0, 0, 0, 50, 0, 18]).unwrap();
    drop(truncated);

    // Fetch v1 is below what we serve: the connection is closed.
    let mut old = broker.client();
    old.send(ApiKey::Fetch, 3, &ApiVersionsRequest::default());
    assert!(old.is_closed());

    // Produce v2 is listed but refused per partition.
    let mut legacy = broker.client();
    let mut body = vec![0, 0, 0, 2, 0, 0, 0, 1]; // header: key 0, v2, correlation 1
    body.extend_from_slice(&[0, 0]); // client id ""
    body.extend_from_slice(&[0, 1, 0, 0, 3, 0xe8]); // acks 1, timeout 1000
    body.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't']); // one topic "t"
    body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]); // partition 0, empty records
    legacy.send_frame(&body);
    let frame = legacy.read_frame().unwrap();
    // correlation id, topic count, name, partition count, index, then error.
    let error = i16::from_be_bytes([frame[4 + 4 + 3 + 4 + 4], frame[4 + 4 + 3 + 4 + 4 + 1]]);
    assert_eq!(error, ResponseError::UnsupportedVersion.code());

    // The well-behaved client was never disturbed.
    assert_eq!(
        produce_result(&mut good, "t", 0, simple_batch(&["still here"], 1)),
        (0, 0)
    );
}

#[test]
fn localhost_listener_serves_ipv4_and_ipv6() {
    let broker = TestBroker::start_on("localhost", &[]);
    let port = broker.addr.port();
    for addr in ["127.0.0.1", "::1"] {
        let addr = std::net::SocketAddr::new(addr.parse().unwrap(), port);
        let mut client = Client::connect(addr);
        let resp: ApiVersionsResponse =
            client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert_eq!(resp.error_code, 0, "over {addr}");
        // Metadata advertises the name clients used, not one address family.
        let meta = metadata(&mut client, None, false);
        assert_eq!(meta.brokers[0].host.as_str(), "localhost");
    }
}

#[test]
fn huge_array_counts_close_the_connection_without_killing_the_broker() {
    let broker = TestBroker::start();
    // Each claims ~2^31 (or, compact, ~2^32) elements in a few bytes.
    let requests: [&[u8]; 3] = [
        // Metadata v0: header (key 3, v0, correlation 1, null client id),
        // topics array count i32::MAX.
        &[
            0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0, 1, b'x',
        ],
        // Produce v3: null transactional id, acks, timeout, then a topic
        // count of i32::MAX.
        &[
            0, 0, 0, 3, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff,
            0xff,
        ],
        // Fetch v12 (flexible): header v2 tags, replica id, max wait,
        // min bytes, max bytes, isolation, session id, epoch, then a compact
        // topics count of 2^32-1 (varint ff ff ff ff 0f).
        &[
            0, 1, 0, 12, 0, 0, 0, 3, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1,
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ],
    ];
    for request in requests {
        let mut client = broker.client();
        client.send_frame(request);
        assert!(
            client.is_closed(),
            "malformed request closes its connection"
        );
    }
    let mut client = broker.client();
    let resp: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0, "the broker is still serving");
}
