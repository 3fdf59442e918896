//! What a hostile or careless client must not be able to do to the broker:
//! regression tests for the hardening issue, each against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_protocol::batch::{self, build_batch, build_marker, ControlMarker};
use wharf_protocol::compression::Compression;

fn name(s: &str) -> TopicName {
    common::topic_name(s)
}

fn create_topic(client: &mut Client, topic: &str, partitions: i32) -> i16 {
    common::create_topic(client, topic, partitions).topics[0].error_code
}

fn batch_of(values: &[&str], timestamps: &[i64]) -> Vec<u8> {
    let records: Vec<_> = values
        .iter()
        .zip(timestamps)
        .map(|(v, ts)| (Some(&b"key"[..]), Some(v.as_bytes()), *ts))
        .collect();
    build_batch(0, &records, Compression::None).unwrap()
}

/// (high watermark, the stored batches) of partition 0 from offset 0.
fn fetch_all(client: &mut Client, topic: &str) -> (i64, Bytes) {
    let p = common::fetch_partition(client, topic, 0, 0);
    assert_eq!(p.error_code, 0);
    (p.high_watermark, p.records.unwrap_or_default())
}

#[test]
fn control_batches_from_clients_are_refused_with_invalid_record() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "ctl", 1), 0);
    let marker = ControlMarker {
        commit: true,
        coordinator_epoch: 0,
    };
    let forged = build_marker(4242, 0, marker, 1_700_000_000_000).unwrap();
    let (code, _) = common::produce_batch(&mut client, "ctl", 0, forged);
    assert_eq!(code, ResponseError::InvalidRecord.code());
    // A garbage control batch (control bit on an ordinary record) too.
    let mut garbage = batch_of(&["x"], &[1_700_000_000_000]);
    let attributes = i16::from_be_bytes([garbage[21], garbage[22]]) | 0x20;
    garbage[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&garbage[21..]);
    garbage[17..21].copy_from_slice(&crc.to_be_bytes());
    let (code, _) = common::produce_batch(&mut client, "ctl", 0, garbage);
    assert_eq!(code, ResponseError::InvalidRecord.code());
    let (hw, records) = fetch_all(&mut client, "ctl");
    assert_eq!((hw, records.len()), (0, 0), "nothing was stored");
}

#[test]
fn two_batches_for_one_partition_are_refused_with_invalid_record() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "two", 1), 0);
    let mut records = batch_of(&["a"], &[1_700_000_000_000]);
    records.extend(batch_of(&["b"], &[1_700_000_000_000]));
    let (code, _) = common::produce_batch(&mut client, "two", 0, records);
    assert_eq!(code, ResponseError::InvalidRecord.code());
    let (hw, _) = fetch_all(&mut client, "two");
    assert_eq!(hw, 0);
    // One batch still goes through.
    let (code, offset) = common::produce_batch(
        &mut client,
        "two",
        0,
        batch_of(&["a"], &[1_700_000_000_000]),
    );
    assert_eq!((code, offset), (0, 0));
}

#[test]
fn a_batch_max_timestamp_below_its_records_is_corrected_to_the_largest_record_timestamp() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "ts", 1), 0);
    let (t0, t1) = (1_700_000_000_000i64, 1_700_000_005_000i64);
    let mut records = batch_of(&["a", "b"], &[t0, t1]);
    // maxTimestamp sits after attributes (2), lastOffsetDelta (4) and
    // baseTimestamp (8); lower it below the first record's time.
    records[35..43].copy_from_slice(&(t0 - 1000).to_be_bytes());
    let crc = crc32c::crc32c(&records[21..]);
    records[17..21].copy_from_slice(&crc.to_be_bytes());
    let (code, _) = common::produce_batch(&mut client, "ts", 0, records);
    assert_eq!(code, 0);
    let (_, stored) = fetch_all(&mut client, "ts");
    let header = batch::validate(&stored, 1 << 20).expect("stored batch valid, CRC included");
    assert_eq!(header.max_timestamp(), t1);
}

