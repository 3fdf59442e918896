#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use super::*;
use crate::metadata::placement::SeededRandom;
use crate::metadata::testkit::{
    apply_all, cluster, create, create_assigned, new_topic, register_record,
};

fn create_one(
    image: &MetadataImage,
    config: &ControllerConfig,
    topic: NewTopic,
) -> Result<(CreatedTopic, Vec<MetadataRecord>), ControllerError> {
    let mut outcome = create_topics(image, config, &mut SeededRandom::new(3), &[topic], false);
    let (_, result) = outcome.results.pop().unwrap();
    result.map(|created| (created, outcome.records))
}

fn code(result: Result<impl std::fmt::Debug, ControllerError>) -> ResponseError {
    result.unwrap_err().code
}

#[test]
fn six_partitions_rf3_on_three_brokers_spread_leaders_evenly() {
    let mut image = cluster(&[1, 2, 3]);
    create(
        &mut image,
        &ControllerConfig::default(),
        &[new_topic("t", 6, 3)],
    );
    let topic = image.topic_by_name("t").unwrap();
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for p in topic.partitions.values() {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(
            p.isr, p.replicas,
            "every replica of a new partition is in sync"
        );
        assert_eq!(p.leader, p.replicas[0]);
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 0));
        *leaders.entry(p.leader).or_default() += 1;
    }
    assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
}

#[test]
fn records_are_the_topic_then_its_configs_then_its_partitions() {
    let image = cluster(&[1]);
    let mut topic = new_topic("t", 2, 1);
    topic.configs = vec![
        ("cleanup.policy".into(), Some("compact".into())),
        ("retention.ms".into(), None),
    ];
    let (created, records) = create_one(&image, &ControllerConfig::default(), topic).unwrap();
    assert!(matches!(records[0], MetadataRecord::Topic(ref t) if t.topic_id == created.topic_id));
    assert!(matches!(records[1], MetadataRecord::Config(ref c) if c.name == "cleanup.policy"));
    assert!(matches!(records[2], MetadataRecord::Partition(ref p) if p.partition_id == 0));
    assert!(matches!(records[3], MetadataRecord::Partition(ref p) if p.partition_id == 1));
    assert_eq!(records.len(), 4);
    assert_eq!((created.num_partitions, created.replication_factor), (2, 1));
}

#[test]
fn rf_above_live_brokers_is_invalid_replication_factor() {
    let image = cluster(&[1, 2]);
    let err = create_one(&image, &ControllerConfig::default(), new_topic("t", 1, 3)).unwrap_err();
    assert_eq!(err.code, ResponseError::InvalidReplicationFactor);
}

#[test]
fn a_fenced_broker_counts_towards_the_replication_factor_but_is_not_in_the_isr() {
    // Kafka's placer counts every registered broker not shutting down.
    let mut image = cluster(&[1, 2]);
    apply_all(&mut image, &[register_record(3, 103, None)]);
    let (_, records) =
        create_one(&image, &ControllerConfig::default(), new_topic("t", 3, 3)).unwrap();
    for r in &records {
        if let MetadataRecord::Partition(p) = r {
            assert!(p.replicas.contains(&3));
            assert!(!p.isr.contains(&3));
            assert_ne!(p.leader, 3);
        }
    }
}

#[test]
fn every_broker_fenced_is_invalid_replication_factor() {
    let mut image = MetadataImage::new();
    apply_all(&mut image, &[register_record(1, 1, None)]);
    let err = create_one(&image, &ControllerConfig::default(), new_topic("t", 1, 1)).unwrap_err();
    assert_eq!(err.code, ResponseError::InvalidReplicationFactor);
}

#[test]
fn minus_one_takes_the_default_replication_factor_and_partition_count() {
    let image = cluster(&[1, 2, 3]);
    let config = ControllerConfig {
        default_replication_factor: 2,
        default_num_partitions: 4,
        ..ControllerConfig::default()
    };
    let (created, _) = create_one(&image, &config, new_topic("t", -1, -1)).unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (4, 2));
    // A default above the live brokers fails like an explicit factor.
    let config = ControllerConfig {
        default_replication_factor: 4,
        ..config
    };
    assert_eq!(
        code(create_one(&image, &config, new_topic("u", -1, -1))),
        ResponseError::InvalidReplicationFactor
    );
}

