//! State-machine tests: every call takes an explicit `now`, so time is a
//! number the test moves forward; nothing sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;

use crate::records;
use crate::*;

mod offsets;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn coordinator(delay: i64) -> GroupCoordinator {
    let c = GroupCoordinator::new(GroupConfig {
        initial_rebalance_delay_ms: delay,
        ..GroupConfig::default()
    });
    c.finish_loading(0);
    c
}

fn join_req(member: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
        ..JoinRequest::default()
    }
}

fn done(outcome: JoinOutcome) -> JoinResponse {
    match outcome {
        JoinOutcome::Done(r) => r,
        JoinOutcome::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn waiting(outcome: JoinOutcome) -> tokio::sync::oneshot::Receiver<JoinResponse> {
    match outcome {
        JoinOutcome::Wait(rx) => rx,
        JoinOutcome::Done(r) => panic!("expected to wait, got {r:?}"),
    }
}

fn sync_done(outcome: SyncOutcome) -> SyncResponse {
    match outcome {
        SyncOutcome::Done(r) => r,
        SyncOutcome::Wait(mut rx) => rx.try_recv().expect("sync answered"),
    }
}

/// Joins a new member through MEMBER_ID_REQUIRED; returns its id and the
/// pending join.
fn join_new(
    c: &GroupCoordinator,
    protocols: &[&str],
    now: i64,
) -> (String, tokio::sync::oneshot::Receiver<JoinResponse>) {
    let first = done(c.join(join_req("", protocols), now));
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    assert!(first.member_id.starts_with("client-"));
    let rx = waiting(c.join(join_req(&first.member_id, protocols), now));
    (first.member_id, rx)
}

fn hb(c: &GroupCoordinator, member: &str, generation: i32, now: i64) -> Result<(), GroupError> {
    c.heartbeat(
        &HeartbeatRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
        },
        now,
    )
}

fn sync(
    c: &GroupCoordinator,
    member: &str,
    generation: i32,
    assign: &[(&str, &str)],
    now: i64,
) -> SyncOutcome {
    c.sync(
        SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            assignments: assign
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
            ..SyncRequest::default()
        },
        now,
    )
}

fn state(c: &GroupCoordinator) -> GroupState {
    c.describe("g")
        .unwrap()
        .map_or(GroupState::Dead, |s| s.state)
}

/// One member joined, synced and stable at generation 1.
fn stable_single(c: &GroupCoordinator) -> String {
    let (id, mut rx) = join_new(c, &["range"], 0);
    c.tick(c.config().initial_rebalance_delay_ms);
    let joined = rx.try_recv().unwrap();
    assert_eq!(joined.generation_id, 1);
    let r = sync_done(sync(c, &id, 1, &[(&id, "A")], 1));
    assert_eq!(r.assignment, Bytes::from("A"));
    id
}

#[test]
fn refuses_requests_until_loaded() {
    let c = GroupCoordinator::new(GroupConfig::default());
    let r = done(c.join(join_req("", &["range"]), 0));
    assert_eq!(r.error, Some(GroupError::CoordinatorLoadInProgress));
    assert_eq!(
        hb(&c, "m", 1, 0),
        Err(GroupError::CoordinatorLoadInProgress)
    );
    assert!(c.fetch_offsets("g", None).is_err());
    c.finish_loading(0);
    assert!(c.fetch_offsets("g", None).is_ok());
}

