//! Consumer-protocol groups (KIP-848) over TCP against the real binary:
//! ConsumerGroupHeartbeat joins, assignments by the uniform and range
//! assignors, revocation before reassignment, leaving, session expiry,
//! epoch fencing, regex subscriptions, offsets at the member epoch, and
//! ConsumerGroupDescribe/ListGroups/DescribeGroups of such groups.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{create_topic, Client, TestBroker};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

type Parts = BTreeMap<Uuid, BTreeSet<i32>>;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn start() -> TestBroker {
    TestBroker::start_with(&[
        "--group-consumer-session-timeout-ms",
        "3000",
        "--group-consumer-heartbeat-interval-ms",
        "500",
    ])
}

/// Topic name -> id, from Metadata v12.
fn topic_ids(c: &mut Client) -> BTreeMap<String, Uuid> {
    let req = MetadataRequest::default();
    let mut req = req;
    req.topics = None;
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &req);
    resp.topics
        .into_iter()
        .map(|t| (t.name.unwrap().to_string(), t.topic_id))
        .collect()
}

/// A member as a test drives it: what it was last told.
struct Member {
    id: String,
    epoch: i32,
    owned: Parts,
}

fn join_request(group: &str, member: &str) -> ConsumerGroupHeartbeatRequest {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s(member);
    req.member_epoch = 0;
    req.rebalance_timeout_ms = 10_000;
    req.topic_partitions = Some(Vec::new());
    req
}

fn heartbeat(
    c: &mut Client,
    req: &ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    c.call(ApiKey::ConsumerGroupHeartbeat, 1, req)
}

fn assignment(resp: &ConsumerGroupHeartbeatResponse) -> Option<Parts> {
    resp.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .map(|tp| (tp.topic_id, tp.partitions.iter().copied().collect()))
            .collect()
    })
}

fn owned_field(p: &Parts) -> Vec<TopicPartitions> {
    p.iter()
        .map(|(t, ps)| {
            let mut tp = TopicPartitions::default();
            tp.topic_id = *t;
            tp.partitions = ps.iter().copied().collect();
            tp
        })
        .collect()
}

/// Joins with the topic names (or regex) and assignor given.
fn join(
    c: &mut Client,
    group: &str,
    member: &str,
    topics: &[&str],
    regex: Option<&str>,
    assignor: Option<&str>,
) -> Member {
    let mut req = join_request(group, member);
    if regex.is_none() {
        req.subscribed_topic_names = Some(topics.iter().map(|t| TopicName(s(t))).collect());
    }
    req.subscribed_topic_regex = regex.map(s);
    req.server_assignor = assignor.map(s);
    let resp = heartbeat(c, &req);
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    assert_eq!(resp.member_id.as_deref(), Some(member));
    assert!(resp.member_epoch > 0);
    assert_eq!(resp.heartbeat_interval_ms, 500);
    Member {
        id: member.to_string(),
        epoch: resp.member_epoch,
        owned: assignment(&resp).expect("a join is answered with an assignment"),
    }
}

/// One heartbeat reporting what the member owns; applies the answer as a
/// client would (it revokes and takes at once).
fn beat(c: &mut Client, group: &str, m: &mut Member) -> ConsumerGroupHeartbeatResponse {
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s(&m.id);
    req.member_epoch = m.epoch;
    req.rebalance_timeout_ms = -1;
    req.topic_partitions = Some(owned_field(&m.owned));
    let resp = heartbeat(c, &req);
    if resp.error_code == 0 {
        m.epoch = resp.member_epoch;
        if let Some(a) = assignment(&resp) {
            m.owned = a;
        }
    }
    resp
}

fn count(p: &Parts) -> usize {
    p.values().map(BTreeSet::len).sum()
}

