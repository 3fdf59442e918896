#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use uuid::Uuid;

use super::*;

fn id(first: u8) -> Uuid {
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = first.wrapping_add(i as u8);
    }
    Uuid::from_bytes(bytes)
}

fn id_bytes(first: u8) -> Vec<u8> {
    id(first).as_bytes().to_vec()
}

#[test]
fn topic_record_bytes_match_the_schema_layout() {
    let record = MetadataRecord::Topic(TopicRecord {
        name: "ab".into(),
        topic_id: id(0),
    });
    // frame v1, api key 2, version 0, compact string "ab" (len + 1 = 3),
    // 16-byte uuid, zero tagged fields.
    let mut expected = vec![0x01, 0x02, 0x00, 0x03, b'a', b'b'];
    expected.extend(id_bytes(0));
    expected.push(0x00);
    assert_eq!(record.encode(), expected);
    assert_eq!(MetadataRecord::decode(&expected), Ok(record));
}

#[test]
fn partition_change_writes_only_changed_fields_as_tags_in_tag_order() {
    let mut change = PartitionChangeRecord::new(id(0x10), 7);
    change.leader = 3;
    change.isr = Some(vec![3, 1]);
    let record = MetadataRecord::PartitionChange(change);
    // frame v1, api key 5, version 2, partition id 7, topic id; then two
    // tagged fields: tag 0 (Isr, 9 bytes: count+1 = 3, then 3 and 1) and
    // tag 1 (Leader, 4 bytes: 3).
    let mut expected = vec![0x01, 0x05, 0x02, 0, 0, 0, 7];
    expected.extend(id_bytes(0x10));
    expected.extend([0x02]);
    expected.extend([0x00, 0x09, 0x03, 0, 0, 0, 3, 0, 0, 0, 1]);
    expected.extend([0x01, 0x04, 0, 0, 0, 3]);
    assert_eq!(record.encode(), expected);
    assert_eq!(MetadataRecord::decode(&expected), Ok(record));
}

#[test]
fn fence_broker_record_bytes_match_the_schema_layout() {
    let record = MetadataRecord::FenceBroker(FenceBrokerRecord { id: 2, epoch: 260 });
    let expected = vec![
        0x01, 0x07, 0x00, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x01, 0x04, 0x00,
    ];
    assert_eq!(record.encode(), expected);
}

#[test]
fn a_version_0_partition_record_reads_with_the_schema_defaults() {
    let mut bytes = vec![0x01, 0x03, 0x00, 0, 0, 0, 0];
    bytes.extend(id_bytes(0x20));
    bytes.extend([0x02, 0, 0, 0, 1]); // replicas [1]
    bytes.extend([0x02, 0, 0, 0, 1]); // isr [1]
    bytes.extend([0x01, 0x01]); // removing [], adding []
    bytes.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]); // leader 1, epochs 0
    bytes.extend([0x01, 0x00, 0x01, 0x01]); // tag 0: leader recovery state 1
    let MetadataRecord::Partition(p) = MetadataRecord::decode(&bytes).expect("valid v0 record")
    else {
        panic!("not a partition record");
    };
    assert_eq!(p.replicas, vec![1]);
    assert_eq!(p.leader, 1);
    assert_eq!(p.leader_recovery_state, LeaderRecoveryState::Recovering);
    assert!(p.directories.is_empty());
    assert_eq!(p.eligible_leader_replicas, None);
}

#[test]
fn a_tag_the_version_does_not_define_is_skipped() {
    // PartitionChangeRecord v0 with tag 6 (ELR, v2+ only).
    let mut bytes = vec![0x01, 0x05, 0x00, 0, 0, 0, 0];
    bytes.extend(id_bytes(0));
    bytes.extend([0x01, 0x06, 0x05, 0x02, 0, 0, 0, 9]);
    let MetadataRecord::PartitionChange(c) = MetadataRecord::decode(&bytes).expect("valid") else {
        panic!("not a partition change");
    };
    assert_eq!(c.eligible_leader_replicas, None);
    assert!(c.is_no_op());
}

