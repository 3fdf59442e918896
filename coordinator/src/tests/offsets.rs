//! Offsets: commits, fetches, deletions, retention and replay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;

use super::*;
use crate::records::{self, RecordKey};

fn entry(topic: &str, partition: i32, offset: i64) -> OffsetCommitEntry {
    OffsetCommitEntry {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: Some(format!("m{offset}")),
    }
}

#[test]
fn simple_consumer_commits_and_fetches_without_membership() {
    let c = coordinator(0);
    let req = CommitRequest {
        group_id: "simple".into(),
        generation_id: -1,
        entries: vec![entry("t", 0, 5), entry("t", 1, 7)],
        ..CommitRequest::default()
    };
    let recs = c.commit(&req, 100).unwrap();
    assert_eq!(recs.len(), 2);
    let key = records::decode_key(&recs[0].key).unwrap();
    assert_eq!(
        key,
        RecordKey::Offset {
            group: "simple".into(),
            topic: "t".into(),
            partition: 0
        }
    );
    let fetched = c
        .fetch_offsets("simple", Some(&[("t".to_string(), vec![0, 1, 2])]))
        .unwrap();
    let parts = &fetched[0].1;
    assert_eq!(parts[0].1.as_ref().unwrap().offset, 5);
    assert_eq!(parts[1].1.as_ref().unwrap().metadata, "m7");
    assert!(parts[2].1.is_none());
    let all = c.fetch_offsets("simple", None).unwrap();
    assert_eq!(all[0].1.len(), 2);
    let listed = c.list_groups(&[]).unwrap();
    assert_eq!(listed[0].2, GroupState::Empty);
}

#[test]
fn member_commits_are_checked_against_generation_and_state() {
    let c = coordinator(0);
    let a = stable_single(&c);
    let mut req = CommitRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: a.clone(),
        entries: vec![entry("t", 0, 1)],
        ..CommitRequest::default()
    };
    assert!(c.commit(&req, 2).is_ok());
    req.generation_id = 3;
    assert_eq!(c.commit(&req, 2), Err(GroupError::IllegalGeneration));
    req.generation_id = -1;
    req.member_id = String::new();
    assert_eq!(
        c.commit(&req, 2),
        Err(GroupError::UnknownMemberId),
        "group has members"
    );
    // During CompletingRebalance commits wait for the assignment.
    let (_, _) = join_new(&c, &["range"], 3);
    let mut rx = waiting(c.join(join_req(&a, &["range"]), 3));
    let generation = rx.try_recv().unwrap().generation_id;
    let req = CommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: a,
        entries: vec![entry("t", 0, 2)],
        ..CommitRequest::default()
    };
    assert_eq!(c.commit(&req, 4), Err(GroupError::RebalanceInProgress));
}

#[test]
fn delete_group_only_when_empty_and_writes_tombstones() {
    let c = coordinator(0);
    let a = stable_single(&c);
    assert_eq!(c.delete_group("g", 2), Err(GroupError::NonEmptyGroup));
    assert_eq!(c.delete_group("nope", 2), Err(GroupError::GroupIdNotFound));
    let req = CommitRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: a.clone(),
        entries: vec![entry("t", 0, 1)],
        ..CommitRequest::default()
    };
    c.commit(&req, 2).unwrap();
    c.leave(
        "g",
        &[LeaveMember {
            member_id: a,
            group_instance_id: None,
        }],
        3,
    )
    .unwrap();
    let tombstones = c.delete_group("g", 4).unwrap();
    assert_eq!(tombstones.len(), 2);
    assert!(tombstones.iter().all(|r| r.value.is_none()));
    assert!(c.describe("g").unwrap().is_none());
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    let c = coordinator(0);
    // ConsumerProtocolSubscription v0 for topic "t".
    let sub = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]);
    let mut req = join_req("", &["range"]);
    req.require_known_member_id = false;
    req.protocols = vec![("range".into(), sub)];
    let mut rx = waiting(c.join(req, 0));
    let a = rx.try_recv().unwrap().member_id;
    sync_done(sync(&c, &a, 1, &[], 0));
    let commit = CommitRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: a,
        entries: vec![entry("t", 0, 1), entry("u", 0, 1)],
        ..CommitRequest::default()
    };
    c.commit(&commit, 1).unwrap();
    let (results, tombstones) = c
        .delete_offsets("g", &[("t".into(), 0), ("u".into(), 0)])
        .unwrap();
    assert_eq!(
        results,
        vec![Err(GroupError::GroupSubscribedToTopic), Ok(())]
    );
    assert_eq!(tombstones.len(), 1);
    assert_eq!(
        c.delete_offsets("zz", &[]).unwrap_err(),
        GroupError::GroupIdNotFound
    );
}