/// Heartbeats every member in turn until the group settles (no member's
/// answer changes anything for two rounds); bounded.
fn settle(c: &mut Client, group: &str, members: &mut [Member]) {
    let mut quiet = 0;
    for _ in 0..30 {
        let before: Vec<(i32, Parts)> =
            members.iter().map(|m| (m.epoch, m.owned.clone())).collect();
        for m in members.iter_mut() {
            let resp = beat(c, group, m);
            assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
        }
        let after: Vec<(i32, Parts)> = members.iter().map(|m| (m.epoch, m.owned.clone())).collect();
        quiet = if before == after { quiet + 1 } else { 0 };
        if quiet >= 2 {
            return;
        }
    }
    panic!("the group did not settle");
}

fn assert_disjoint_cover(members: &[Member], expected: usize) {
    let mut seen = BTreeSet::new();
    for m in members {
        for (t, ps) in &m.owned {
            for p in ps {
                assert!(seen.insert((*t, *p)), "{t}-{p} owned twice");
            }
        }
    }
    assert_eq!(seen.len(), expected);
}

#[test]
fn uniform_assignment_revokes_before_reassigning() {
    let broker = start();
    let mut c = broker.client();
    assert_eq!(create_topic(&mut c, "cg-uni", 6).topics[0].error_code, 0);
    let mut a = join(&mut c, "g-uni", "member-a", &["cg-uni"], None, None);
    assert_eq!(count(&a.owned), 6);
    // Unchanged: no assignment in the answer.
    let resp = beat(&mut c, "g-uni", &mut a);
    assert!(resp.assignment.is_none());
    let a_epoch = a.epoch;

    // b joins: its target is half, but a still holds everything.
    let mut b = join(&mut c, "g-uni", "member-b", &["cg-uni"], None, None);
    assert!(b.epoch > a_epoch);
    assert_eq!(count(&b.owned), 0, "b got partitions a still holds");

    // a is told to keep three, at its old epoch, without reporting yet.
    let mut req = ConsumerGroupHeartbeatRequest::default();
    req.group_id = GroupId(s("g-uni"));
    req.member_id = s("member-a");
    req.member_epoch = a.epoch;
    req.rebalance_timeout_ms = -1;
    let resp = heartbeat(&mut c, &req);
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        resp.member_epoch, a_epoch,
        "a revokes before its epoch moves"
    );
    let kept = assignment(&resp).unwrap();
    assert_eq!(count(&kept), 3);
    // b still gets nothing: a has not reported the revocation.
    beat(&mut c, "g-uni", &mut b);
    assert_eq!(count(&b.owned), 0);
    // a reports it released the other three, and moves to the new epoch.
    a.owned = kept;
    beat(&mut c, "g-uni", &mut a);
    assert_eq!(a.epoch, b.epoch);
    // Now b takes them.
    beat(&mut c, "g-uni", &mut b);
    assert_eq!(count(&b.owned), 3);
    let mut members = vec![a, b];
    settle(&mut c, "g-uni", &mut members);
    assert_disjoint_cover(&members, 6);

    // A third member: 2 each.
    members.push(join(&mut c, "g-uni", "member-c", &["cg-uni"], None, None));
    settle(&mut c, "g-uni", &mut members);
    assert_disjoint_cover(&members, 6);
    assert!(members.iter().all(|m| count(&m.owned) == 2));
}

#[test]
fn range_assignor_lines_up_co_partitioned_topics() {
    let broker = start();
    let mut c = broker.client();
    for t in ["cg-r1", "cg-r2"] {
        assert_eq!(create_topic(&mut c, t, 3).topics[0].error_code, 0);
    }
    let ids = topic_ids(&mut c);
    let topics = ["cg-r1", "cg-r2"];
    let mut members: Vec<Member> = ["m1", "m2", "m3"]
        .iter()
        .map(|id| join(&mut c, "g-range", id, &topics, None, Some("range")))
        .collect();
    settle(&mut c, "g-range", &mut members);
    assert_disjoint_cover(&members, 6);
    for (i, m) in members.iter().enumerate() {
        let i = i32::try_from(i).unwrap();
        for t in topics {
            assert_eq!(m.owned[&ids[t]], BTreeSet::from([i]), "{} on {t}", m.id);
        }
    }
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s("g-range"))];
    let resp: ConsumerGroupDescribeResponse = c.call(ApiKey::ConsumerGroupDescribe, 1, &req);
    assert_eq!(resp.groups[0].assignor_name.as_str(), "range");
}