#[test]
fn a_no_op_record_is_its_frame_and_an_empty_tag_section() {
    assert_eq!(MetadataRecord::NoOp.encode(), vec![0x01, 0x14, 0x00, 0x00]);
    assert_eq!(
        MetadataRecord::decode(&[0x01, 0x14, 0x00, 0x00]),
        Ok(MetadataRecord::NoOp)
    );
}

#[test]
fn frame_version_0_is_rejected() {
    assert_eq!(
        MetadataRecord::decode(&[0x00, 0x02, 0x00]),
        Err(RecordError::UnknownFrameVersion(0))
    );
}

#[test]
fn an_unknown_api_key_or_version_is_rejected() {
    assert_eq!(
        MetadataRecord::decode(&[0x01, 0x63, 0x00]),
        Err(RecordError::UnknownApiKey(0x63))
    );
    assert_eq!(
        MetadataRecord::decode(&[0x01, 0x02, 0x01]),
        Err(RecordError::UnsupportedVersion {
            api_key: 2,
            version: 1
        })
    );
}

#[test]
fn bytes_after_the_record_are_rejected() {
    let mut bytes = MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id(1) }).encode();
    bytes.push(0);
    assert_eq!(
        MetadataRecord::decode(&bytes),
        Err(RecordError::TrailingBytes(1))
    );
}

#[test]
fn every_truncation_of_a_register_broker_record_is_an_error() {
    let bytes = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: 1,
        is_migrating_zk_broker: false,
        incarnation_id: id(3),
        broker_epoch: 10,
        end_points: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092,
            security_protocol: 0,
        }],
        features: vec![],
        rack: Some("r1".into()),
        fenced: true,
        in_controlled_shutdown: false,
        log_dirs: vec![id(9)],
    })
    .encode();
    for len in 0..bytes.len() {
        assert!(
            MetadataRecord::decode(&bytes[..len]).is_err(),
            "prefix {len}"
        );
    }
}

fn brokers() -> impl Strategy<Value = Vec<i32>> {
    proptest::collection::vec(-1i32..20, 0..5)
}

fn uuids() -> impl Strategy<Value = Vec<Uuid>> {
    proptest::collection::vec(any::<u128>().prop_map(Uuid::from_u128), 0..3)
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{0,12}"
}

fn lrs() -> impl Strategy<Value = LeaderRecoveryState> {
    prop_oneof![
        Just(LeaderRecoveryState::Recovered),
        Just(LeaderRecoveryState::Recovering)
    ]
}

fn register_broker() -> impl Strategy<Value = MetadataRecord> {
    let endpoint =
        (name(), name(), any::<u16>(), any::<i16>()).prop_map(|(n, h, p, s)| BrokerEndpoint {
            name: n,
            host: h,
            port: p,
            security_protocol: s,
        });
    let feature = (name(), any::<i16>(), any::<i16>()).prop_map(|(n, lo, hi)| BrokerFeature {
        name: n,
        min_supported_version: lo,
        max_supported_version: hi,
    });
    (
        (any::<i32>(), any::<bool>(), any::<u128>(), any::<i64>()),
        proptest::collection::vec(endpoint, 0..3),
        proptest::collection::vec(feature, 0..3),
        proptest::option::of(name()),
        (any::<bool>(), any::<bool>(), uuids()),
    )
        .prop_map(
            |((id, zk, inc, epoch), eps, fs, rack, (fenced, cs, dirs))| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    broker_id: id,
                    is_migrating_zk_broker: zk,
                    incarnation_id: Uuid::from_u128(inc),
                    broker_epoch: epoch,
                    end_points: eps,
                    features: fs,
                    rack,
                    fenced,
                    in_controlled_shutdown: cs,
                    log_dirs: dirs,
                })
            },
        )
}