#[test]
fn topic_names_colliding_on_dot_and_underscore_are_refused() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "orders.eu", 1), 0);
    assert_eq!(
        create_topic(&mut client, "orders_eu", 1),
        ResponseError::InvalidTopicException.code()
    );
    // Auto-creation through Metadata is refused the same way.
    let mut topic = MetadataRequestTopic::default();
    topic.name = Some(name("orders_eu"));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![topic]);
    req.allow_auto_topic_creation = true;
    let resp: MetadataResponse = client.call(ApiKey::Metadata, 12, &req);
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    let mut all = MetadataRequest::default();
    all.topics = None;
    let resp: MetadataResponse = client.call(ApiKey::Metadata, 12, &all);
    let names: Vec<_> = resp
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, vec!["orders.eu".to_string()]);
}

fn commit_offset(client: &mut Client, group: &str, topic: &str, offset: i64) -> i16 {
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    let mut t = OffsetCommitRequestTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.generation_id_or_member_epoch = -1;
    req.topics = vec![t];
    let resp: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &req);
    resp.topics[0].partitions[0].error_code
}

fn committed_groups(client: &mut Client, group: &str) -> usize {
    let mut g = OffsetFetchRequestGroup::default();
    g.group_id = GroupId(StrBytes::from_string(group.to_string()));
    g.topics = None;
    let mut req = OffsetFetchRequest::default();
    req.groups = vec![g];
    let resp: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 8, &req);
    resp.groups[0]
        .topics
        .iter()
        .map(|t| t.partitions.len())
        .sum()
}

#[test]
fn group_ids_longer_than_the_stored_format_holds_are_refused_with_invalid_group_id() {
    let mut broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "g", 1), 0);
    let long = "g".repeat(40_000);
    assert_eq!(
        commit_offset(&mut client, &long, "g", 5),
        ResponseError::InvalidGroupId.code()
    );
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(StrBytes::from_string(long.clone()));
    join.session_timeout_ms = 10_000;
    join.rebalance_timeout_ms = 10_000;
    join.protocol_type = StrBytes::from_static_str("consumer");
    let mut proto = JoinGroupRequestProtocol::default();
    proto.name = StrBytes::from_static_str("range");
    join.protocols = vec![proto];
    let resp: JoinGroupResponse = client.call(ApiKey::JoinGroup, 9, &join);
    assert_eq!(resp.error_code, ResponseError::InvalidGroupId.code());
    // A group id at the limit is stored faithfully and survives a restart.
    let at_limit = "h".repeat(32_767);
    assert_eq!(commit_offset(&mut client, &at_limit, "g", 7), 0);
    broker.restart(true);
    let mut client = broker.client();
    assert_eq!(committed_groups(&mut client, &at_limit), 1);
    // Nothing was stored under the 32,767-byte prefix of the long id.
    assert_eq!(committed_groups(&mut client, &long[..32_767]), 0);
}

#[test]
fn transactional_ids_longer_than_the_stored_format_holds_are_refused_with_invalid_request() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(TransactionalId(StrBytes::from_string("t".repeat(40_000))));
    req.transaction_timeout_ms = 10_000;
    req.producer_id = (-1).into();
    req.producer_epoch = -1;
    let resp: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &req);
    assert_eq!(resp.error_code, ResponseError::InvalidRequest.code());
    assert_eq!(resp.producer_id, ProducerId(-1));
}

