#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use uuid::Uuid;

use super::*;
use crate::metadata::alter_partition::{alter_partition, AlterPartitionData, IsrMember};
use crate::metadata::brokers::fence_records;
use crate::metadata::records::{LeaderRecoveryState, MetadataRecord, NO_LEADER_CHANGE};
use crate::metadata::testkit::{apply_all, cluster, create_assigned};

fn config() -> ControllerConfig {
    ControllerConfig::default()
}

/// Brokers 1-4; topic "t" partition 0 on [1, 2, 3], led by 1.
fn setup() -> (MetadataImage, Uuid) {
    let mut image = cluster(&[1, 2, 3, 4]);
    let t = create_assigned(&mut image, "t", &[&[1, 2, 3]]);
    (image, t)
}

fn reassign(image: &mut MetadataImage, target: Option<&[i32]>) -> Option<PartitionChangeRecord> {
    let record = alter_reassignment(image, &config(), "t", 0, target, true).unwrap();
    if let Some(r) = &record {
        apply_all(image, &[MetadataRecord::PartitionChange(r.clone())]);
    }
    record
}

/// The leader reports `isr`; applies the accepted change.
fn leader_reports_isr(image: &mut MetadataImage, t: Uuid, isr: &[i32]) -> bool {
    let p = image.partition(t, 0).unwrap().clone();
    let epoch = image.broker(p.leader).unwrap().epoch;
    let data = AlterPartitionData {
        topic_id: t,
        partition_index: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        new_isr: isr
            .iter()
            .map(|b| IsrMember {
                broker_id: *b,
                broker_epoch: -1,
            })
            .collect(),
        leader_recovery_state: LeaderRecoveryState::Recovered,
    };
    let outcome = alter_partition(image, &config(), p.leader, epoch, &data).unwrap();
    if let Some(r) = outcome.record {
        apply_all(image, &[MetadataRecord::PartitionChange(r)]);
    }
    outcome.new_leader_elected
}

#[test]
fn a_move_adds_the_new_replicas_first_and_completes_when_they_join_the_isr() {
    let (mut image, t) = setup();
    let record = reassign(&mut image, Some(&[2, 3, 4])).unwrap();
    assert_eq!(
        record.leader, NO_LEADER_CHANGE,
        "the leader stays during the move"
    );
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.replicas, vec![2, 3, 4, 1]);
    assert_eq!(p.adding_replicas, vec![4]);
    assert_eq!(p.removing_replicas, vec![1]);
    assert_eq!(p.isr, vec![1, 2, 3]);
    assert_eq!(p.leader, 1);
    assert_eq!(
        list_reassignments(&image, None),
        vec![OngoingReassignment {
            topic: "t".into(),
            partition: 0,
            replicas: vec![2, 3, 4, 1],
            adding: vec![4],
            removing: vec![1],
        }]
    );

    // Broker 4 catches up: the leader's ISR expansion completes the move,
    // and the removed leader gives way to the first target replica.
    let moved = leader_reports_isr(&mut image, t, &[1, 2, 3, 4]);
    assert!(moved, "the sender learns that it no longer leads");
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.replicas, vec![2, 3, 4]);
    assert_eq!(p.isr, vec![2, 3, 4]);
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
    assert_eq!((p.leader, p.leader_epoch), (2, 1));
    assert!(list_reassignments(&image, None).is_empty());
}

#[test]
fn an_isr_change_that_leaves_an_adding_replica_out_does_not_complete() {
    let (mut image, t) = setup();
    reassign(&mut image, Some(&[2, 3, 4]));
    leader_reports_isr(&mut image, t, &[1, 2]);
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.replicas, vec![2, 3, 4, 1]);
    assert_eq!(p.isr, vec![1, 2]);
    assert_eq!(p.adding_replicas, vec![4]);
}

#[test]
fn a_reorder_or_a_shrink_completes_at_once() {
    let (mut image, t) = setup();
    reassign(&mut image, Some(&[3, 2, 1]));
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.replicas, vec![3, 2, 1]);
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
    assert_eq!(
        p.leader, 1,
        "a reorder keeps the leader (a preferred election moves it)"
    );

    reassign(&mut image, Some(&[2, 3]));
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.replicas, vec![2, 3]);
    assert_eq!(p.isr, vec![2, 3]);
    assert_eq!(p.leader, 2);
    assert!(
        reassign(&mut image, Some(&[2, 3])).is_none(),
        "the same replicas again change nothing"
    );
}

#[test]
fn cancelling_reverts_to_the_replicas_before_the_move() {
    let (mut image, t) = setup();
    reassign(&mut image, Some(&[4, 2, 3]));
    leader_reports_isr(&mut image, t, &[1, 2]);
    reassign(&mut image, None).unwrap();
    let p = image.partition(t, 0).unwrap();
    // The merged list was [4, 2, 3, 1]; the original order is not kept.
    assert_eq!(p.replicas, vec![2, 3, 1]);
    assert_eq!(p.isr, vec![1, 2]);
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
    assert_eq!(p.leader, 1);

    let err = alter_reassignment(&image, &config(), "t", 0, None, true).unwrap_err();
    assert_eq!(err.code, ResponseError::NoReassignmentInProgress);
}

#[test]
fn a_new_target_during_a_move_starts_from_the_current_replicas() {
    let (mut image, t) = setup();
    reassign(&mut image, Some(&[2, 3, 4]));
    // Replicas are [2, 3, 4, 1] now: moving to [1, 2, 3] drops broker 4.
    reassign(&mut image, Some(&[1, 2, 3]));
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.replicas, vec![1, 2, 3]);
    assert_eq!(p.isr, vec![1, 2, 3]);
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
}

#[test]
fn bad_targets_are_refused_with_kafkas_codes() {
    let (image, _) = setup();
    let code = |topic: &str, partition: i32, target: &[i32]| {
        alter_reassignment(&image, &config(), topic, partition, Some(target), true)
            .unwrap_err()
            .code
    };
    assert_eq!(code("t", 0, &[]), ResponseError::InvalidReplicaAssignment);
    assert_eq!(
        code("t", 0, &[2, 2]),
        ResponseError::InvalidReplicaAssignment
    );
    assert_eq!(
        code("t", 0, &[2, 9]),
        ResponseError::InvalidReplicaAssignment
    );
    assert_eq!(code("t", 7, &[2]), ResponseError::UnknownTopicOrPartition);
    assert_eq!(
        code("nope", 0, &[2]),
        ResponseError::UnknownTopicOrPartition
    );
    let err = alter_reassignment(&image, &config(), "t", 0, Some(&[2, 3]), false).unwrap_err();
    assert_eq!(err.code, ResponseError::InvalidReplicationFactor);
    assert!(alter_reassignment(&image, &config(), "t", 0, Some(&[2, 3, 4]), false).is_ok());
    assert!(list_reassignments(&image, Some(&[("t".into(), 5), ("nope".into(), 0)])).is_empty());
}

#[test]
fn a_removing_replica_that_is_fenced_leaves_the_isr_and_the_move_goes_on() {
    let (mut image, t) = setup();
    reassign(&mut image, Some(&[2, 3, 4]));
    let records = fence_records(&image, &config(), 1);
    apply_all(&mut image, &records);
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.leader, 2);
    assert_eq!(p.isr, vec![2, 3]);
    assert_eq!(p.adding_replicas, vec![4]);
    leader_reports_isr(&mut image, t, &[2, 3, 4]);
    let p = image.partition(t, 0).unwrap();
    assert_eq!(p.replicas, vec![2, 3, 4]);
    assert!(p.removing_replicas.is_empty());
}