#[test]
fn zero_or_below_minus_one_is_refused() {
    let image = cluster(&[1]);
    let config = ControllerConfig::default();
    assert_eq!(
        code(create_one(&image, &config, new_topic("t", 1, 0))),
        ResponseError::InvalidReplicationFactor
    );
    assert_eq!(
        code(create_one(&image, &config, new_topic("t", 1, -2))),
        ResponseError::InvalidReplicationFactor
    );
    assert_eq!(
        code(create_one(&image, &config, new_topic("t", 0, 1))),
        ResponseError::InvalidPartitions
    );
}

#[test]
fn topic_names_follow_kafkas_rules() {
    assert!(validate_topic_name("orders.v1_x-Y9").is_ok());
    assert!(validate_topic_name(&"a".repeat(249)).is_ok());
    for bad in ["", ".", "..", "a b", "ü", "a/b", &"a".repeat(250)] {
        assert_eq!(
            validate_topic_name(bad).unwrap_err().code,
            ResponseError::InvalidTopicException,
            "{bad:?}"
        );
    }
}

#[test]
fn an_existing_name_is_topic_already_exists_and_a_dot_underscore_twin_collides() {
    let mut image = cluster(&[1]);
    let config = ControllerConfig::default();
    create(&mut image, &config, &[new_topic("a.b", 1, 1)]);
    assert_eq!(
        code(create_one(&image, &config, new_topic("a.b", 1, 1))),
        ResponseError::TopicAlreadyExists
    );
    assert_eq!(
        code(create_one(&image, &config, new_topic("a_b", 1, 1))),
        ResponseError::InvalidTopicException
    );
}

#[test]
fn a_name_twice_in_one_request_is_invalid_request_for_both() {
    let image = cluster(&[1]);
    let topics = [
        new_topic("t", 1, 1),
        new_topic("t", 1, 1),
        new_topic("u", 1, 1),
    ];
    let outcome = create_topics(
        &image,
        &ControllerConfig::default(),
        &mut SeededRandom::new(1),
        &topics,
        false,
    );
    assert_eq!(
        outcome.results[0].1.as_ref().unwrap_err().code,
        ResponseError::InvalidRequest
    );
    assert_eq!(
        outcome.results[1].1.as_ref().unwrap_err().code,
        ResponseError::InvalidRequest
    );
    assert!(outcome.results[2].1.is_ok());
}

#[test]
fn the_metadata_topic_cannot_be_created() {
    let image = cluster(&[1]);
    let topic = new_topic("__cluster_metadata", 1, 1);
    assert_eq!(
        code(create_one(&image, &ControllerConfig::default(), topic)),
        ResponseError::InvalidRequest
    );
}

#[test]
fn validate_only_answers_without_records() {
    let image = cluster(&[1]);
    let outcome = create_topics(
        &image,
        &ControllerConfig::default(),
        &mut SeededRandom::new(1),
        &[new_topic("t", 3, 1)],
        true,
    );
    assert!(outcome.results[0].1.is_ok());
    assert!(outcome.records.is_empty());
}

#[test]
fn manual_assignments_are_validated_like_kafka() {
    let image = cluster(&[1, 2, 3]);
    let config = ControllerConfig::default();
    let assigned = |parts: Vec<(i32, Vec<i32>)>, rf: i16, n: i32| NewTopic {
        name: "t".into(),
        num_partitions: n,
        replication_factor: rf,
        assignments: parts,
        configs: vec![],
    };
    let cases = [
        (
            assigned(vec![(0, vec![1, 2])], 2, -1),
            ResponseError::InvalidRequest,
        ),
        (
            assigned(vec![(0, vec![1, 2])], -1, 1),
            ResponseError::InvalidRequest,
        ),
        (
            assigned(vec![(0, vec![1, 1])], -1, -1),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            assigned(vec![(0, vec![1, 9])], -1, -1),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            assigned(vec![(0, vec![])], -1, -1),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            assigned(vec![(0, vec![1, 2]), (1, vec![3])], -1, -1),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            assigned(vec![(0, vec![1]), (0, vec![2])], -1, -1),
            ResponseError::InvalidReplicaAssignment,
        ),
        (
            assigned(vec![(0, vec![1]), (2, vec![2])], -1, -1),
            ResponseError::InvalidReplicaAssignment,
        ),
    ];
    for (topic, expected) in cases {
        let assignments = topic.assignments.clone();
        assert_eq!(
            code(create_one(&image, &config, topic)),
            expected,
            "{assignments:?}"
        );
    }
    let (created, _) = create_one(
        &image,
        &config,
        assigned(vec![(1, vec![3, 1]), (0, vec![2, 3])], -1, -1),
    )
    .unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (2, 2));
}