#[test]
fn unsupported_assignor_and_malformed_joins_are_refused() {
    let broker = start();
    let mut c = broker.client();
    let mut req = join_request("g-bad", "m");
    req.subscribed_topic_names = Some(vec![TopicName(s("x"))]);
    req.server_assignor = Some(s("sticky-magic"));
    let resp = heartbeat(&mut c, &req);
    assert_eq!(resp.error_code, ResponseError::UnsupportedAssignor.code());

    // No subscription, no rebalance timeout, owned partitions on a join,
    // an empty member id at v1: INVALID_REQUEST.
    let mut no_sub = join_request("g-bad", "m");
    no_sub.subscribed_topic_names = None;
    let mut no_timeout = join_request("g-bad", "m");
    no_timeout.subscribed_topic_names = Some(vec![]);
    no_timeout.rebalance_timeout_ms = -1;
    let mut owned = join_request("g-bad", "m");
    owned.subscribed_topic_names = Some(vec![]);
    owned.topic_partitions = Some(owned_field(&BTreeMap::from([(
        Uuid::from_u128(7),
        BTreeSet::from([0]),
    )])));
    let mut no_id = join_request("g-bad", "");
    no_id.subscribed_topic_names = Some(vec![]);
    for req in [no_sub, no_timeout, owned, no_id] {
        let resp = heartbeat(&mut c, &req);
        assert_eq!(resp.error_code, ResponseError::InvalidRequest.code());
        assert!(resp.error_message.is_some());
    }
    let mut bad_regex = join_request("g-bad", "m");
    bad_regex.subscribed_topic_regex = Some(s("orders-("));
    let resp = heartbeat(&mut c, &bad_regex);
    assert_eq!(
        resp.error_code,
        ResponseError::InvalidRegularExpression.code()
    );

    // v0: the broker chooses the member id.
    let mut v0 = join_request("g-v0", "");
    v0.subscribed_topic_names = Some(vec![]);
    let resp: ConsumerGroupHeartbeatResponse = c.call(ApiKey::ConsumerGroupHeartbeat, 0, &v0);
    assert_eq!(resp.error_code, 0);
    assert!(!resp.member_id.unwrap().is_empty());
}

#[test]
fn stale_and_future_epochs_are_fenced_and_unknown_members_refused() {
    let broker = start();
    let mut c = broker.client();
    create_topic(&mut c, "cg-fence", 2);
    let a = join(&mut c, "g-fence", "a", &["cg-fence"], None, None);
    let first = a.epoch;
    let mut ahead = ConsumerGroupHeartbeatRequest::default();
    ahead.group_id = GroupId(s("g-fence"));
    ahead.member_id = s("a");
    ahead.member_epoch = first + 5;
    ahead.rebalance_timeout_ms = -1;
    assert_eq!(
        heartbeat(&mut c, &ahead).error_code,
        ResponseError::FencedMemberEpoch.code()
    );
    // Move a to a later epoch (b joins, a settles), then use the old one
    // while claiming partitions a no longer has.
    let b = join(&mut c, "g-fence", "b", &["cg-fence"], None, None);
    let mut members = vec![a, b];
    settle(&mut c, "g-fence", &mut members);
    assert!(members[0].epoch > first);
    let mut stale = ahead.clone();
    stale.member_epoch = first;
    stale.topic_partitions = Some(owned_field(&BTreeMap::from([(
        *members[1].owned.keys().next().unwrap(),
        members[1].owned.values().next().unwrap().clone(),
    )])));
    assert_eq!(
        heartbeat(&mut c, &stale).error_code,
        ResponseError::FencedMemberEpoch.code()
    );
    let mut unknown = ahead.clone();
    unknown.member_id = s("nobody");
    unknown.member_epoch = 1;
    assert_eq!(
        heartbeat(&mut c, &unknown).error_code,
        ResponseError::UnknownMemberId.code()
    );
    // A fenced member rejoins with epoch 0 and its own id.
    let again = join(&mut c, "g-fence", "a", &["cg-fence"], None, None);
    assert!(again.epoch >= members[0].epoch);
}

