//! Fetch honours partition_max_bytes and max_bytes, and still returns the
//! first whole batch when it alone exceeds them (KIP-74).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use wharf_protocol::batch::{self, build_batch};
use wharf_protocol::compression::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Produces one batch holding one record of `size` bytes; returns the batch length.
fn produce_one(client: &mut Client, partition: i32, size: usize) -> usize {
    let value = vec![b'v'; size];
    let records = build_batch(0, &[(None, Some(&value), 1)], Compression::None).unwrap();
    let len = records.len();
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(Bytes::from(records));
    let mut t = TopicProduceData::default();
    t.name = name("t");
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = 1;
    req.topic_data = vec![t];
    let resp: ProduceResponse = client.call(ApiKey::Produce, 9, &req);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    len
}

/// Fetches partitions 0 and 1 from offset 0; returns the record bytes of each.
fn fetch(client: &mut Client, partition_max: i32, max_bytes: i32) -> Vec<Bytes> {
    let partitions = (0..2)
        .map(|i| {
            let mut p = FetchPartition::default();
            p.partition = i;
            p.partition_max_bytes = partition_max;
            p
        })
        .collect();
    let mut t = FetchTopic::default();
    t.topic = name("t");
    t.partitions = partitions;
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.max_bytes = max_bytes;
    req.topics = vec![t];
    let resp: FetchResponse = client.call(ApiKey::Fetch, 12, &req);
    resp.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0);
            p.records.clone().unwrap()
        })
        .collect()
}

fn batch_count(records: &Bytes) -> usize {
    let mut count = 0;
    for item in batch::batches(records) {
        item.unwrap();
        count += 1;
    }
    count
}

#[test]
fn fetch_limits_are_honoured_but_one_whole_batch_always_comes_back() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let mut t = CreatableTopic::default();
    t.name = name("t");
    t.num_partitions = 2;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    let _: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &req);
    let len = (0..3)
        .map(|_| produce_one(&mut client, 0, 1000))
        .last()
        .unwrap();
    produce_one(&mut client, 1, 1000);

    // Room for everything.
    let got = fetch(&mut client, 1 << 20, 1 << 20);
    assert_eq!((batch_count(&got[0]), batch_count(&got[1])), (3, 1));

    // Per partition: room for two batches but not three.
    let got = fetch(&mut client, (2 * len + 10) as i32, 1 << 20);
    assert_eq!((batch_count(&got[0]), batch_count(&got[1])), (2, 1));

    // A limit smaller than one batch still returns the first whole batch of
    // the first partition, and nothing more for the response.
    let got = fetch(&mut client, 10, 1 << 20);
    assert_eq!(batch_count(&got[0]), 1);
    assert_eq!(got[0].len(), len);
    let got = fetch(&mut client, 1 << 20, 10);
    assert_eq!((batch_count(&got[0]), got[1].len()), (1, 0));

    // Response-wide: the first partition uses the budget up.
    let got = fetch(&mut client, 1 << 20, (len + 10) as i32);
    assert_eq!((batch_count(&got[0]), got[1].len()), (1, 0));
}
