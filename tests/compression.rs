//! Compressed produce over TCP: per-partition errors, decompression bombs,
//! `compression.type` validation and recompression.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_protocol::batch::{self, build_batch, BatchHeader};
use wharf_protocol::compression::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create_topic(
    client: &mut Client,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> (i16, Option<String>) {
    let resp = common::create_topic_with_configs(client, topic, partitions, configs);
    let r = &resp.topics[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// One Produce carrying `batches[i]` for partition `i`; returns each
/// partition's (error code, base offset).
fn produce_partitions(
    client: &mut Client,
    version: i16,
    topic: &str,
    batches: Vec<Vec<u8>>,
) -> Vec<(i16, i64)> {
    let mut t = TopicProduceData::default();
    t.name = name(topic);
    t.partition_data = batches
        .into_iter()
        .enumerate()
        .map(|(i, records)| {
            let mut p = PartitionProduceData::default();
            p.index = i as i32;
            p.records = Some(Bytes::from(records));
            p
        })
        .collect();
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    let resp: ProduceResponse = client.call(ApiKey::Produce, version, &req);
    resp.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.error_code, p.base_offset))
        .collect()
}

/// The raw batches stored in `partition` of `topic`, from offset 0.
fn fetch_raw(client: &mut Client, topic: &str, partition: i32) -> Bytes {
    let (error, records) = fetch_version(client, 12, topic, partition);
    assert_eq!(error, 0);
    records
}

/// (error code, records) of a Fetch of `version` for `partition` from offset 0.
fn fetch_version(client: &mut Client, version: i16, topic: &str, partition: i32) -> (i16, Bytes) {
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = 0;
    p.partition_max_bytes = 16 << 20;
    let mut t = FetchTopic::default();
    t.topic = name(topic);
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = (-1).into();
    req.max_bytes = 50 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    let resp: FetchResponse = client.call(ApiKey::Fetch, version, &req);
    let part = &resp.responses[0].partitions[0];
    (part.error_code, part.records.clone().unwrap_or_default())
}

/// (codec, values) of every stored batch.
fn stored(records: &[u8]) -> Vec<(Compression, Vec<Option<Vec<u8>>>)> {
    batch::batches(records)
        .map(|item| {
            let (header, bytes) = item.unwrap();
            let payload = batch::records_payload(bytes, &header, 64 << 20).unwrap();
            let values = batch::records(&header, &payload)
                .map(|r| r.unwrap().value.map(<[u8]>::to_vec))
                .collect();
            (header.compression(), values)
        })
        .collect()
}

fn values_batch(codec: Compression, values: &[&str]) -> Vec<u8> {
    let records: Vec<_> = values
        .iter()
        .map(|v| (Some(&b"k"[..]), Some(v.as_bytes()), 1_000))
        .collect();
    build_batch(0, &records, codec).unwrap()
}

/// Sets the codec bits of a batch and fixes its CRC, leaving the payload.
fn with_codec_id(mut batch: Vec<u8>, id: u8) -> Vec<u8> {
    batch[22] = (batch[22] & !0x07) | id;
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn bad_compressed_batches_fail_only_their_own_partition() {
    let broker = TestBroker::start_with(&["--max-decompressed-batch-bytes", "1048576"]);
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "t", 4, &[]).0, 0);

    let good = values_batch(Compression::Gzip, &["fine", "also fine"]);
    let unknown_codec = with_codec_id(values_batch(Compression::None, &["x"]), 5);
    let mut broken_gzip = values_batch(Compression::Gzip, &["y"; 20]);
    let middle = 61 + (broken_gzip.len() - 61) / 2;
    broken_gzip[middle] ^= 0x55;
    let broken_gzip = with_codec_id(broken_gzip, 1);
    let big = vec![b'z'; 2 << 20];
    let bomb = build_batch(0, &[(None, Some(&big[..]), 1)], Compression::Zstd).unwrap();
    assert!(bomb.len() < 4096);

    let results = produce_partitions(
        &mut client,
        9,
        "t",
        vec![good, unknown_codec, broken_gzip, bomb],
    );
    let corrupt = ResponseError::CorruptMessage.code();
    assert_eq!(
        results,
        vec![(0, 0), (corrupt, -1), (corrupt, -1), (corrupt, -1)]
    );

    let p0 = fetch_raw(&mut client, "t", 0);
    assert_eq!(
        stored(&p0),
        vec![(
            Compression::Gzip,
            vec![Some(b"fine".to_vec()), Some(b"also fine".to_vec())]
        )]
    );
    for p in 1..4 {
        assert!(fetch_raw(&mut client, "t", p).is_empty(), "partition {p}");
    }
}

