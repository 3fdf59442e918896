#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::metadata::brokers::{controlled_shutdown_records, fence_records, unfence_records};
use crate::metadata::records::MetadataRecord;
use crate::metadata::testkit::{apply_all, cluster, create_assigned};

fn member(id: i32) -> IsrMember {
    IsrMember {
        broker_id: id,
        broker_epoch: 100 + i64::from(id),
    }
}

/// Brokers 1-3; topic "t" partition 0 on [1, 2, 3] with broker 3 dropped
/// from the ISR and back (unfenced): ISR [1, 2], leader 1, leader epoch 0,
/// partition epoch 1.
fn setup() -> (MetadataImage, Uuid) {
    let mut image = cluster(&[1, 2, 3]);
    let t = create_assigned(&mut image, "t", &[&[1, 2, 3]]);
    let config = ControllerConfig::default();
    let fence = fence_records(&image, &config, 3);
    apply_all(&mut image, &fence);
    let unfence = unfence_records(&image, &config, 3);
    apply_all(&mut image, &unfence);
    (image, t)
}

fn data(t: Uuid, leader_epoch: i32, partition_epoch: i32, isr: &[i32]) -> AlterPartitionData {
    AlterPartitionData {
        topic_id: t,
        partition_index: 0,
        leader_epoch,
        partition_epoch,
        new_isr: isr.iter().map(|b| member(*b)).collect(),
        leader_recovery_state: LeaderRecoveryState::Recovered,
    }
}

fn code(image: &MetadataImage, broker: i32, epoch: i64, d: &AlterPartitionData) -> ResponseError {
    alter_partition(image, &ControllerConfig::default(), broker, epoch, d)
        .unwrap_err()
        .code
}

#[test]
fn the_leader_expands_the_isr_and_only_the_partition_epoch_moves() {
    let (mut image, t) = setup();
    let outcome = alter_partition(
        &image,
        &ControllerConfig::default(),
        1,
        101,
        &data(t, 0, 1, &[1, 2, 3]),
    )
    .unwrap();
    let record = outcome.record.unwrap();
    assert_eq!(record.isr, Some(vec![1, 2, 3]));
    assert_eq!(record.leader, crate::metadata::records::NO_LEADER_CHANGE);
    assert_eq!(
        (
            outcome.partition.leader_epoch,
            outcome.partition.partition_epoch
        ),
        (0, 2)
    );
    apply_all(&mut image, &[MetadataRecord::PartitionChange(record)]);
    assert_eq!(image.partition(t, 0).unwrap(), &outcome.partition);
}

#[test]
fn partition_change_with_stale_partition_epoch_is_invalid_update_version() {
    let (image, t) = setup();
    assert_eq!(
        code(&image, 1, 101, &data(t, 0, 0, &[1, 2, 3])),
        ResponseError::InvalidUpdateVersion
    );
}

#[test]
fn a_stale_leader_epoch_is_fenced_leader_epoch() {
    let (mut image, t) = setup();
    let mut bump = crate::metadata::records::PartitionChangeRecord::new(t, 0);
    bump.leader = 1;
    apply_all(&mut image, &[MetadataRecord::PartitionChange(bump)]);
    assert_eq!(
        code(&image, 1, 101, &data(t, 0, 2, &[1, 2])),
        ResponseError::FencedLeaderEpoch
    );
}

#[test]
fn epochs_ahead_of_the_controller_are_not_controller() {
    let (image, t) = setup();
    assert_eq!(
        code(&image, 1, 101, &data(t, 1, 1, &[1, 2])),
        ResponseError::NotController
    );
    assert_eq!(
        code(&image, 1, 101, &data(t, 0, 2, &[1, 2])),
        ResponseError::NotController
    );
}

#[test]
fn only_the_leader_may_alter_and_the_isr_must_hold_it_within_the_replicas() {
    let (image, t) = setup();
    assert_eq!(
        code(&image, 2, 102, &data(t, 0, 1, &[1, 2])),
        ResponseError::InvalidRequest
    );
    assert_eq!(
        code(&image, 1, 101, &data(t, 0, 1, &[2, 3])),
        ResponseError::InvalidRequest
    );
    assert_eq!(
        code(&image, 1, 101, &data(t, 0, 1, &[1, 4])),
        ResponseError::InvalidRequest
    );
    assert_eq!(
        code(&image, 1, 101, &data(t, 0, 1, &[1, 2, 2])),
        ResponseError::InvalidRequest
    );
}

#[test]
fn a_fenced_shutting_down_or_reincarnated_isr_member_is_ineligible_replica() {
    let (mut image, t) = setup();
    let mut d = data(t, 0, 1, &[1, 2, 3]);
    d.new_isr[2].broker_epoch = 7;
    assert_eq!(code(&image, 1, 101, &d), ResponseError::IneligibleReplica);
    let config = ControllerConfig::default();
    let shutdown = controlled_shutdown_records(&image, &config, 3);
    apply_all(&mut image, &shutdown);
    assert_eq!(
        code(&image, 1, 101, &data(t, 0, 1, &[1, 2, 3])),
        ResponseError::IneligibleReplica
    );
}

#[test]
fn a_sender_with_another_broker_epoch_is_stale_broker_epoch() {
    let (image, t) = setup();
    assert_eq!(
        code(&image, 1, 99, &data(t, 0, 1, &[1, 2, 3])),
        ResponseError::StaleBrokerEpoch
    );
}

#[test]
fn an_unknown_topic_id_or_partition_is_refused() {
    let (image, t) = setup();
    let mut d = data(Uuid::from_u128(5), 0, 1, &[1]);
    assert_eq!(code(&image, 1, 101, &d), ResponseError::UnknownTopicId);
    d.topic_id = t;
    d.partition_index = 3;
    assert_eq!(
        code(&image, 1, 101, &d),
        ResponseError::UnknownTopicOrPartition
    );
}

#[test]
fn recovering_rules_follow_kafka() {
    let (image, t) = setup();
    let mut d = data(t, 0, 1, &[1, 2]);
    d.leader_recovery_state = LeaderRecoveryState::Recovering;
    assert_eq!(code(&image, 1, 101, &d), ResponseError::InvalidRequest);
    d.new_isr.truncate(1);
    // RECOVERED cannot go back to RECOVERING.
    assert_eq!(code(&image, 1, 101, &d), ResponseError::InvalidRequest);
}

#[test]
fn a_recovering_leader_reports_recovery() {
    let (mut image, t) = setup();
    let mut unclean = crate::metadata::records::PartitionChangeRecord::new(t, 0);
    unclean.isr = Some(vec![1]);
    unclean.leader_recovery_state = Some(LeaderRecoveryState::Recovering);
    apply_all(&mut image, &[MetadataRecord::PartitionChange(unclean)]);
    let outcome = alter_partition(
        &image,
        &ControllerConfig::default(),
        1,
        101,
        &data(t, 0, 2, &[1]),
    )
    .unwrap();
    let record = outcome.record.unwrap();
    assert_eq!(
        record.leader_recovery_state,
        Some(LeaderRecoveryState::Recovered)
    );
    assert_eq!(record.isr, None);
}

#[test]
fn an_unchanged_isr_proposes_nothing() {
    let (image, t) = setup();
    let outcome = alter_partition(
        &image,
        &ControllerConfig::default(),
        1,
        101,
        &data(t, 0, 1, &[1, 2]),
    )
    .unwrap();
    assert_eq!(outcome.record, None);
    assert_eq!(outcome.partition.partition_epoch, 1);
}
