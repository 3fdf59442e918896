//! KIP-467: a Produce refused because of some of its records names each of
//! them (`record_errors`, with `error_message`) from v8 on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{topic_name, Client, TestBroker};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use wharf_protocol::batch::build_batch;
use wharf_protocol::compression::Compression;

fn create(client: &mut Client, topic: &str, configs: &[(&str, &str)]) {
    let resp = common::create_topic_with_configs(client, topic, 1, configs);
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
}

fn produce(
    client: &mut Client,
    version: i16,
    topic: &str,
    batch: Vec<u8>,
) -> PartitionProduceResponse {
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = Some(Bytes::from(batch));
    let mut t = TopicProduceData::default();
    t.name = topic_name(topic);
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    let resp: ProduceResponse = client.call(ApiKey::Produce, version, &req);
    resp.responses[0].partition_responses[0].clone()
}

/// (batch index, message) of each record error.
fn named(p: &PartitionProduceResponse) -> Vec<(i32, String)> {
    p.record_errors
        .iter()
        .map(|e| {
            (
                e.batch_index,
                e.batch_index_error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn keyless_records_on_a_compacted_topic_are_each_named() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create(&mut client, "compacted", &[("cleanup.policy", "compact")]);
    let now = 1_700_000_000_000;
    let records = [
        (Some(&b"a"[..]), Some(&b"1"[..]), now),
        (None, Some(&b"2"[..]), now),
        (Some(&b"b"[..]), Some(&b"3"[..]), now),
        (None, Some(&b"4"[..]), now),
    ];
    for codec in [Compression::None, Compression::Zstd] {
        let batch = build_batch(0, &records, codec).unwrap();
        let p = produce(&mut client, 9, "compacted", batch.clone());
        assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
        assert_eq!(p.base_offset, -1);
        let errors = named(&p);
        assert_eq!(
            errors.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 3],
            "{errors:?}"
        );
        assert!(
            errors.iter().all(|(_, m)| m.contains("has no key")),
            "{errors:?}"
        );
        let message = p.error_message.as_ref().unwrap().to_string();
        assert!(message.contains("records 1, 3"), "{message}");

        // Before v8 the error code alone (the fields do not exist there).
        let old = produce(&mut client, 7, "compacted", batch);
        assert_eq!(old.error_code, ResponseError::InvalidRecord.code());
        assert!(old.record_errors.is_empty() && old.error_message.is_none());
    }
    // Nothing of the refused batches was written: a keyed batch gets offset 0.
    let keyed = build_batch(
        0,
        &[(Some(&b"k"[..]), Some(&b"v"[..]), now)],
        Compression::None,
    )
    .unwrap();
    let p = produce(&mut client, 9, "compacted", keyed);
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    assert!(p.record_errors.is_empty() && p.error_message.is_none());
}

#[test]
fn out_of_range_timestamps_are_each_named() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create(
        &mut client,
        "bounded",
        &[("message.timestamp.before.max.ms", "3600000")],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let old = now - 7_200_000;
    let records = [
        (Some(&b"k"[..]), Some(&b"old"[..]), old),
        (Some(&b"k"[..]), Some(&b"fine"[..]), now),
        (Some(&b"k"[..]), Some(&b"old too"[..]), old - 1),
    ];
    let batch = build_batch(0, &records, Compression::Lz4).unwrap();
    let p = produce(&mut client, 10, "bounded", batch);
    assert_eq!(p.error_code, ResponseError::InvalidTimestamp.code());
    let errors = named(&p);
    assert_eq!(
        errors.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 2],
        "{errors:?}"
    );
    assert!(
        errors[0].1.contains(&old.to_string()) && errors[0].1.contains("behind"),
        "{errors:?}"
    );
    let message = p.error_message.as_ref().unwrap().to_string();
    assert!(message.contains("and 1 more record"), "{message}");
}