#[test]
fn first_join_without_id_gets_member_id_required() {
    let c = coordinator(0);
    let r = done(c.join(join_req("", &["range"]), 0));
    assert_eq!(r.error, Some(GroupError::MemberIdRequired));
    // An id the broker never handed out is unknown.
    let r = done(c.join(join_req("made-up", &["range"]), 0));
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn join_before_v4_gets_an_id_at_once() {
    let c = coordinator(0);
    let mut req = join_req("", &["range"]);
    req.require_known_member_id = false;
    let mut rx = waiting(c.join(req, 0));
    let r = rx.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(state(&c), GroupState::CompletingRebalance);
}

#[test]
fn initial_delay_holds_the_first_rebalance_and_extends_for_latecomers() {
    let c = coordinator(3_000);
    let (a, mut rx_a) = join_new(&c, &["range"], 0);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    c.tick(2_000);
    assert!(rx_a.try_recv().is_err(), "still inside the delay");
    let (b, mut rx_b) = join_new(&c, &["range"], 2_000);
    c.tick(4_000);
    assert!(rx_a.try_recv().is_err(), "delay extended by the new member");
    c.tick(5_000);
    let ra = rx_a.try_recv().unwrap();
    let rb = rx_b.try_recv().unwrap();
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    assert_eq!(ra.leader, a);
    assert_eq!(ra.members.len(), 2, "leader sees every member");
    assert!(rb.members.is_empty(), "followers see none");
    assert_eq!(rb.member_id, b);
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    assert_eq!(state(&c), GroupState::CompletingRebalance);
}

#[test]
fn sync_waits_for_the_leader_then_everyone_is_stable() {
    let c = coordinator(0);
    let (a, _) = join_new(&c, &["range"], 0);
    // a is alone: the join completed; b joining starts a new rebalance.
    let (b, mut rx_b) = join_new(&c, &["range"], 1);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(hb(&c, &a, 1, 2), Err(GroupError::RebalanceInProgress));
    let mut rx_a = waiting(c.join(join_req(&a, &["range"]), 3));
    let ra = rx_a.try_recv().unwrap();
    let rb = rx_b.try_recv().unwrap();
    assert_eq!(ra.generation_id, 2);
    assert_eq!(rb.generation_id, 2);
    let SyncOutcome::Wait(mut follower) = sync(&c, &b, 2, &[], 4) else {
        panic!("follower waits for the leader");
    };
    assert!(follower.try_recv().is_err());
    let leader = sync_done(sync(&c, &a, 2, &[(&a, "pa"), (&b, "pb")], 5));
    assert_eq!(leader.assignment, Bytes::from("pa"));
    assert_eq!(follower.try_recv().unwrap().assignment, Bytes::from("pb"));
    assert_eq!(state(&c), GroupState::Stable);
    assert_eq!(hb(&c, &b, 2, 6), Ok(()));
    // Group metadata was produced for __consumer_offsets.
    let recs = c.take_records();
    let last = recs.last().unwrap();
    let value = records::decode_group_value(last.value.as_ref().unwrap()).unwrap();
    assert_eq!(value.generation, 2);
    assert_eq!(value.members.len(), 2);
}

#[test]
fn heartbeat_errors_follow_kafka() {
    let c = coordinator(0);
    assert_eq!(hb(&c, "x", 1, 0), Err(GroupError::UnknownMemberId));
    let a = stable_single(&c);
    assert_eq!(hb(&c, &a, 7, 2), Err(GroupError::IllegalGeneration));
    assert_eq!(hb(&c, "stranger", 1, 2), Err(GroupError::UnknownMemberId));
    assert_eq!(hb(&c, &a, 1, 2), Ok(()));
}

#[test]
fn sync_errors_follow_kafka() {
    let c = coordinator(0);
    let a = stable_single(&c);
    let r = sync_done(sync(&c, &a, 9, &[], 2));
    assert_eq!(r.error, Some(GroupError::IllegalGeneration));
    let r = sync_done(sync(&c, "nobody", 1, &[], 2));
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
    // Stable: a repeated sync returns the assignment.
    let r = sync_done(sync(&c, &a, 1, &[], 2));
    assert_eq!(r.assignment, Bytes::from("A"));
    let mut bad = SyncRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: a.clone(),
        protocol_name: Some("roundrobin".into()),
        ..SyncRequest::default()
    };
    assert_eq!(
        sync_done(c.sync(bad.clone(), 2)).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    bad.protocol_name = None;
    // A new member starts a rebalance: sync now says so.
    let _ = join_new(&c, &["range"], 3);
    assert_eq!(
        sync_done(c.sync(bad, 4)).error,
        Some(GroupError::RebalanceInProgress)
    );
}

#[test]
fn session_expiry_removes_a_silent_member_and_rebalances_the_rest() {
    let c = coordinator(0);
    let (a, _) = join_new(&c, &["range"], 0);
    let (b, mut rx_b) = join_new(&c, &["range"], 0);
    let mut rx_a = waiting(c.join(join_req(&a, &["range"]), 0));
    let generation = rx_a.try_recv().unwrap().generation_id;
    rx_b.try_recv().unwrap();
    sync_done(sync(&c, &a, generation, &[], 1));
    assert_eq!(state(&c), GroupState::Stable);
    // a keeps heartbeating, b goes silent.
    for t in (2_000..=10_000).step_by(2_000) {
        assert_eq!(hb(&c, &a, generation, t), Ok(()));
        c.tick(t);
    }
    c.tick(11_002);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(
        hb(&c, &b, generation, 11_003),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        hb(&c, &a, generation, 11_003),
        Err(GroupError::RebalanceInProgress)
    );
    let mut rx = waiting(c.join(join_req(&a, &["range"]), 11_004));
    let r = rx.try_recv().unwrap();
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let c = coordinator(0);
    let a = stable_single(&c);
    let (_b, mut rx_b) = join_new(&c, &["range"], 10);
    // a heartbeats (learning of the rebalance) but never rejoins.
    assert_eq!(hb(&c, &a, 1, 5_000), Err(GroupError::RebalanceInProgress));
    c.tick(5_000 + i64::from(REBALANCE));
    let r = rx_b.try_recv().unwrap();
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1, "only b is left");
    assert_eq!(hb(&c, &a, 2, 40_000), Err(GroupError::UnknownMemberId));
}