#[test]
fn a_manual_assignment_on_fenced_brokers_only_is_refused() {
    let mut image = cluster(&[1]);
    apply_all(&mut image, &[register_record(2, 102, None)]);
    let topic = NewTopic {
        name: "t".into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: vec![(0, vec![2])],
        configs: vec![],
    };
    assert_eq!(
        code(create_one(&image, &ControllerConfig::default(), topic)),
        ResponseError::InvalidReplicaAssignment
    );
}

#[test]
fn create_partitions_adds_partitions_with_the_topics_replication_factor() {
    let mut image = cluster(&[1, 2, 3]);
    let id = create_assigned(&mut image, "t", &[&[1, 2]]);
    let records = create_partitions(&image, &mut SeededRandom::new(5), "t", 4, None).unwrap();
    assert_eq!(records.len(), 3);
    apply_all(&mut image, &records);
    let topic = image.topic(id).unwrap();
    assert_eq!(
        topic.partitions.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(topic.partitions.values().all(|p| p.replicas.len() == 2));
}

#[test]
fn create_partitions_refuses_no_increase_and_mismatched_assignments() {
    let mut image = cluster(&[1, 2]);
    create_assigned(&mut image, "t", &[&[1, 2], &[2, 1]]);
    let mut random = SeededRandom::new(5);
    let err = |r: Result<Vec<MetadataRecord>, ControllerError>| r.unwrap_err().code;
    assert_eq!(
        err(create_partitions(&image, &mut random, "t", 2, None)),
        ResponseError::InvalidPartitions
    );
    assert_eq!(
        err(create_partitions(&image, &mut random, "t", 1, None)),
        ResponseError::InvalidPartitions
    );
    assert_eq!(
        err(create_partitions(&image, &mut random, "nope", 3, None)),
        ResponseError::UnknownTopicOrPartition
    );
    assert_eq!(
        err(create_partitions(
            &image,
            &mut random,
            "t",
            4,
            Some(&[vec![1, 2]])
        )),
        ResponseError::InvalidReplicaAssignment
    );
    assert_eq!(
        err(create_partitions(
            &image,
            &mut random,
            "t",
            3,
            Some(&[vec![1]])
        )),
        ResponseError::InvalidReplicaAssignment
    );
    let records = create_partitions(&image, &mut random, "t", 3, Some(&[vec![2, 1]])).unwrap();
    let MetadataRecord::Partition(p) = &records[0] else {
        panic!("{records:?}")
    };
    assert_eq!((p.partition_id, p.leader), (2, 2));
}

#[test]
fn delete_topic_names_the_topic_or_is_unknown_topic_id() {
    let mut image = cluster(&[1]);
    let id = create_assigned(&mut image, "t", &[&[1]]);
    assert_eq!(
        delete_topic(&image, id).unwrap(),
        MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id })
    );
    assert_eq!(
        delete_topic(&image, Uuid::from_u128(77)).unwrap_err().code,
        ResponseError::UnknownTopicId
    );
    assert_eq!(
        delete_topic_by_name(&image, "t").unwrap(),
        delete_topic(&image, id).unwrap()
    );
    assert_eq!(
        delete_topic_by_name(&image, "u").unwrap_err().code,
        ResponseError::UnknownTopicOrPartition
    );
}

#[test]
fn random_topic_ids_are_version_4_and_never_reserved() {
    let mut random = SeededRandom::new(9);
    for _ in 0..200 {
        let id = random_topic_id(&mut random);
        assert_eq!(id.get_version_num(), 4);
        assert!(id.as_u128() > 1);
        assert_ne!(id.as_bytes()[0] >> 2, 62);
    }
}

#[test]
fn created_partitions_span_the_racks_of_the_brokers() {
    let mut image = MetadataImage::new();
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
        apply_all(
            &mut image,
            &[
                register_record(id, 100 + i64::from(id), Some(rack)),
                crate::metadata::testkit::unfence_record(id, 100 + i64::from(id)),
            ],
        );
    }
    create(
        &mut image,
        &ControllerConfig::default(),
        &[new_topic("t", 12, 3)],
    );
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for p in image.topic_by_name("t").unwrap().partitions.values() {
        let racks: std::collections::BTreeSet<_> = p
            .replicas
            .iter()
            .map(|b| image.broker(*b).unwrap().rack.clone())
            .collect();
        assert_eq!(racks.len(), 3, "{:?}", p.replicas);
        *leaders.entry(p.leader).or_default() += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
}
