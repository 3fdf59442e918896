//! The chunked Fetch response encoder writes exactly what kafka-protocol's
//! encoder writes, for every version served, and leaves large records uncopied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData, SnapshotId,
};
use kafka_protocol::messages::{BrokerId, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;
use wharf_protocol::fetch_response::{encode_chunks, MAX_VERSION, MIN_VERSION};

fn reference(response: &FetchResponse, version: i16) -> Vec<u8> {
    let mut out = BytesMut::new();
    response
        .encode(&mut out, version)
        .expect("kafka-protocol encodes the response");
    out.to_vec()
}

fn concatenated(response: &FetchResponse, version: i16) -> Vec<u8> {
    encode_chunks(response, version)
        .expect("chunked encoder encodes the response")
        .concat()
}

#[derive(Debug, Clone)]
struct PartitionSpec {
    index: i32,
    error: i16,
    hw: i64,
    lso: i64,
    log_start: i64,
    aborted: Option<Vec<(i64, i64)>>,
    records: Option<Vec<u8>>,
    replica: i32,
    diverging: Option<(i32, i64)>,
    leader: Option<(i32, i32)>,
    snapshot: Option<(i64, i32)>,
}

fn partition_spec() -> impl Strategy<Value = PartitionSpec> {
    (
        (
            any::<i32>(),
            any::<i16>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
        ),
        proptest::option::of(proptest::collection::vec(
            (any::<i64>(), any::<i64>()),
            0..3,
        )),
        proptest::option::of(prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 500..3000),
        ]),
        any::<i32>(),
        proptest::option::of((any::<i32>(), any::<i64>())),
        proptest::option::of((any::<i32>(), any::<i32>())),
        proptest::option::of((any::<i64>(), any::<i32>())),
    )
        .prop_map(
            |((index, error, hw, lso, log_start), aborted, records, replica, d, l, s)| {
                PartitionSpec {
                    index,
                    error,
                    hw,
                    lso,
                    log_start,
                    aborted,
                    records,
                    replica,
                    diverging: d,
                    leader: l,
                    snapshot: s,
                }
            },
        )
}

/// Builds a response with only the fields `version` can carry set away
/// from their defaults (kafka-protocol refuses the others).
fn build(
    version: i16,
    session_id: i32,
    topics: &[(String, [u8; 16], Vec<PartitionSpec>)],
    endpoints: &[(i32, String, i32)],
) -> FetchResponse {
    let mut response = FetchResponse::default();
    response.throttle_time_ms = 7;
    if version >= 7 {
        response.error_code = 3;
        response.session_id = session_id;
    }
    for (name, id, parts) in topics {
        let mut topic = FetchableTopicResponse::default();
        topic.topic = TopicName(StrBytes::from_string(name.clone()));
        topic.topic_id = uuid::Uuid::from_bytes(*id);
        for spec in parts {
            let mut p = PartitionData::default();
            p.partition_index = spec.index;
            p.error_code = spec.error;
            p.high_watermark = spec.hw;
            p.last_stable_offset = spec.lso;
            p.log_start_offset = spec.log_start;
            p.aborted_transactions = spec.aborted.as_ref().map(|list| {
                list.iter()
                    .map(|&(pid, first)| {
                        let mut a = AbortedTransaction::default();
                        a.producer_id = ProducerId(pid);
                        a.first_offset = first;
                        a
                    })
                    .collect()
            });
            p.records = spec.records.clone().map(Bytes::from);
            if version >= 11 {
                p.preferred_read_replica = BrokerId(spec.replica);
            }
            if version >= 12 {
                if let Some((epoch, end)) = spec.diverging {
                    p.diverging_epoch = EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end);
                }
                if let Some((id, epoch)) = spec.leader {
                    p.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(id))
                        .with_leader_epoch(epoch);
                }
                if let Some((end, epoch)) = spec.snapshot {
                    p.snapshot_id = SnapshotId::default().with_end_offset(end).with_epoch(epoch);
                }
            }
            topic.partitions.push(p);
        }
        response.responses.push(topic);
    }
    if version >= 16 {
        response.node_endpoints = endpoints
            .iter()
            .map(|(id, host, port)| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(*id))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(*port)
            })
            .collect();
    }
    response
}

proptest! {
    #[test]
    fn chunked_fetch_response_is_byte_identical_to_kafka_protocol(
        session_id in any::<i32>(),
        topics in proptest::collection::vec(
            ("[a-z]{1,12}", any::<[u8; 16]>(), proptest::collection::vec(partition_spec(), 0..4)),
            0..3,
        ),
        endpoints in proptest::collection::vec((any::<i32>(), "[a-z]{1,8}", any::<i32>()), 0..2),
    ) {
        for version in MIN_VERSION..=MAX_VERSION {
            let response = build(version, session_id, &topics, &endpoints);
            prop_assert_eq!(
                concatenated(&response, version),
                reference(&response, version),
                "Fetch v{}", version
            );
        }
    }
}

#[test]
fn large_records_are_passed_through_without_copying() {
    let records = Bytes::from(vec![0xab; 64 * 1024]);
    let mut partition = PartitionData::default();
    partition.records = Some(records.clone());
    let mut topic = FetchableTopicResponse::default();
    topic.topic = TopicName(StrBytes::from_static_str("t"));
    topic.partitions.push(partition);
    let mut response = FetchResponse::default();
    response.responses.push(topic);
    for version in MIN_VERSION..=MAX_VERSION {
        let chunks = encode_chunks(&response, version).expect("encodes");
        assert!(
            chunks
                .iter()
                .any(|c| c.as_ptr() == records.as_ptr() && c.len() == records.len()),
            "v{version}: the records chunk is the stored buffer itself"
        );
        assert_eq!(chunks.concat(), reference(&response, version), "v{version}");
    }
}

#[test]
fn unknown_tagged_fields_fall_back_to_one_whole_chunk() {
    let mut response = FetchResponse::default();
    response
        .unknown_tagged_fields
        .insert(9, Bytes::from_static(b"xyz"));
    let chunks = encode_chunks(&response, 12).expect("encodes");
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks.concat(), reference(&response, 12));
}

#[test]
fn versions_outside_the_served_range_are_refused() {
    let response = FetchResponse::default();
    assert!(encode_chunks(&response, MIN_VERSION - 1).is_err());
    assert!(encode_chunks(&response, MAX_VERSION + 1).is_err());
}