#[test]
fn sync_timeout_after_join_rebalances_without_the_silent_members() {
    let c = coordinator(0);
    let (a, mut rx) = join_new(&c, &["range"], 0);
    assert_eq!(rx.try_recv().unwrap().generation_id, 1);
    c.tick(i64::from(REBALANCE) + 1);
    assert_eq!(
        hb(&c, &a, 1, i64::from(REBALANCE) + 2),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(state(&c), GroupState::Empty);
}

#[test]
fn protocol_chosen_is_one_every_member_supports_by_vote() {
    let c = coordinator(0);
    let (a, _) = join_new(&c, &["cooperative-sticky", "range"], 0);
    let (b, mut rx_b) = join_new(&c, &["range", "roundrobin"], 0);
    let mut rx_a = waiting(c.join(join_req(&a, &["cooperative-sticky", "range"]), 0));
    let ra = rx_a.try_recv().unwrap();
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    assert_eq!(
        rx_b.try_recv().unwrap().protocol_name.as_deref(),
        Some("range")
    );
    let leader_view: Vec<_> = ra.members.iter().map(|m| m.metadata.clone()).collect();
    assert!(leader_view.iter().all(|m| m == &Bytes::from("meta-range")));
    let _ = b;
    // A member with no protocol in common is refused.
    let r = done(c.join(join_req("", &["roundrobin"]), 1));
    assert_eq!(r.error, Some(GroupError::InconsistentGroupProtocol));
}

#[test]
fn leave_group_rebalances_and_last_leave_empties_the_group() {
    let c = coordinator(0);
    let a = stable_single(&c);
    let leave = LeaveMember {
        member_id: a.clone(),
        group_instance_id: None,
    };
    let unknown = LeaveMember {
        member_id: "ghost".into(),
        group_instance_id: None,
    };
    let results = c.leave("g", &[leave, unknown], 5).unwrap();
    assert_eq!(results, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(state(&c), GroupState::Empty);
    let summary = c.describe("g").unwrap().unwrap();
    assert!(summary.members.is_empty());
    // Generation moved on; the group metadata record says so.
    let recs = c.take_records();
    let v = records::decode_group_value(recs.last().unwrap().value.as_ref().unwrap()).unwrap();
    assert_eq!(v.generation, 2);
}

fn static_req(member: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.into()),
        ..join_req(member, &["range"])
    }
}

