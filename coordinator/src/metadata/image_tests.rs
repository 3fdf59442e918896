#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uuid::Uuid;

use super::*;
use crate::metadata::records::{
    FenceBrokerRecord, LeaderRecoveryState, PartitionChangeRecord, PartitionRecord,
    RemoveTopicRecord, UnfenceBrokerRecord, UnregisterBrokerRecord,
};

pub(crate) fn register(id: i32, epoch: i64, rack: Option<&str>) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: id,
        is_migrating_zk_broker: false,
        incarnation_id: Uuid::from_u128(1000 + id as u128),
        broker_epoch: epoch,
        end_points: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: format!("broker{id}"),
            port: 9092,
            security_protocol: 0,
        }],
        features: vec![],
        rack: rack.map(str::to_owned),
        fenced: true,
        in_controlled_shutdown: false,
        log_dirs: vec![],
    })
}

fn partition(topic: Uuid, index: i32, replicas: &[i32]) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: index,
        topic_id: topic,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        removing_replicas: vec![],
        adding_replicas: vec![],
        leader: replicas[0],
        leader_recovery_state: LeaderRecoveryState::Recovered,
        leader_epoch: 0,
        partition_epoch: 0,
        directories: vec![],
        eligible_leader_replicas: None,
        last_known_elr: None,
    })
}

fn topic(name: &str, id: Uuid) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: name.into(),
        topic_id: id,
    })
}

fn config(resource_type: i8, resource: &str, key: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type,
        resource_name: resource.into(),
        name: key.into(),
        value: value.map(str::to_owned),
    })
}

fn image_of(records: &[MetadataRecord]) -> MetadataImage {
    let mut image = MetadataImage::new();
    for r in records {
        image.apply(r).expect("record applies");
    }
    image
}

fn sample() -> MetadataImage {
    let t = Uuid::from_u128(1);
    image_of(&[
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 21,
        }),
        register(1, 10, Some("a")),
        register(2, 11, None),
        register(3, 12, Some("b")),
        MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id: 1, epoch: 10 }),
        MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
            broker_id: 2,
            broker_epoch: 11,
            fenced: FencingChange::Unfence,
            in_controlled_shutdown: true,
            log_dirs: vec![],
        }),
        topic("orders", t),
        config(
            CONFIG_RESOURCE_TOPIC,
            "orders",
            "cleanup.policy",
            Some("compact"),
        ),
        partition(t, 0, &[1, 2, 3]),
        partition(t, 1, &[2, 3, 1]),
        config(CONFIG_RESOURCE_BROKER, "", "log.retention.ms", Some("1000")),
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 10,
            next_producer_id: 1000,
        }),
        MetadataRecord::NoOp,
    ])
}

#[test]
fn applying_to_records_of_an_image_rebuilds_an_equal_image() {
    let mut image = sample();
    let t = Uuid::from_u128(1);
    let mut change = PartitionChangeRecord::new(t, 1);
    change.leader = 3;
    change.isr = Some(vec![3, 1]);
    change.leader_recovery_state = Some(LeaderRecoveryState::Recovering);
    image
        .apply(&MetadataRecord::PartitionChange(change))
        .unwrap();
    let rebuilt = image_of(&image.to_records());
    assert_eq!(rebuilt, image);
}

#[test]
fn lookups_by_name_and_id_agree() {
    let image = sample();
    let by_name = image.topic_by_name("orders").unwrap();
    assert_eq!(image.topic(by_name.id).unwrap().name, "orders");
    assert_eq!(image.topic_id("orders"), Some(Uuid::from_u128(1)));
    assert!(image.topic_by_name("nope").is_none());
    assert_eq!(by_name.partitions.len(), 2);
}

#[test]
fn leaders_and_followers_of_a_broker() {
    let image = sample();
    let t = Uuid::from_u128(1);
    assert_eq!(image.partitions_led_by(2), vec![(t, 1)]);
    assert_eq!(image.partitions_followed_by(2), vec![(t, 0)]);
    assert_eq!(image.partitions_followed_by(3), vec![(t, 0), (t, 1)]);
}

#[test]
fn broker_flags_follow_fence_unfence_and_registration_change_records() {
    let mut image = sample();
    assert!(image.is_active(1));
    assert!(!image.is_active(2), "in controlled shutdown");
    assert!(!image.is_active(3), "registered fenced");
    image
        .apply(&MetadataRecord::FenceBroker(FenceBrokerRecord {
            id: 1,
            epoch: 10,
        }))
        .unwrap();
    assert!(image.broker(1).unwrap().fenced);
}

#[test]
fn a_broker_change_with_a_stale_epoch_is_refused_and_changes_nothing() {
    let mut image = sample();
    let before = image.clone();
    let err = image
        .apply(&MetadataRecord::FenceBroker(FenceBrokerRecord {
            id: 1,
            epoch: 9,
        }))
        .unwrap_err();
    assert_eq!(
        err,
        ImageError::BrokerEpochMismatch {
            broker: 1,
            current: 10,
            record: 9
        }
    );
    assert_eq!(image, before);
}

