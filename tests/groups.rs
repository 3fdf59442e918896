//! Consumer groups over TCP against the real binary: every group API at
//! every advertised version, delayed JoinGroup answers that leave other
//! connections free, and committed offsets across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;

const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

fn create_topic(client: &mut Client, topic: &str, partitions: i32) {
    let mut t = CreatableTopic::default();
    t.name = TopicName(s(topic));
    t.num_partitions = partitions;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    let resp: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
}

fn join_request(v: i16, group: &str, member: &str) -> JoinGroupRequest {
    let mut p = JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = Bytes::from_static(b"\0\0\0\0\0\x01\0\x01t\0\0\0\0");
    let mut req = JoinGroupRequest::default();
    req.group_id = gid(group);
    req.session_timeout_ms = 10_000;
    if v >= 1 {
        req.rebalance_timeout_ms = 10_000;
    }
    req.member_id = s(member);
    req.protocol_type = s("consumer");
    req.protocols = vec![p];
    req
}

/// Joins `group` alone at version `v` (through MEMBER_ID_REQUIRED from
/// v4), returning (member id, generation).
fn join_alone(client: &mut Client, v: i16, group: &str) -> (StrBytes, i32) {
    let mut resp: JoinGroupResponse =
        client.call(ApiKey::JoinGroup, v, &join_request(v, group, ""));
    if v >= 4 {
        assert_eq!(resp.error_code, MEMBER_ID_REQUIRED, "JoinGroup v{v}");
        let id = resp.member_id.to_string();
        resp = client.call(ApiKey::JoinGroup, v, &join_request(v, group, &id));
    }
    assert_eq!(resp.error_code, 0, "JoinGroup v{v}");
    assert_eq!(resp.leader, resp.member_id, "JoinGroup v{v}");
    assert_eq!(resp.members.len(), 1);
    assert_eq!(resp.protocol_name.as_deref(), Some("range"));
    (resp.member_id, resp.generation_id)
}

fn sync(
    client: &mut Client,
    v: i16,
    group: &str,
    member: &StrBytes,
    generation: i32,
) -> SyncGroupResponse {
    let mut a = SyncGroupRequestAssignment::default();
    a.member_id = member.clone();
    a.assignment = Bytes::from_static(b"assigned");
    let mut req = SyncGroupRequest::default();
    req.group_id = gid(group);
    req.generation_id = generation;
    req.member_id = member.clone();
    req.assignments = vec![a];
    if v >= 5 {
        req.protocol_type = Some(s("consumer"));
        req.protocol_name = Some(s("range"));
    }
    client.call(ApiKey::SyncGroup, v, &req)
}

fn commit(
    client: &mut Client,
    v: i16,
    group: &str,
    member: &str,
    generation: i32,
    offset: i64,
) -> OffsetCommitResponse {
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    p.committed_metadata = Some(s("meta"));
    let mut t = OffsetCommitRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partitions = vec![p];
    let mut req = OffsetCommitRequest::default();
    req.group_id = gid(group);
    req.generation_id_or_member_epoch = generation;
    req.member_id = s(member);
    req.topics = vec![t];
    client.call(ApiKey::OffsetCommit, v, &req)
}

/// The committed offset of t-0 for `group`, via OffsetFetch v`v`.
fn fetch_offset(client: &mut Client, v: i16, group: &str) -> (i64, String) {
    let mut req = OffsetFetchRequest::default();
    if v >= 8 {
        let mut t = OffsetFetchRequestTopics::default();
        t.name = TopicName(s("t"));
        t.partition_indexes = vec![0];
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = gid(group);
        g.topics = Some(vec![t]);
        req.groups = vec![g];
        req.require_stable = true;
        let resp: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, v, &req);
        assert_eq!(resp.groups[0].error_code, 0);
        let p = &resp.groups[0].topics[0].partitions[0];
        return (
            p.committed_offset,
            p.metadata.as_deref().unwrap_or("").to_string(),
        );
    }
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partition_indexes = vec![0];
    req.group_id = gid(group);
    req.topics = Some(vec![t]);
    if v >= 7 {
        req.require_stable = true;
    }
    let resp: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, v, &req);
    assert_eq!(resp.error_code, 0);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (
        p.committed_offset,
        p.metadata.as_deref().unwrap_or("").to_string(),
    )
}

fn versions(client: &mut Client, key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let resp: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let k = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .unwrap();
    k.min_version..=k.max_version
}

