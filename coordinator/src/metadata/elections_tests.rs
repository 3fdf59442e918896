#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::metadata::brokers::{controlled_shutdown_records, fence_records, unfence_records};
use crate::metadata::controller::UNCLEAN_LEADER_ELECTION_ENABLE;
use crate::metadata::records::{
    ConfigRecord, FencingChange, MetadataRecord, CONFIG_RESOURCE_TOPIC,
};
use crate::metadata::testkit::{apply_all, cluster, create_assigned};

fn config() -> ControllerConfig {
    ControllerConfig::default()
}

fn fence(image: &mut MetadataImage, id: i32) -> Vec<MetadataRecord> {
    let records = fence_records(image, &config(), id);
    apply_all(image, &records);
    records
}

fn unfence(image: &mut MetadataImage, id: i32) -> Vec<MetadataRecord> {
    let records = unfence_records(image, &config(), id);
    apply_all(image, &records);
    records
}

fn allow_unclean(image: &mut MetadataImage, topic: &str) {
    apply_all(
        image,
        &[MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: topic.into(),
            name: UNCLEAN_LEADER_ELECTION_ENABLE.into(),
            value: Some("true".into()),
        })],
    );
}

#[test]
fn fencing_the_leader_moves_leadership_to_the_next_isr_replica_and_bumps_the_leader_epoch() {
    let mut image = cluster(&[1, 2, 3]);
    let t = create_assigned(&mut image, "t", &[&[1, 2, 3]]);
    let records = fence(&mut image, 1);
    // The partition change comes first, then the fence (Kafka's order).
    let MetadataRecord::PartitionChange(change) = &records[0] else {
        panic!("{records:?}")
    };
    assert_eq!(change.leader, 2);
    assert_eq!(change.isr, Some(vec![2, 3]));
    assert!(matches!(
        &records[1],
        MetadataRecord::BrokerRegistrationChange(r) if r.fenced == FencingChange::Fence
    ));
    let p = image.partition(t, 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 1));
    assert_eq!(p.isr, vec![2, 3]);
    assert!(image.broker(1).unwrap().fenced);
}

#[test]
fn fencing_a_follower_shrinks_the_isr_without_a_leader_change() {
    let mut image = cluster(&[1, 2, 3]);
    let t = create_assigned(&mut image, "t", &[&[1, 2, 3]]);
    fence(&mut image, 2);
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.isr, vec![1, 3]);
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 0, 1));
}

#[test]
fn fencing_the_last_isr_member_keeps_it_in_the_isr_and_takes_the_partition_offline() {
    let mut image = cluster(&[1, 2]);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    fence(&mut image, 2);
    fence(&mut image, 1);
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.leader, NO_LEADER);
    assert_eq!(p.isr, vec![1], "the ISR never becomes empty");
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 2));
}

#[test]
fn unfencing_the_last_isr_member_brings_its_partitions_back_online() {
    let mut image = cluster(&[1, 2]);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    fence(&mut image, 2);
    fence(&mut image, 1);
    // Broker 2 is out of the ISR: unfencing it elects nobody.
    let records = unfence(&mut image, 2);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(image.partition(t, 0).unwrap().leader, NO_LEADER);
    let records = unfence(&mut image, 1);
    assert!(matches!(
        records[0],
        MetadataRecord::BrokerRegistrationChange(_)
    ));
    let p = image.partition(t, 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch), (1, 2));
}

#[test]
fn with_unclean_election_a_live_out_of_sync_replica_leads_and_recovers() {
    let mut image = cluster(&[1, 2]);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    allow_unclean(&mut image, "t");
    fence(&mut image, 2);
    unfence(&mut image, 2);
    assert_eq!(image.partition(t, 0).unwrap().isr, vec![1]);
    fence(&mut image, 1);
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.leader, 2);
    assert_eq!(p.isr, vec![2]);
    assert_eq!(p.leader_recovery_state, LeaderRecoveryState::Recovering);
}