#[test]
fn static_member_rejoins_stable_group_without_rebalance_and_old_id_is_fenced() {
    let c = coordinator(0);
    let mut rx = waiting(c.join(static_req("", "i1"), 0));
    let first = rx.try_recv().unwrap();
    assert!(first.member_id.starts_with("i1-"));
    let old = first.member_id.clone();
    sync_done(sync(&c, &old, 1, &[(&old, "mine")], 1));
    assert_eq!(state(&c), GroupState::Stable);
    // The process restarts and joins again with only its instance id.
    let again = done(c.join(static_req("", "i1"), 2));
    assert_eq!(again.error, None);
    assert_eq!(again.generation_id, 1, "no rebalance");
    assert_ne!(again.member_id, old);
    assert!(again.skip_assignment, "the static leader must not reassign");
    assert_eq!(state(&c), GroupState::Stable);
    let r = sync_done(sync(&c, &again.member_id, 1, &[], 3));
    assert_eq!(r.assignment, Bytes::from("mine"));
    // The old incarnation is fenced.
    let hb_old = c.heartbeat(
        &HeartbeatRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: old.clone(),
            group_instance_id: Some("i1".into()),
        },
        4,
    );
    assert_eq!(hb_old, Err(GroupError::FencedInstanceId));
    let r = done(c.join(static_req(&old, "i1"), 4));
    assert_eq!(r.error, Some(GroupError::FencedInstanceId));
    let commit = CommitRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: old,
        group_instance_id: Some("i1".into()),
        entries: vec![],
    };
    assert_eq!(c.commit(&commit, 5), Err(GroupError::FencedInstanceId));
}

#[test]
fn static_member_leaves_by_instance_id() {
    let c = coordinator(0);
    let mut rx = waiting(c.join(static_req("", "i1"), 0));
    let id = rx.try_recv().unwrap().member_id;
    let wrong = LeaveMember {
        member_id: "other".into(),
        group_instance_id: Some("i1".into()),
    };
    assert_eq!(
        c.leave("g", &[wrong], 1).unwrap(),
        vec![Err(GroupError::FencedInstanceId)]
    );
    let right = LeaveMember {
        member_id: String::new(),
        group_instance_id: Some("i1".into()),
    };
    assert_eq!(c.leave("g", &[right], 1).unwrap(), vec![Ok(())]);
    assert_eq!(hb(&c, &id, 1, 2), Err(GroupError::UnknownMemberId));
}

#[test]
fn join_validates_group_id_and_session_timeout() {
    let c = coordinator(0);
    let mut req = join_req("", &["range"]);
    req.group_id = String::new();
    assert_eq!(done(c.join(req, 0)).error, Some(GroupError::InvalidGroupId));
    let mut req = join_req("", &["range"]);
    req.session_timeout_ms = 1_000;
    assert_eq!(
        done(c.join(req, 0)).error,
        Some(GroupError::InvalidSessionTimeout)
    );
    let mut req = join_req("", &["range"]);
    req.protocol_type = String::new();
    assert_eq!(
        done(c.join(req, 0)).error,
        Some(GroupError::InconsistentGroupProtocol)
    );
}

#[test]
fn unused_member_ids_expire_after_the_session_timeout() {
    let c = coordinator(0);
    let first = done(c.join(join_req("", &["range"]), 0));
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    c.tick(i64::from(SESSION) + 1);
    let late = done(c.join(
        join_req(&first.member_id, &["range"]),
        i64::from(SESSION) + 2,
    ));
    assert_eq!(late.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn retried_join_during_completing_rebalance_gets_the_same_generation() {
    let c = coordinator(0);
    let (a, mut rx) = join_new(&c, &["range"], 0);
    let first = rx.try_recv().unwrap();
    assert_eq!(state(&c), GroupState::CompletingRebalance);
    let again = done(c.join(join_req(&a, &["range"]), 1));
    assert_eq!(again.generation_id, first.generation_id);
    assert_eq!(again.members.len(), 1, "still the leader's view");
    assert_eq!(state(&c), GroupState::CompletingRebalance);
}

#[test]
fn unloading_forgets_the_groups_of_partitions_led_elsewhere() {
    let c = coordinator(0);
    done(c.join(join_req("", &["range"]), 0));
    let mut other = join_req("", &["range"]);
    other.group_id = "other".into();
    done(c.join(other, 0));
    assert_eq!(c.unload(|g| g == "g"), 1);
    assert_eq!(c.unload(|g| g == "g"), 0);
    let ids: Vec<String> = c.lock().groups.keys().cloned().collect();
    assert_eq!(ids, vec!["other".to_string()]);
}