#[test]
fn every_group_api_version_round_trips() {
    let broker = TestBroker::start_with(&[
        "--offsets-topic-num-partitions",
        "3",
        "--group-initial-rebalance-delay-ms",
        "0",
    ]);
    let mut c = broker.client();
    create_topic(&mut c, "t", 2);

    for v in versions(&mut c, ApiKey::FindCoordinator) {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req.coordinator_keys = vec![s("a"), s("b")];
        } else {
            req.key = s("a");
        }
        let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, v, &req);
        if v >= 4 {
            assert_eq!(resp.coordinators.len(), 2);
            assert!(resp
                .coordinators
                .iter()
                .all(|c| c.error_code == 0 && c.node_id.0 == 1));
        } else {
            assert_eq!(
                (resp.error_code, resp.node_id.0),
                (0, 1),
                "FindCoordinator v{v}"
            );
        }
    }

    for v in versions(&mut c, ApiKey::JoinGroup) {
        let group = format!("join{v}");
        let (member, generation) = join_alone(&mut c, v, &group);
        let sync_v = v.min(5);
        let resp = sync(&mut c, sync_v, &group, &member, generation);
        assert_eq!(resp.error_code, 0, "SyncGroup v{sync_v}");
        assert_eq!(resp.assignment, Bytes::from_static(b"assigned"));
        let mut hb = HeartbeatRequest::default();
        hb.group_id = gid(&group);
        hb.generation_id = generation;
        hb.member_id = member.clone();
        let hb_v = v.min(4);
        let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, hb_v, &hb);
        assert_eq!(resp.error_code, 0, "Heartbeat v{hb_v}");
        hb.generation_id = generation + 5;
        let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, hb_v, &hb);
        assert_eq!(resp.error_code, ResponseError::IllegalGeneration.code());

        let commit_v = v.clamp(2, 9);
        let resp = commit(
            &mut c,
            commit_v,
            &group,
            &member,
            generation,
            10 + i64::from(v),
        );
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{commit_v}"
        );
        let fetch_v = v.clamp(1, 9);
        assert_eq!(
            fetch_offset(&mut c, fetch_v, &group),
            (10 + i64::from(v), "meta".into())
        );

        let leave_v = v.min(5);
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = gid(&group);
        if leave_v >= 3 {
            let mut m = MemberIdentity::default();
            m.member_id = member.clone();
            leave.members = vec![m];
        } else {
            leave.member_id = member.clone();
        }
        let resp: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, leave_v, &leave);
        assert_eq!(resp.error_code, 0, "LeaveGroup v{leave_v}");
        if leave_v >= 3 {
            assert_eq!(resp.members[0].error_code, 0);
        }
        let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, hb_v, &hb);
        assert_eq!(resp.error_code, UNKNOWN_MEMBER_ID);
    }

    for v in versions(&mut c, ApiKey::OffsetCommit) {
        let resp = commit(&mut c, v, "simple", "", -1, i64::from(v));
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{v}"
        );
    }
    for v in versions(&mut c, ApiKey::OffsetFetch) {
        assert_eq!(fetch_offset(&mut c, v, "simple").0, 9, "OffsetFetch v{v}");
        assert_eq!(fetch_offset(&mut c, v, "never").0, -1, "OffsetFetch v{v}");
    }

    for v in versions(&mut c, ApiKey::ListGroups) {
        let mut req = ListGroupsRequest::default();
        if v >= 4 {
            req.states_filter = vec![s("Empty")];
        }
        let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, v, &req);
        assert_eq!(resp.error_code, 0);
        let names: Vec<&str> = resp.groups.iter().map(|g| &*g.group_id.0).collect();
        assert!(names.contains(&"simple"), "ListGroups v{v}: {names:?}");
        if v >= 4 {
            assert!(resp.groups.iter().all(|g| &*g.group_state == "Empty"));
        }
    }
    // A stable group to describe.
    let (member, generation) = join_alone(&mut c, 9, "live");
    sync(&mut c, 5, "live", &member, generation);
    for v in versions(&mut c, ApiKey::DescribeGroups) {
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![gid("live"), gid("ghost")];
        let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, v, &req);
        let live = &resp.groups[0];
        assert_eq!((live.error_code, &*live.group_state), (0, "Stable"), "v{v}");
        assert_eq!(&*live.protocol_data, "range");
        assert_eq!(live.members[0].member_id, member);
        assert_eq!(&*live.members[0].client_id, "wharf-tests");
        assert_eq!(&*live.members[0].client_host, "/127.0.0.1");
        assert_eq!(
            live.members[0].member_assignment,
            Bytes::from_static(b"assigned")
        );
        assert_eq!(&*resp.groups[1].group_state, "Dead");
        let expected = if v >= 6 {
            ResponseError::GroupIdNotFound.code()
        } else {
            0
        };
        assert_eq!(resp.groups[1].error_code, expected);
    }

    let v = 0;
    let mut p = OffsetDeleteRequestPartition::default();
    p.partition_index = 0;
    let mut t = OffsetDeleteRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partitions = vec![p];
    let mut req = OffsetDeleteRequest::default();
    req.group_id = gid("simple");
    req.topics = vec![t.clone()];
    let resp: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, v, &req);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offset(&mut c, 9, "simple").0, -1);
    // "live" subscribes to t (see join_request's metadata).
    req.group_id = gid("live");
    let resp: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, v, &req);
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        ResponseError::GroupSubscribedToTopic.code()
    );

    for v in versions(&mut c, ApiKey::DeleteGroups) {
        let group = format!("del{v}");
        commit(&mut c, 9, &group, "", -1, 1);
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![gid(&group), gid("live"), gid("nope")];
        let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, v, &req);
        let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
        assert_eq!(
            codes,
            vec![
                0,
                ResponseError::NonEmptyGroup.code(),
                ResponseError::GroupIdNotFound.code()
            ],
            "DeleteGroups v{v}"
        );
        assert_eq!(fetch_offset(&mut c, 9, &group).0, -1);
    }
}