#[test]
fn concurrent_delete_records_all_succeed_and_the_checkpoint_stays_valid() {
    let mut broker = TestBroker::start_logged(&[]);
    let mut client = broker.client();
    let partitions = 16;
    assert_eq!(create_topic(&mut client, "dr", partitions), 0);
    for p in 0..partitions {
        for _ in 0..20 {
            let (code, _) =
                common::produce_batch(&mut client, "dr", p, batch_of(&["v"], &[1_700_000_000_000]));
            assert_eq!(code, 0);
        }
    }
    let addr = broker.addr;
    let workers: Vec<_> = (0..partitions)
        .map(|p| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut errors = Vec::new();
                for offset in 1..=20 {
                    let mut part = DeleteRecordsPartition::default();
                    part.partition_index = p;
                    part.offset = offset;
                    let mut t = DeleteRecordsTopic::default();
                    t.name = name("dr");
                    t.partitions = vec![part];
                    let mut req = DeleteRecordsRequest::default();
                    req.topics = vec![t];
                    req.timeout_ms = 5000;
                    let resp: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, 2, &req);
                    let out = &resp.topics[0].partitions[0];
                    if out.error_code != 0 || out.low_watermark != offset {
                        errors.push((offset, out.error_code, out.low_watermark));
                    }
                }
                errors
            })
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap(), Vec::new());
    }
    let path = broker.dir.path().join("log-start-offset-checkpoint");
    let text = std::fs::read_to_string(&path).unwrap();
    for p in 0..partitions {
        assert!(
            text.lines().any(|l| l == format!("dr {p} 20")),
            "partition {p} at 20 in\n{text}"
        );
    }
    // No stray temporary file is left beside it.
    let strays: Vec<_> = std::fs::read_dir(broker.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
    let log = broker.log();
    assert!(
        !log.contains("checkpoint"),
        "checkpoint writes failed:\n{log}"
    );
    // And the log starts survive a crash.
    broker.restart(false);
    let mut client = broker.client();
    let mut req = ListOffsetsRequest::default();
    req.replica_id = (-1).into();
    let mut t = kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default();
    t.name = name("dr");
    t.partitions = (0..partitions)
        .map(|p| {
            let mut part =
                kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default();
            part.partition_index = p;
            part.timestamp = -2;
            part
        })
        .collect();
    req.topics = vec![t];
    let resp: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &req);
    for p in &resp.topics[0].partitions {
        assert_eq!((p.error_code, p.offset), (0, 20));
    }
}

#[test]
fn produce_records_field_must_hold_a_batch() {
    // Not a regression: keeps the partition-level answer for a null records
    // field as it was (CORRUPT_MESSAGE) while the checks above change.
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "null", 1), 0);
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = None;
    let mut t = TopicProduceData::default();
    t.name = name("null");
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    let resp: ProduceResponse = client.call(ApiKey::Produce, 9, &req);
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::CorruptMessage.code()
    );
}

/// Joins a group whose id carries a forged log line; returns the log.
fn log_after_a_forging_join(args: &[&str]) -> (String, &'static str) {
    let mut all = vec!["--group-initial-rebalance-delay-ms", "0"];
    all.extend_from_slice(args);
    let broker = TestBroker::start_logged(&all);
    let mut client = broker.client();
    let forged = "2026-01-01T00:00:00.000000Z  INFO wharf: FORGED";
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(StrBytes::from_string(format!("evil\n{forged}\n")));
    join.session_timeout_ms = 10_000;
    join.rebalance_timeout_ms = 10_000;
    join.protocol_type = StrBytes::from_static_str("consumer");
    let mut proto = JoinGroupRequestProtocol::default();
    proto.name = StrBytes::from_static_str("range");
    join.protocols = vec![proto];
    let resp: JoinGroupResponse = client.call(ApiKey::JoinGroup, 3, &join);
    assert_eq!(resp.error_code, 0);
    let log = broker.log();
    assert!(log.contains("FORGED"), "the group id was logged:\n{log}");
    (log, forged)
}

#[test]
fn client_supplied_names_cannot_forge_log_lines() {
    let (log, forged) = log_after_a_forging_join(&[]);
    assert!(
        !log.lines().any(|l| l.starts_with(forged)),
        "a client value started a log line:\n{log}"
    );
}

#[test]
fn json_logs_keep_one_event_per_line() {
    let (log, _) = log_after_a_forging_join(&["--log-format", "json"]);
    for line in log.lines() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not one JSON object: {line:?}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn the_broker_binary_is_position_independent() {
    // ELF e_type at byte 16 (little-endian on x86-64 and aarch64): 3 is
    // ET_DYN, what a PIE is; 2 (ET_EXEC) would mean a fixed load address.
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_wharf")).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([bytes[16], bytes[17]]), 3);
}

#[test]
fn sigterm_as_soon_as_the_broker_listens_is_a_clean_shutdown() {
    // The listener is bound before the async runtime listens for signals;
    // a SIGTERM in between must still end in a clean exit (0).
    for _ in 0..10 {
        let mut broker = TestBroker::start();
        broker.stop(true);
    }
}