#[test]
fn leaving_and_expiring_members_free_their_partitions() {
    let broker = start();
    let mut c = broker.client();
    create_topic(&mut c, "cg-leave", 4);
    let a = join(&mut c, "g-leave", "a", &["cg-leave"], None, None);
    let b = join(&mut c, "g-leave", "b", &["cg-leave"], None, None);
    let cm = join(&mut c, "g-leave", "c", &["cg-leave"], None, None);
    let mut members = vec![a, b, cm];
    settle(&mut c, "g-leave", &mut members);
    assert_disjoint_cover(&members, 4);

    // c leaves with epoch -1.
    let c_member = members.pop().unwrap();
    let mut leave = ConsumerGroupHeartbeatRequest::default();
    leave.group_id = GroupId(s("g-leave"));
    leave.member_id = s(&c_member.id);
    leave.member_epoch = -1;
    let resp = heartbeat(&mut c, &leave);
    assert_eq!((resp.error_code, resp.member_epoch), (0, -1));
    settle(&mut c, "g-leave", &mut members);
    assert_disjoint_cover(&members, 4);
    // Leaving again: it is no longer known.
    assert_eq!(
        heartbeat(&mut c, &leave).error_code,
        ResponseError::UnknownMemberId.code()
    );

    // b stops heartbeating: after the 3 s session it is gone and a has all.
    let mut b = members.pop().unwrap();
    let mut a = members.pop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = beat(&mut c, "g-leave", &mut a);
        assert_eq!(resp.error_code, 0);
        if count(&a.owned) == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "b's session never expired");
        std::thread::sleep(Duration::from_millis(300));
    }
    let resp = beat(&mut c, "g-leave", &mut b);
    assert_eq!(resp.error_code, ResponseError::UnknownMemberId.code());
}

#[test]
fn regex_subscription_resolves_and_picks_up_new_topics() {
    let broker = start();
    let mut c = broker.client();
    create_topic(&mut c, "orders-eu", 2);
    create_topic(&mut c, "payments", 2);
    let mut m = join(&mut c, "g-regex", "m", &[], Some("orders-.*"), None);
    let ids = topic_ids(&mut c);
    assert_eq!(
        m.owned.keys().copied().collect::<Vec<_>>(),
        vec![ids["orders-eu"]]
    );
    assert_eq!(count(&m.owned), 2);
    create_topic(&mut c, "orders-us", 3);
    let ids = topic_ids(&mut c);
    let resp = beat(&mut c, "g-regex", &mut m);
    assert_eq!(resp.error_code, 0);
    assert!(resp.assignment.is_some());
    assert_eq!(count(&m.owned), 5);
    assert!(m.owned.contains_key(&ids["orders-us"]));
    assert!(!m.owned.contains_key(&ids["payments"]));

    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s("g-regex"))];
    let resp: ConsumerGroupDescribeResponse = c.call(ApiKey::ConsumerGroupDescribe, 0, &req);
    let member = &resp.groups[0].members[0];
    assert_eq!(member.subscribed_topic_regex.as_deref(), Some("orders-.*"));
    let names: BTreeSet<&str> = member
        .assignment
        .topic_partitions
        .iter()
        .map(|tp| tp.topic_name.0.as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["orders-eu", "orders-us"]));
}

