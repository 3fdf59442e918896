//! The coordinator's consumer-protocol calls without a network: the group
//! size cap, session expiry and revoke deadlines by tick, and a topic's new
//! partitions bumping the group epoch.
#![allow(clippy::unwrap_used)]

use uuid::Uuid;

use super::*;
use crate::{GroupConfig, GroupCoordinator, GroupError};

fn coordinator(cfg: GroupConfig) -> GroupCoordinator {
    let c = GroupCoordinator::new(cfg);
    c.finish_loading(0);
    c
}

fn topics(partitions: i32) -> Topics {
    Topics::from([(
        "t".to_string(),
        TopicMeta {
            id: Uuid::from_u128(9),
            partitions,
        },
    )])
}

fn join(member: &str) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        version: 1,
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 1_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Vec::new()),
        ..ConsumerHeartbeat::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Vec<(Uuid, Vec<i32>)>) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        version: 1,
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned),
        ..ConsumerHeartbeat::default()
    }
}

fn partitions(answer: &ConsumerHeartbeatAnswer) -> usize {
    answer
        .assignment
        .as_ref()
        .map_or(0, |a| a.iter().map(|(_, ps)| ps.len()).sum())
}

#[test]
fn a_full_group_refuses_new_members() {
    let c = coordinator(GroupConfig {
        consumer_max_size: 1,
        ..GroupConfig::default()
    });
    assert_eq!(c.consumer_heartbeat(join("a"), &topics(2), 0).error, None);
    let refused = c.consumer_heartbeat(join("b"), &topics(2), 0);
    assert_eq!(refused.error, Some(GroupError::GroupMaxSizeReached));
}

#[test]
fn an_expired_session_frees_the_members_partitions() {
    let c = coordinator(GroupConfig {
        consumer_session_timeout_ms: 1_000,
        ..GroupConfig::default()
    });
    let a = c.consumer_heartbeat(join("a"), &topics(4), 0);
    let b = c.consumer_heartbeat(join("b"), &topics(4), 0);
    assert_eq!(partitions(&a), 4);
    assert_eq!(partitions(&b), 0);
    // b keeps heartbeating (without learning anything new), a goes silent.
    c.consumer_heartbeat(beat("b", b.member_epoch, vec![]), &topics(4), 900);
    c.tick(1_500);
    let b = c.consumer_heartbeat(beat("b", b.member_epoch, vec![]), &topics(4), 1_600);
    assert_eq!(b.error, None);
    assert_eq!(partitions(&b), 4);
    let a = c.consumer_heartbeat(beat("a", a.member_epoch, vec![]), &topics(4), 1_700);
    assert_eq!(a.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let c = coordinator(GroupConfig::default());
    let a = c.consumer_heartbeat(join("a"), &topics(2), 0);
    let owned = a.assignment.clone().unwrap();
    c.consumer_heartbeat(join("b"), &topics(2), 0);
    // a is asked to revoke one partition and keeps reporting both.
    let told = c.consumer_heartbeat(beat("a", a.member_epoch, owned.clone()), &topics(2), 10);
    assert_eq!(partitions(&told), 1);
    c.consumer_heartbeat(beat("a", a.member_epoch, owned.clone()), &topics(2), 500);
    // Past its 1 s rebalance timeout, the next tick removes it.
    c.tick(1_200);
    let late = c.consumer_heartbeat(beat("a", a.member_epoch, owned), &topics(2), 1_300);
    assert_eq!(late.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn new_partitions_of_a_subscribed_topic_bump_the_epoch() {
    let c = coordinator(GroupConfig::default());
    let a = c.consumer_heartbeat(join("a"), &topics(2), 0);
    let owned = a.assignment.clone().unwrap();
    let grown = c.consumer_heartbeat(beat("a", a.member_epoch, owned), &topics(3), 10);
    assert!(grown.member_epoch > a.member_epoch);
    assert_eq!(partitions(&grown), 3);
    let described = c.consumer_describe("g").unwrap();
    assert_eq!(described.state, ConsumerGroupState::Stable);
    assert_eq!(described.epoch, grown.member_epoch);
}
