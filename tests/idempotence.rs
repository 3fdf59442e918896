//! Idempotent producers over TCP: InitProducerId at every version, and
//! Produce deduplicating retried batches, refusing gaps and old epochs, also
//! across a broker restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use wharf_protocol::batch::{build_batch_with, BatchOptions, NewRecord};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create_topic(client: &mut Client, topic: &str) {
    let mut t = CreatableTopic::default();
    t.name = name(topic);
    t.num_partitions = 1;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    let resp: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &req);
    assert_eq!(resp.topics[0].error_code, 0);
}

fn init_producer_id(client: &mut Client, version: i16) -> InitProducerIdResponse {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = None;
    req.transaction_timeout_ms = 60_000;
    if version >= 3 {
        req.producer_id = ProducerId(-1);
        req.producer_epoch = -1;
    }
    client.call(ApiKey::InitProducerId, version, &req)
}

fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("r{seq}-{i}").into_bytes()).collect();
    let records: Vec<_> = values
        .iter()
        .map(|v| NewRecord {
            key: None,
            value: Some(v),
            timestamp: 1_700_000_000_000,
            headers: Vec::new(),
        })
        .collect();
    let options = BatchOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchOptions::default()
    };
    build_batch_with(0, &records, &options).unwrap()
}

/// (error code, base offset) of producing `records` to partition 0.
fn produce(client: &mut Client, topic: &str, records: Vec<u8>) -> (i16, i64) {
    common::produce_batch(client, topic, 0, records)
}

#[test]
fn init_producer_id_gives_distinct_ids_at_every_version_and_never_reuses_them() {
    let mut broker = TestBroker::start();
    let mut client = broker.client();
    let mut seen = Vec::new();
    for v in 0..=5 {
        let resp = init_producer_id(&mut client, v);
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(resp.producer_epoch, 0, "v{v}");
        assert!(resp.producer_id.0 >= 0);
        assert!(!seen.contains(&resp.producer_id.0), "v{v} reused an id");
        seen.push(resp.producer_id.0);
    }
    broker.restart(false);
    let mut client = broker.client();
    let after = init_producer_id(&mut client, 4).producer_id.0;
    assert!(
        seen.iter().all(|id| after > *id),
        "id {after} after a restart must be above {seen:?}"
    );
}

#[test]
fn transactional_init_is_granted_and_an_empty_id_refused() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(TransactionalId(StrBytes::from_static_str("tx1")));
    req.transaction_timeout_ms = 60_000;
    let resp: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &req);
    assert_eq!(resp.error_code, 0);
    assert!(resp.producer_id.0 >= 0);
    assert_eq!(resp.producer_epoch, 0);
    req.transactional_id = Some(TransactionalId(StrBytes::from_static_str("")));
    let resp: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &req);
    assert_eq!(
        resp.error_code,
        kafka_protocol::ResponseError::InvalidRequest.code()
    );
}

#[test]
fn same_batch_sent_twice_gets_the_same_offset_even_after_a_restart() {
    let mut broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "idem");
    let pid = init_producer_id(&mut client, 4).producer_id.0;
    assert!(pid >= 0);

    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 0, 3)), (0, 0));
    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 3, 2)), (0, 3));
    // The retry of the first batch: acknowledged at its original offset.
    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 0, 3)), (0, 0));
    // A gap.
    let (code, _) = produce(&mut client, "idem", batch(pid, 0, 9, 1));
    assert_eq!(
        code,
        kafka_protocol::ResponseError::OutOfOrderSequenceNumber.code()
    );

    broker.restart(false);
    let mut client = broker.client();
    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 3, 2)), (0, 3));
    assert_eq!(produce(&mut client, "idem", batch(pid, 0, 5, 1)), (0, 5));
    // A new epoch starts at 0; the old one is then fenced.
    assert_eq!(produce(&mut client, "idem", batch(pid, 1, 0, 1)), (0, 6));
    let (code, _) = produce(&mut client, "idem", batch(pid, 0, 6, 1));
    assert_eq!(
        code,
        kafka_protocol::ResponseError::InvalidProducerEpoch.code()
    );

    let mut req = ListOffsetsRequest::default();
    let mut t = list_offsets_request::ListOffsetsTopic::default();
    t.name = name("idem");
    let mut p = list_offsets_request::ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = -1;
    t.partitions = vec![p];
    req.topics = vec![t];
    let resp: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 5, &req);
    assert_eq!(
        resp.topics[0].partitions[0].offset, 7,
        "nothing written twice"
    );
}