fn read_response<R: Decodable>(client: &mut Client, key: ApiKey, v: i16) -> R {
    let mut body = client.read_frame().expect("a response");
    let _ =
        kafka_protocol::messages::ResponseHeader::decode(&mut body, key.response_header_version(v))
            .unwrap();
    R::decode(&mut body, v).unwrap()
}

#[test]
fn a_waiting_join_does_not_block_other_connections() {
    let broker = TestBroker::start_with(&[
        "--offsets-topic-num-partitions",
        "2",
        "--group-initial-rebalance-delay-ms",
        "0",
    ]);
    let mut a = broker.client();
    let mut b = broker.client();
    create_topic(&mut a, "t", 1);
    let (member_a, generation) = join_alone(&mut a, 9, "g");
    assert_eq!(sync(&mut a, 5, "g", &member_a, generation).error_code, 0);

    // b joins: its answer waits until a rejoins.
    let first: JoinGroupResponse = b.call(ApiKey::JoinGroup, 9, &join_request(9, "g", ""));
    let member_b = first.member_id.to_string();
    b.send(ApiKey::JoinGroup, 9, &join_request(9, "g", &member_b));

    // Meanwhile a's connection is served and learns of the rebalance.
    let mut hb = HeartbeatRequest::default();
    hb.group_id = gid("g");
    hb.generation_id = generation;
    hb.member_id = member_a.clone();
    // (b's join may not have arrived yet: ask until it has.)
    let mut code = 0;
    for _ in 0..100 {
        let resp: HeartbeatResponse = a.call(ApiKey::Heartbeat, 4, &hb);
        code = resp.error_code;
        if code != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(code, REBALANCE_IN_PROGRESS);

    let resp: JoinGroupResponse = a.call(ApiKey::JoinGroup, 9, &join_request(9, "g", &member_a));
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.generation_id, generation + 1);
    assert_eq!(resp.members.len(), 2, "the leader sees both members");
    let resp_b: JoinGroupResponse = read_response(&mut b, ApiKey::JoinGroup, 9);
    assert_eq!(resp_b.error_code, 0);
    assert_eq!(resp_b.generation_id, generation + 1);
    assert_eq!(resp_b.leader, member_a);
}

#[test]
fn committed_offsets_and_groups_survive_a_restart() {
    let mut broker = TestBroker::start_with(&[
        "--offsets-topic-num-partitions",
        "4",
        "--group-initial-rebalance-delay-ms",
        "0",
    ]);
    let mut c = broker.client();
    create_topic(&mut c, "t", 1);
    let resp = commit(&mut c, 9, "keep", "", -1, 1234);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    let (member, generation) = join_alone(&mut c, 9, "members");
    sync(&mut c, 5, "members", &member, generation);
    drop(c);
    broker.restart(true);
    let mut c = broker.client();
    assert_eq!(fetch_offset(&mut c, 9, "keep"), (1234, "meta".to_string()));
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![gid("members")];
    let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 5, &req);
    assert_eq!(&*resp.groups[0].group_state, "Stable");
    assert_eq!(resp.groups[0].members[0].member_id, member);
    // __consumer_offsets is listed as internal.
    let mut all = MetadataRequest::default();
    all.topics = None;
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &all);
    let internal: Vec<_> = resp
        .topics
        .iter()
        .filter(|t| t.is_internal)
        .map(|t| t.name.clone().unwrap().0.to_string())
        .collect();
    assert_eq!(internal, vec!["__consumer_offsets".to_string()]);
}

#[test]
fn clients_cannot_produce_to_the_offsets_topic() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    // Committing creates __consumer_offsets.
    let mut fc = FindCoordinatorRequest::default();
    fc.key = StrBytes::from_static_str("g");
    let _: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &fc);
    let records = wharf_protocol::batch::build_batch(
        0,
        &[(Some(&b"k"[..]), Some(&b"v"[..]), 1)],
        wharf_protocol::compression::Compression::None,
    )
    .unwrap();
    let mut p = kafka_protocol::messages::produce_request::PartitionProduceData::default();
    p.index = 0;
    p.records = Some(bytes::Bytes::from(records));
    let mut t = kafka_protocol::messages::produce_request::TopicProduceData::default();
    t.name = TopicName(StrBytes::from_static_str("__consumer_offsets"));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = 1;
    req.topic_data = vec![t];
    let resp: ProduceResponse = client.call(ApiKey::Produce, 9, &req);
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
}