fn partition() -> impl Strategy<Value = MetadataRecord> {
    (
        (any::<i32>(), any::<u128>(), brokers(), brokers(), brokers()),
        (brokers(), any::<i32>(), lrs(), any::<i32>(), any::<i32>()),
        (
            uuids(),
            proptest::option::of(brokers()),
            proptest::option::of(brokers()),
        ),
    )
        .prop_map(
            |((p, t, rep, isr, rem), (add, l, s, le, pe), (d, elr, lk))| {
                MetadataRecord::Partition(PartitionRecord {
                    partition_id: p,
                    topic_id: Uuid::from_u128(t),
                    replicas: rep,
                    isr,
                    removing_replicas: rem,
                    adding_replicas: add,
                    leader: l,
                    leader_recovery_state: s,
                    leader_epoch: le,
                    partition_epoch: pe,
                    directories: d,
                    eligible_leader_replicas: elr,
                    last_known_elr: lk,
                })
            },
        )
}

fn partition_change() -> impl Strategy<Value = MetadataRecord> {
    let list = || proptest::option::of(brokers());
    (
        (any::<i32>(), any::<u128>(), list(), any::<i32>(), list()),
        (list(), list(), proptest::option::of(lrs())),
        (list(), list(), proptest::option::of(uuids())),
    )
        .prop_map(|((p, t, isr, leader, rep), (rem, add, s), (elr, lk, d))| {
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                partition_id: p,
                topic_id: Uuid::from_u128(t),
                isr,
                leader,
                replicas: rep,
                removing_replicas: rem,
                adding_replicas: add,
                leader_recovery_state: s,
                eligible_leader_replicas: elr,
                last_known_elr: lk,
                directories: d,
            })
        })
}

fn any_record() -> impl Strategy<Value = MetadataRecord> {
    let fencing = prop_oneof![
        Just(FencingChange::Unfence),
        Just(FencingChange::None),
        Just(FencingChange::Fence)
    ];
    prop_oneof![
        register_broker(),
        (any::<i32>(), any::<i64>()).prop_map(|(broker_id, broker_epoch)| {
            MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
                broker_id,
                broker_epoch,
            })
        }),
        (any::<i32>(), any::<i64>(), fencing, any::<bool>(), uuids()).prop_map(
            |(broker_id, broker_epoch, fenced, cs, log_dirs)| {
                MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                    broker_id,
                    broker_epoch,
                    fenced,
                    in_controlled_shutdown: cs,
                    log_dirs,
                })
            }
        ),
        (any::<i32>(), any::<i64>())
            .prop_map(|(id, epoch)| MetadataRecord::FenceBroker(FenceBrokerRecord { id, epoch })),
        (any::<i32>(), any::<i64>()).prop_map(|(id, epoch)| {
            MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id, epoch })
        }),
        (name(), any::<u128>()).prop_map(|(name, t)| MetadataRecord::Topic(TopicRecord {
            name,
            topic_id: Uuid::from_u128(t)
        })),
        partition(),
        partition_change(),
        any::<u128>().prop_map(|t| MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: Uuid::from_u128(t)
        })),
        (any::<i8>(), name(), name(), proptest::option::of(".{0,8}")).prop_map(
            |(resource_type, resource_name, name, value)| MetadataRecord::Config(ConfigRecord {
                resource_type,
                resource_name,
                name,
                value
            })
        ),
        (any::<i32>(), any::<i64>(), any::<i64>()).prop_map(|(broker_id, broker_epoch, next)| {
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id,
                broker_epoch,
                next_producer_id: next,
            })
        }),
        Just(MetadataRecord::NoOp),
        (name(), any::<i16>()).prop_map(|(name, feature_level)| {
            MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name,
                feature_level,
            })
        }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = MetadataRecord::decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_frame_header_never_panic(
        key in prop::sample::select(vec![0u8, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 17, 20]),
        version in 0u8..4,
        body in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut bytes = vec![1, key, version];
        bytes.extend(body);
        let _ = MetadataRecord::decode(&bytes);
    }

    #[test]
    fn encode_then_decode_is_identity(record in any_record()) {
        prop_assert_eq!(MetadataRecord::decode(&record.encode()), Ok(record));
    }
}