#[test]
fn create_topics_validates_compression_configs() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let invalid = ResponseError::InvalidConfig.code();
    for (key, value) in [
        ("compression.type", "none"),
        ("compression.type", "brotli"),
        ("compression.gzip.level", "10"),
        ("compression.lz4.level", "0"),
        ("compression.zstd.level", "23"),
        ("compression.zstd.level", "high"),
    ] {
        let (code, message) = create_topic(&mut client, "bad", 1, &[(key, value)]);
        assert_eq!(code, invalid, "{key}={value}");
        let message = message.unwrap();
        assert!(message.contains(key), "{key}={value}: {message}");
    }
    let (code, _) = create_topic(
        &mut client,
        "good",
        1,
        &[
            ("compression.type", "uncompressed"),
            ("compression.gzip.level", "-1"),
            ("compression.zstd.level", "-7"),
        ],
    );
    assert_eq!(code, 0);
}

#[test]
fn topic_compression_type_recompresses_on_produce() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let cases = [
        ("to-zstd", "zstd", Compression::Gzip, Compression::Zstd),
        (
            "to-none",
            "uncompressed",
            Compression::Lz4,
            Compression::None,
        ),
        ("to-gzip", "gzip", Compression::None, Compression::Gzip),
        (
            "to-snappy",
            "snappy",
            Compression::Zstd,
            Compression::Snappy,
        ),
        ("to-lz4", "lz4", Compression::Snappy, Compression::Lz4),
        ("keep", "producer", Compression::Snappy, Compression::Snappy),
    ];
    for (topic, kind, sent, want) in cases {
        let (code, msg) = create_topic(
            &mut client,
            topic,
            1,
            &[("compression.type", kind), ("compression.gzip.level", "9")],
        );
        assert_eq!(code, 0, "{msg:?}");
        let first = values_batch(sent, &["a", "b", "c"]);
        let second = values_batch(want, &["same codec"]);
        let sent_header = BatchHeader::parse(&first).unwrap();
        assert_eq!(
            produce_partitions(&mut client, 9, topic, vec![first]),
            vec![(0, 0)]
        );
        assert_eq!(
            produce_partitions(&mut client, 9, topic, vec![second.clone()]),
            vec![(0, 3)]
        );
        let raw = fetch_raw(&mut client, topic, 0);
        let got = stored(&raw);
        assert_eq!(
            got,
            vec![
                (
                    want,
                    vec![
                        Some(b"a".to_vec()),
                        Some(b"b".to_vec()),
                        Some(b"c".to_vec())
                    ]
                ),
                (want, vec![Some(b"same codec".to_vec())]),
            ],
            "{topic}"
        );
        let (header, bytes) = batch::batches(&raw).next().unwrap().unwrap();
        batch::validate(bytes, 64 << 20).unwrap();
        assert_eq!(header.base_timestamp(), sent_header.base_timestamp());
        assert_eq!(header.max_timestamp(), sent_header.max_timestamp());
        assert_eq!(header.records_count(), 3);
        // A batch already in the topic's codec is stored byte for byte
        // (apart from the base offset and leader epoch the broker assigns).
        let (_, stored_second) = batch::batches(&raw).nth(1).unwrap().unwrap();
        assert_eq!(&stored_second[16..], &second[16..], "{topic}");
    }
}

#[test]
fn broker_compression_type_applies_to_topics_without_their_own() {
    let broker = TestBroker::start_with(&["--compression-type", "lz4"]);
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "plain", 1, &[]).0, 0);
    assert_eq!(
        create_topic(&mut client, "own", 1, &[("compression.type", "producer")]).0,
        0
    );
    for topic in ["plain", "own"] {
        let results = produce_partitions(
            &mut client,
            9,
            topic,
            vec![values_batch(Compression::Gzip, &["v"])],
        );
        assert_eq!(results, vec![(0, 0)]);
    }
    assert_eq!(
        stored(&fetch_raw(&mut client, "plain", 0))[0].0,
        Compression::Lz4
    );
    assert_eq!(
        stored(&fetch_raw(&mut client, "own", 0))[0].0,
        Compression::Gzip
    );
}

#[test]
fn zstd_needs_produce_v7_and_fetch_v10() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "t", 1, &[]).0, 0);
    let zstd = || vec![values_batch(Compression::Zstd, &["z"])];
    assert_eq!(
        produce_partitions(&mut client, 6, "t", zstd()),
        vec![(ResponseError::UnsupportedCompressionType.code(), -1)]
    );
    assert_eq!(
        produce_partitions(&mut client, 7, "t", zstd()),
        vec![(0, 0)]
    );
}