fn commit(c: &mut Client, group: &str, member: &str, epoch: i32, topic: &str) -> i16 {
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = 42;
    let mut t = OffsetCommitRequestTopic::default();
    t.name = TopicName(s(topic));
    t.partitions = vec![p];
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s(group));
    req.member_id = s(member);
    req.generation_id_or_member_epoch = epoch;
    req.topics = vec![t];
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 9, &req);
    resp.topics[0].partitions[0].error_code
}

fn fetch_error(c: &mut Client, group: &str, member: &str, epoch: i32) -> i16 {
    let mut g = OffsetFetchRequestGroup::default();
    g.group_id = GroupId(s(group));
    g.member_id = Some(s(member));
    g.member_epoch = epoch;
    let mut t = OffsetFetchRequestTopics::default();
    t.name = TopicName(s("cg-off"));
    t.partition_indexes = vec![0];
    g.topics = Some(vec![t]);
    let mut req = OffsetFetchRequest::default();
    req.groups = vec![g];
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 9, &req);
    let group = &resp.groups[0];
    if group.error_code != 0 {
        return group.error_code;
    }
    assert_eq!(group.topics[0].partitions[0].committed_offset, 42);
    0
}

#[test]
fn offsets_are_committed_and_fetched_at_the_member_epoch() {
    let broker = start();
    let mut c = broker.client();
    create_topic(&mut c, "cg-off", 2);
    let a = join(&mut c, "g-off", "a", &["cg-off"], None, None);
    assert_eq!(commit(&mut c, "g-off", "a", a.epoch, "cg-off"), 0);
    assert_eq!(fetch_error(&mut c, "g-off", "a", a.epoch), 0);
    // An admin fetch (epoch -1) is not checked.
    assert_eq!(fetch_error(&mut c, "g-off", "", -1), 0);
    let b = join(&mut c, "g-off", "b", &["cg-off"], None, None);
    assert!(b.epoch > a.epoch);
    let stale = ResponseError::StaleMemberEpoch.code();
    assert_eq!(commit(&mut c, "g-off", "b", a.epoch, "cg-off"), stale);
    assert_eq!(commit(&mut c, "g-off", "b", b.epoch + 1, "cg-off"), stale);
    assert_eq!(fetch_error(&mut c, "g-off", "b", b.epoch + 1), stale);
    assert_eq!(
        commit(&mut c, "g-off", "ghost", 1, "cg-off"),
        ResponseError::UnknownMemberId.code()
    );
    // From outside the group while it has members: refused.
    assert_eq!(
        commit(&mut c, "g-off", "", -1, "cg-off"),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn describe_list_and_classic_apis_see_a_consumer_group() {
    let broker = start();
    let mut c = broker.client();
    create_topic(&mut c, "cg-desc", 3);
    let a = join(&mut c, "g-desc", "a", &["cg-desc"], None, None);
    let mut members = vec![a];
    settle(&mut c, "g-desc", &mut members);

    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s("g-desc")), GroupId(s("no-such-group"))];
    req.include_authorized_operations = true;
    let resp: ConsumerGroupDescribeResponse = c.call(ApiKey::ConsumerGroupDescribe, 1, &req);
    let g = &resp.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.group_epoch, members[0].epoch);
    assert_eq!(g.assignment_epoch, members[0].epoch);
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert!(g.authorized_operations > 0);
    let m = &g.members[0];
    assert_eq!(m.member_id.as_str(), "a");
    assert_eq!(m.member_epoch, members[0].epoch);
    assert_eq!(m.member_type, 1);
    assert_eq!(m.subscribed_topic_names[0].0.as_str(), "cg-desc");
    assert_eq!(m.assignment.topic_partitions[0].partitions.len(), 3);
    assert_eq!(m.target_assignment.topic_partitions[0].partitions.len(), 3);
    assert_eq!(
        resp.groups[1].error_code,
        ResponseError::GroupIdNotFound.code()
    );

    let mut list = ListGroupsRequest::default();
    list.types_filter = vec![s("consumer")];
    let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, 5, &list);
    let listed: Vec<_> = resp
        .groups
        .iter()
        .filter(|g| g.group_id.0.as_str() == "g-desc")
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_type.as_str(), "consumer");
    assert_eq!(listed[0].group_state.as_str(), "Stable");
    list.types_filter = vec![s("classic")];
    let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, 5, &list);
    assert!(resp
        .groups
        .iter()
        .all(|g| g.group_id.0.as_str() != "g-desc"));

    // DescribeGroups (the classic API) answers as for an unknown group.
    let mut d = DescribeGroupsRequest::default();
    d.groups = vec![GroupId(s("g-desc"))];
    let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 6, &d);
    assert_eq!(
        resp.groups[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 5, &d);
    assert_eq!(resp.groups[0].group_state.as_str(), "Dead");

    // A classic member cannot join it while it has members.
    let mut p = kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default();
    p.name = s("range");
    let mut join_classic = JoinGroupRequest::default();
    join_classic.group_id = GroupId(s("g-desc"));
    join_classic.session_timeout_ms = 10_000;
    join_classic.rebalance_timeout_ms = 10_000;
    join_classic.protocol_type = s("consumer");
    join_classic.protocols = vec![p];
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_classic);
    assert_eq!(
        resp.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    // Nor can a non-empty group be deleted.
    let mut del = DeleteGroupsRequest::default();
    del.groups_names = vec![GroupId(s("g-desc"))];
    let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &del);
    assert_eq!(
        resp.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );
}