#[test]
fn without_unclean_election_an_out_of_sync_replica_never_leads() {
    let mut image = cluster(&[1, 2]);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    fence(&mut image, 2);
    unfence(&mut image, 2);
    fence(&mut image, 1);
    assert_eq!(image.partition(t, 0).unwrap().leader, NO_LEADER);
}

#[test]
fn controlled_shutdown_marks_the_broker_and_moves_its_leaderships() {
    let mut image = cluster(&[1, 2]);
    let t = create_assigned(&mut image, "t", &[&[1, 2], &[2, 1]]);
    let records = controlled_shutdown_records(&image, &config(), 1);
    assert!(matches!(
        &records[0],
        MetadataRecord::BrokerRegistrationChange(r) if r.in_controlled_shutdown
    ));
    apply_all(&mut image, &records);
    assert_eq!(image.partition(t, 0).unwrap().leader, 2);
    assert_eq!(image.partition(t, 1).unwrap().isr, vec![2]);
    assert!(image.partitions_led_by(1).is_empty());
    // Asking again adds no second registration change.
    assert!(controlled_shutdown_records(&image, &config(), 1).is_empty());
}

#[test]
fn preferred_election_moves_leadership_back_to_the_first_replica() {
    let mut image = cluster(&[1, 2]);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    fence(&mut image, 1);
    unfence(&mut image, 1);
    // Broker 1 is live but out of the ISR: it cannot lead yet.
    assert_eq!(
        elect_leader(&image, "t", 0, ElectionType::Preferred)
            .unwrap_err()
            .code,
        ResponseError::PreferredLeaderNotAvailable
    );
    let mut back = PartitionChangeRecord::new(t, 0);
    back.isr = Some(vec![2, 1]);
    apply_all(&mut image, &[MetadataRecord::PartitionChange(back)]);
    let record = elect_leader(&image, "t", 0, ElectionType::Preferred).unwrap();
    assert_eq!(record.leader, 1);
    apply_all(&mut image, &[MetadataRecord::PartitionChange(record)]);
    assert_eq!(
        elect_leader(&image, "t", 0, ElectionType::Preferred)
            .unwrap_err()
            .code,
        ResponseError::ElectionNotNeeded
    );
}

#[test]
fn unclean_elect_leaders_picks_a_live_replica_for_a_leaderless_partition() {
    let mut image = cluster(&[1, 2]);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    assert_eq!(
        elect_leader(&image, "t", 0, ElectionType::Unclean)
            .unwrap_err()
            .code,
        ResponseError::ElectionNotNeeded
    );
    fence(&mut image, 2);
    unfence(&mut image, 2);
    fence(&mut image, 1);
    let record = elect_leader(&image, "t", 0, ElectionType::Unclean).unwrap();
    assert_eq!(record.leader, 2);
    assert_eq!(record.isr, Some(vec![2]));
    assert_eq!(
        record.leader_recovery_state,
        Some(LeaderRecoveryState::Recovering)
    );
    apply_all(&mut image, &[MetadataRecord::PartitionChange(record)]);
    assert_eq!(image.partition(t, 0).unwrap().leader_epoch, 2);
    fence(&mut image, 2);
    assert_eq!(
        elect_leader(&image, "t", 0, ElectionType::Unclean)
            .unwrap_err()
            .code,
        ResponseError::EligibleLeadersNotAvailable
    );
}

#[test]
fn electing_an_unknown_partition_is_unknown_topic_or_partition() {
    let mut image = cluster(&[1]);
    create_assigned(&mut image, "t", &[&[1]]);
    for (topic, partition) in [("t", 1), ("nope", 0)] {
        assert_eq!(
            elect_leader(&image, topic, partition, ElectionType::Preferred)
                .unwrap_err()
                .code,
            ResponseError::UnknownTopicOrPartition
        );
    }
}

#[test]
fn a_builder_with_nothing_to_change_proposes_nothing() {
    let mut image = cluster(&[1, 2]);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    let p = image.partition(t, 0).unwrap();
    let acceptable = |r: i32| image.is_active(r);
    assert_eq!(ChangeBuilder::new(p, t, 0, &acceptable).build(), None);
}