#[test]
fn unregistering_removes_the_broker() {
    let mut image = sample();
    image
        .apply(&MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
            broker_id: 3,
            broker_epoch: 12,
        }))
        .unwrap();
    assert!(image.broker(3).is_none());
}

#[test]
fn a_partition_of_an_unknown_topic_is_refused() {
    let mut image = sample();
    let stray = Uuid::from_u128(99);
    assert_eq!(
        image.apply(&partition(stray, 0, &[1])),
        Err(ImageError::UnknownTopic(stray))
    );
    let change = PartitionChangeRecord::new(Uuid::from_u128(1), 7);
    assert_eq!(
        image.apply(&MetadataRecord::PartitionChange(change)),
        Err(ImageError::UnknownPartition {
            topic: Uuid::from_u128(1),
            partition: 7
        })
    );
}

#[test]
fn a_second_topic_record_for_a_name_is_refused() {
    let mut image = sample();
    assert_eq!(
        image.apply(&topic("orders", Uuid::from_u128(5))),
        Err(ImageError::DuplicateTopicName("orders".into()))
    );
}

#[test]
fn removing_a_topic_removes_its_partitions_name_and_configs() {
    let mut image = sample();
    let t = Uuid::from_u128(1);
    image
        .apply(&MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: t,
        }))
        .unwrap();
    assert!(image.topic(t).is_none());
    assert!(image.topic_by_name("orders").is_none());
    assert_eq!(image.topic_config("orders", "cleanup.policy"), None);
    assert_eq!(image.partitions().count(), 0);
    // The name is free again.
    image.apply(&topic("orders", Uuid::from_u128(2))).unwrap();
}

#[test]
fn a_null_config_value_deletes_the_key() {
    let mut image = sample();
    assert_eq!(
        image.topic_config("orders", "cleanup.policy"),
        Some("compact")
    );
    image
        .apply(&config(
            CONFIG_RESOURCE_TOPIC,
            "orders",
            "cleanup.policy",
            None,
        ))
        .unwrap();
    assert_eq!(image.topic_config("orders", "cleanup.policy"), None);
    assert!(image
        .configs(&ConfigResource::Topic("orders".into()))
        .is_none());
}

#[test]
fn feature_level_zero_is_kept_as_an_explicit_zero_and_not_finalized() {
    let mut image = sample();
    assert_eq!(image.feature_level("metadata.version"), Some(21));
    image
        .apply(&MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 0,
        }))
        .unwrap();
    assert_eq!(image.feature_level("metadata.version"), Some(0));
    assert!(!crate::metadata::features::finalized(&image)
        .iter()
        .any(|(name, _)| name == "metadata.version"));
}

#[test]
fn a_snapshot_taken_before_a_change_does_not_see_it() {
    let mut image = sample();
    let snapshot: ImageSnapshot = Arc::new(image.clone());
    let t = Uuid::from_u128(1);
    let mut change = PartitionChangeRecord::new(t, 0);
    change.leader = 2;
    image
        .apply(&MetadataRecord::PartitionChange(change))
        .unwrap();
    assert_eq!(snapshot.partition(t, 0).unwrap().leader, 1);
    assert_eq!(image.partition(t, 0).unwrap().leader, 2);
    assert_eq!(image.partition(t, 0).unwrap().leader_epoch, 1);
}

#[test]
fn producer_id_blocks_only_move_forward() {
    let mut image = sample();
    assert_eq!(image.next_producer_id(), 1000);
    let block = |next| {
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 2,
            broker_epoch: 11,
            next_producer_id: next,
        })
    };
    assert_eq!(
        image.apply(&block(1000)),
        Err(ImageError::ProducerIdsWentBack {
            current: 1000,
            record: 1000
        })
    );
    image.apply(&block(2000)).unwrap();
    assert_eq!(image.next_producer_id(), 2000);
    assert_eq!(MetadataImage::new().next_producer_id(), -1);
}

#[test]
fn alive_brokers_and_offline_replicas_follow_fencing_and_listeners() {
    let mut image = sample();
    // Broker 1 unfenced, 2 unfenced but shutting down, 3 fenced.
    let alive: Vec<i32> = image.alive_brokers().map(|b| b.id).collect();
    assert_eq!(alive, vec![1, 2]);
    let t = Uuid::from_u128(1);
    let p = image.partition(t, 0).unwrap().clone();
    assert_eq!(image.offline_replicas(&p, "PLAINTEXT"), vec![3]);
    assert_eq!(image.offline_replicas(&p, "SSL"), vec![1, 2, 3]);
    assert_eq!(
        image.alive_endpoint(1, "PLAINTEXT").unwrap().host,
        "broker1"
    );
    image
        .apply(&MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
            broker_id: 1,
            broker_epoch: 10,
        }))
        .unwrap();
    assert_eq!(image.offline_replicas(&p, "PLAINTEXT"), vec![1, 3]);
}