#[test]
fn static_members_come_back_and_hold_their_instance_id() {
    let broker = start();
    let mut c = broker.client();
    create_topic(&mut c, "cg-static", 4);
    let mut req = join_request("g-static", "first");
    req.instance_id = Some(s("instance-1"));
    req.subscribed_topic_names = Some(vec![TopicName(s("cg-static"))]);
    let resp = heartbeat(&mut c, &req);
    assert_eq!(resp.error_code, 0);
    let epoch = resp.member_epoch;
    let first_assignment = assignment(&resp).unwrap();
    assert_eq!(count(&first_assignment), 4);

    // Another member id with the same instance while the first is active.
    let mut other = req.clone();
    other.member_id = s("second");
    assert_eq!(
        heartbeat(&mut c, &other).error_code,
        ResponseError::UnreleasedInstanceId.code()
    );
    // The first leaves for a while (epoch -2) ...
    let mut away = ConsumerGroupHeartbeatRequest::default();
    away.group_id = GroupId(s("g-static"));
    away.member_id = s("first");
    away.member_epoch = -2;
    away.instance_id = Some(s("instance-1"));
    let resp = heartbeat(&mut c, &away);
    assert_eq!((resp.error_code, resp.member_epoch), (0, -2));
    // ... and comes back under a new member id with its partitions.
    let resp = heartbeat(&mut c, &other);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.member_epoch, epoch);
    assert_eq!(assignment(&resp).unwrap(), first_assignment);
    let mut gone = away.clone();
    gone.member_epoch = 1;
    assert_eq!(
        heartbeat(&mut c, &gone).error_code,
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn a_classic_group_with_members_is_not_a_consumer_group() {
    let broker = start();
    let mut c = broker.client();
    let mut p = kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default();
    p.name = s("range");
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(s("g-classic"));
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 10_000;
    req.member_id = s("");
    req.protocol_type = s("consumer");
    req.protocols = vec![p];
    // v3: no MEMBER_ID_REQUIRED round; the answer waits for the initial
    // rebalance delay.
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 3, &req);
    assert_eq!(resp.error_code, 0);
    let mut hb = join_request("g-classic", "m");
    hb.subscribed_topic_names = Some(vec![]);
    let resp = heartbeat(&mut c, &hb);
    assert_eq!(resp.error_code, ResponseError::GroupIdNotFound.code());
}