#[test]
fn list_groups_filters_by_state() {
    let c = coordinator(0);
    stable_single(&c);
    let simple = CommitRequest {
        group_id: "s".into(),
        generation_id: -1,
        entries: vec![entry("t", 0, 1)],
        ..CommitRequest::default()
    };
    c.commit(&simple, 1).unwrap();
    let stable = c.list_groups(&["stable".into()]).unwrap();
    assert_eq!(stable.len(), 1);
    assert_eq!(stable[0].0, "g");
    assert_eq!(stable[0].1, "consumer");
    let empty = c.list_groups(&["Empty".into()]).unwrap();
    assert_eq!(empty[0].0, "s");
    assert_eq!(c.list_groups(&[]).unwrap().len(), 2);
}

#[test]
fn offsets_of_empty_groups_expire_with_tombstones() {
    let c = GroupCoordinator::new(GroupConfig {
        offsets_retention_ms: 1_000,
        ..GroupConfig::default()
    });
    c.finish_loading(0);
    let simple = CommitRequest {
        group_id: "s".into(),
        generation_id: -1,
        entries: vec![entry("t", 0, 1)],
        ..CommitRequest::default()
    };
    c.commit(&simple, 100).unwrap();
    c.tick(1_000);
    assert_eq!(c.fetch_offsets("s", None).unwrap().len(), 1);
    c.tick(1_101);
    assert!(c.fetch_offsets("s", None).unwrap().is_empty());
    let recs = c.take_records();
    assert_eq!(recs.len(), 2, "offset tombstone and group tombstone");
    assert!(recs.iter().all(|r| r.value.is_none()));
    assert!(c.list_groups(&[]).unwrap().is_empty());
}

#[test]
fn replay_rebuilds_offsets_and_members() {
    let c = coordinator(0);
    let a = stable_single(&c);
    let commit = CommitRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: a.clone(),
        entries: vec![entry("t", 0, 42), entry("t", 1, 9)],
        ..CommitRequest::default()
    };
    let mut log = c.take_records();
    log.extend(c.commit(&commit, 5).unwrap());
    // Then partition 1's offset is deleted.
    log.push(OffsetsRecord {
        group: "g".into(),
        key: records::encode_key(&RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
        }),
        value: None,
    });
    let restored = GroupCoordinator::new(GroupConfig::default());
    for r in &log {
        restored.replay(&r.key, r.value.as_deref(), 10);
    }
    restored.finish_loading(10);
    let offsets = restored.fetch_offsets("g", None).unwrap();
    assert_eq!(offsets[0].1.len(), 1);
    assert_eq!(offsets[0].1[0].1.as_ref().unwrap().offset, 42);
    let summary = restored.describe("g").unwrap().unwrap();
    assert_eq!(summary.state, GroupState::Stable);
    assert_eq!(summary.members[0].member_id, a);
    assert_eq!(summary.members[0].assignment, Bytes::from("A"));
    assert_eq!(hb(&restored, &a, 1, 11), Ok(()));
}

#[test]
fn coordinator_partition_matches_kafka_hashing() {
    // Java: "app".hashCode() = 96801; "myFirstApp".hashCode() = -89065699
    // (negative: abs before the modulo); "groupé" has a non-ASCII unit.
    assert_eq!(partition_for("app", 50), 1);
    assert_eq!(partition_for("myFirstApp", 50), 49);
    assert_eq!(partition_for("groupé", 50), 6);
    assert_eq!(partition_for("", 50), 0);
    assert_eq!(partition_for("x", 1), 0);
}
