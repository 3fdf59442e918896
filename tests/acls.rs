//! ACL authorization against the real binary over SASL/PLAIN: for each API
//! of `tests/fixtures/acl_matrix.txt` (Kafka's authorization table), a
//! principal without the ACLs gets the table's error and one with them
//! does not; super users may do anything; ACLs survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use wharf_protocol::batch::{build_batch_with, BatchOptions, NewRecord};

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
     user_admin=\"admin-secret\" user_alice=\"alice-secret\" user_bob=\"bob-secret\";";

fn acl_broker() -> TestBroker {
    let jaas = format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}");
    let args = vec![
        "--listener-name".to_string(),
        "SASL_PLAINTEXT".to_string(),
        "--security-config".to_string(),
        "sasl.enabled.mechanisms=PLAIN".to_string(),
        "--security-config".to_string(),
        jaas,
        "--authorizer-class-name".to_string(),
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        "--super-users".to_string(),
        "User:admin".to_string(),
    ];
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    TestBroker::start_logged(&refs)
}

/// A connection authenticated as `user` (password `<user>-secret`).
fn login(broker: &TestBroker, user: &str) -> Client {
    let mut client = Client::connect(broker.addr);
    let mut shake = SaslHandshakeRequest::default();
    shake.mechanism = StrBytes::from_static_str("PLAIN");
    let r: SaslHandshakeResponse = client.call(ApiKey::SaslHandshake, 1, &shake);
    assert_eq!(r.error_code, 0);
    let mut auth = SaslAuthenticateRequest::default();
    auth.auth_bytes = Bytes::from(format!("\0{user}\0{user}-secret"));
    let r: SaslAuthenticateResponse = client.call(ApiKey::SaslAuthenticate, 2, &auth);
    assert_eq!(r.error_code, 0, "{user}: {:?}", r.error_message);
    client
}

/// What a request got: an error code, or a closed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Code(i16),
    Closed,
}

/// Sends a request; `None` when the broker closed the connection instead.
fn try_call<Req: Encodable, Resp: Decodable>(
    client: &mut Client,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Option<Resp> {
    client.send(key, version, request);
    let mut body = client.read_frame()?;
    ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
    Some(Resp::decode(&mut body, version).unwrap())
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn one_record() -> Bytes {
    let value = b"v".to_vec();
    let record = NewRecord {
        key: None,
        value: Some(&value),
        timestamp: 1_700_000_000_000,
        headers: Vec::new(),
    };
    Bytes::from(build_batch_with(0, &[record], &BatchOptions::default()).unwrap())
}

/// Sends the fixture's request for `api` and reads the error it is about.
fn run(api: &str, c: &mut Client) -> Outcome {
    macro_rules! call {
        ($key:ident, $v:expr, $req:expr, $resp:ty, |$r:ident| $code:expr) => {{
            match try_call::<_, $resp>(c, ApiKey::$key, $v, &$req) {
                Some($r) => Outcome::Code($code),
                None => Outcome::Closed,
            }
        }};
    }
    let matrix = common::topic_name("matrix");
    match api {
        "Metadata" => {
            let mut t = metadata_request::MetadataRequestTopic::default();
            t.name = Some(matrix);
            let mut req = MetadataRequest::default();
            req.topics = Some(vec![t]);
            call!(Metadata, 12, req, MetadataResponse, |r| r.topics[0]
                .error_code)
        }
        "ListOffsets" => {
            let mut p = list_offsets_request::ListOffsetsPartition::default();
            p.timestamp = -1;
            let mut t = list_offsets_request::ListOffsetsTopic::default();
            t.name = matrix;
            t.partitions = vec![p];
            let mut req = ListOffsetsRequest::default();
            req.replica_id = (-1).into();
            req.topics = vec![t];
            call!(ListOffsets, 7, req, ListOffsetsResponse, |r| r.topics[0]
                .partitions[0]
                .error_code)
        }
        "Produce" => {
            let mut p = produce_request::PartitionProduceData::default();
            p.records = Some(one_record());
            let mut t = produce_request::TopicProduceData::default();
            t.name = matrix;
            t.partition_data = vec![p];
            let mut req = ProduceRequest::default();
            req.acks = 1;
            req.timeout_ms = 5000;
            req.topic_data = vec![t];
            call!(Produce, 9, req, ProduceResponse, |r| r.responses[0]
                .partition_responses[0]
                .error_code)
        }
        "Fetch" => {
            let mut p = fetch_request::FetchPartition::default();
            p.partition_max_bytes = 1 << 20;
            let mut t = fetch_request::FetchTopic::default();
            t.topic = matrix;
            t.partitions = vec![p];
            let mut req = FetchRequest::default();
            req.replica_id = (-1).into();
            req.max_bytes = 1 << 20;
            req.session_epoch = -1;
            req.topics = vec![t];
            call!(Fetch, 12, req, FetchResponse, |r| r.responses[0].partitions
                [0]
            .error_code)
        }
        "FindCoordinator(group)" | "FindCoordinator(txn)" => {
            let mut req = FindCoordinatorRequest::default();
            req.key = s(if api.contains("txn") { "tx" } else { "g" });
            req.key_type = i8::from(api.contains("txn"));
            call!(FindCoordinator, 3, req, FindCoordinatorResponse, |r| r
                .error_code)
        }
        "JoinGroup" => {
            let mut p = join_group_request::JoinGroupRequestProtocol::default();
            p.name = s("range");
            let mut req = JoinGroupRequest::default();
            req.group_id = GroupId(s("g"));
            req.session_timeout_ms = 10_000;
            req.rebalance_timeout_ms = 10_000;
            req.protocol_type = s("consumer");
            req.protocols = vec![p];
            call!(JoinGroup, 5, req, JoinGroupResponse, |r| r.error_code)
        }
        "SyncGroup" => {
            let mut req = SyncGroupRequest::default();
            req.group_id = GroupId(s("g"));
            req.member_id = s("nobody");
            req.generation_id = 1;
            call!(SyncGroup, 3, req, SyncGroupResponse, |r| r.error_code)
        }
        "Heartbeat" => {
            let mut req = HeartbeatRequest::default();
            req.group_id = GroupId(s("g"));
            req.member_id = s("nobody");
            req.generation_id = 1;
            call!(Heartbeat, 3, req, HeartbeatResponse, |r| r.error_code)
        }
        "LeaveGroup" => {
            let mut req = LeaveGroupRequest::default();
            req.group_id = GroupId(s("g"));
            req.member_id = s("nobody");
            call!(LeaveGroup, 2, req, LeaveGroupResponse, |r| r.error_code)
        }
        "OffsetCommit" => {
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
            p.committed_offset = 0;
            let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
            t.name = matrix;
            t.partitions = vec![p];
            let mut req = OffsetCommitRequest::default();
            req.group_id = GroupId(s("g"));
            req.generation_id_or_member_epoch = -1;
            req.topics = vec![t];
            call!(OffsetCommit, 8, req, OffsetCommitResponse, |r| r.topics[0]
                .partitions[0]
                .error_code)
        }
        "OffsetFetch" => {
            let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
            t.name = matrix;
            t.partition_indexes = vec![0];
            let mut req = OffsetFetchRequest::default();
            req.group_id = GroupId(s("g"));
            req.topics = Some(vec![t]);
            call!(OffsetFetch, 7, req, OffsetFetchResponse, |r| {
                if r.error_code != 0 {
                    r.error_code
                } else {
                    r.topics[0].partitions[0].error_code
                }
            })
        }
        "DescribeGroups" => {
            let mut req = DescribeGroupsRequest::default();
            req.groups = vec![GroupId(s("g"))];
            call!(DescribeGroups, 5, req, DescribeGroupsResponse, |r| r.groups
                [0]
            .error_code)
        }
        "CreateTopics" => {
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = common::topic_name("made");
            t.num_partitions = 1;
            t.replication_factor = 1;
            let mut req = CreateTopicsRequest::default();
            req.topics = vec![t];
            req.timeout_ms = 5000;
            call!(CreateTopics, 7, req, CreateTopicsResponse, |r| r.topics[0]
                .error_code)
        }
        "DeleteTopics" => {
            let mut req = DeleteTopicsRequest::default();
            req.topic_names = vec![common::topic_name("doomed")];
            req.timeout_ms = 5000;
            call!(DeleteTopics, 5, req, DeleteTopicsResponse, |r| r.responses
                [0]
            .error_code)
        }
        "DescribeConfigs" => {
            let mut res = describe_configs_request::DescribeConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("matrix");
            let mut req = DescribeConfigsRequest::default();
            req.resources = vec![res];
            call!(DescribeConfigs, 4, req, DescribeConfigsResponse, |r| r
                .results[0]
                .error_code)
        }
        "AlterConfigs" => {
            let mut c = alter_configs_request::AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("600000"));
            let mut res = alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("matrix");
            res.configs = vec![c];
            let mut req = AlterConfigsRequest::default();
            req.resources = vec![res];
            call!(AlterConfigs, 2, req, AlterConfigsResponse, |r| r.responses
                [0]
            .error_code)
        }
        "IncrementalAlterConfigs" => {
            let mut c = incremental_alter_configs_request::AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("700000"));
            let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s("matrix");
            res.configs = vec![c];
            let mut req = IncrementalAlterConfigsRequest::default();
            req.resources = vec![res];
            call!(
                IncrementalAlterConfigs,
                1,
                req,
                IncrementalAlterConfigsResponse,
                |r| r.responses[0].error_code
            )
        }
        "InitProducerId(txn)" | "InitProducerId(idempotent)" => {
            let mut req = InitProducerIdRequest::default();
            req.transactional_id = api.contains("txn").then(|| TransactionalId(s("tx")));
            req.transaction_timeout_ms = 60_000;
            req.producer_id = (-1).into();
            req.producer_epoch = -1;
            call!(InitProducerId, 4, req, InitProducerIdResponse, |r| r
                .error_code)
        }
        "DescribeAcls" => {
            let mut req = any_acls();
            req.resource_type_filter = 1;
            req.pattern_type_filter = 1;
            req.operation = 1;
            req.permission_type = 1;
            call!(DescribeAcls, 3, req, DescribeAclsResponse, |r| r.error_code)
        }
        "CreateAcls" => {
            let req = create_acls_request(&[("Topic", "other", "Read", "User:carol")]);
            call!(CreateAcls, 3, req, CreateAclsResponse, |r| r.results[0]
                .error_code)
        }
        "DeleteAcls" => {
            let mut f = any_filter();
            f.resource_type_filter = 2;
            f.resource_name_filter = Some(s("other"));
            f.pattern_type_filter = 3;
            f.operation = 1;
            f.permission_type = 1;
            let mut req = DeleteAclsRequest::default();
            req.filters = vec![f];
            call!(DeleteAcls, 3, req, DeleteAclsResponse, |r| r.filter_results
                [0]
            .error_code)
        }
        "DeleteRecords" => {
            let mut p = delete_records_request::DeleteRecordsPartition::default();
            p.offset = 0;
            let mut t = delete_records_request::DeleteRecordsTopic::default();
            t.name = matrix;
            t.partitions = vec![p];
            let mut req = DeleteRecordsRequest::default();
            req.topics = vec![t];
            req.timeout_ms = 5000;
            call!(DeleteRecords, 2, req, DeleteRecordsResponse, |r| r.topics
                [0]
            .partitions[0]
                .error_code)
        }
        "DescribeLogDirs" => {
            let req = DescribeLogDirsRequest::default();
            call!(DescribeLogDirs, 4, req, DescribeLogDirsResponse, |r| r
                .error_code)
        }
        other => panic!("the fixture names an API this test does not send: {other}"),
    }
}

/// A DescribeAcls request matching every ACL.
fn any_acls() -> DescribeAclsRequest {
    let mut req = DescribeAclsRequest::default();
    req.resource_type_filter = 1;
    req.resource_name_filter = None;
    req.pattern_type_filter = 1;
    req.principal_filter = None;
    req.host_filter = None;
    req.operation = 1;
    req.permission_type = 1;
    req
}

/// A DeleteAcls filter matching every ACL.
fn any_filter() -> delete_acls_request::DeleteAclsFilter {
    let mut f = delete_acls_request::DeleteAclsFilter::default();
    f.resource_type_filter = 1;
    f.resource_name_filter = None;
    f.pattern_type_filter = 1;
    f.principal_filter = None;
    f.host_filter = None;
    f.operation = 1;
    f.permission_type = 1;
    f
}

/// A CreateAcls v3 of LITERAL ALLOW ACLs (resource type, name, operation,
/// principal), host `*`.
fn create_acls_request(acls: &[(&str, &str, &str, &str)]) -> CreateAclsRequest {
    use wharf_coordinator::acl::{Operation, ResourceType};
    let mut req = CreateAclsRequest::default();
    req.creations = acls
        .iter()
        .map(|(rt, name, op, principal)| {
            let mut c = create_acls_request::AclCreation::default();
            c.resource_type = ResourceType::parse(rt).unwrap().code();
            c.resource_name = s(name);
            c.resource_pattern_type = 3;
            c.principal = s(principal);
            c.host = s("*");
            c.operation = Operation::parse(op).unwrap().code();
            c.permission_type = 3;
            c
        })
        .collect();
    req
}

fn grant(admin: &mut Client, acls: &[(&str, &str, &str, &str)]) {
    let r: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &create_acls_request(acls));
    for result in &r.results {
        assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    }
}

fn error_code(name: &str) -> Outcome {
    Outcome::Code(match name {
        "TOPIC_AUTHORIZATION_FAILED" => 29,
        "GROUP_AUTHORIZATION_FAILED" => 30,
        "CLUSTER_AUTHORIZATION_FAILED" => 31,
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" => 53,
        "CLOSED" => return Outcome::Closed,
        other => panic!("unknown error in the fixture: {other}"),
    })
}

#[test]
fn each_api_refuses_a_principal_without_the_acls_of_kafkas_table_and_serves_one_with_them() {
    let broker = acl_broker();
    let mut admin = login(&broker, "admin");
    for topic in ["matrix", "doomed"] {
        assert_eq!(
            common::create_topic(&mut admin, topic, 1).topics[0].error_code,
            0
        );
    }
    let fixture = include_str!("fixtures/acl_matrix.txt");
    let mut rows = 0;
    for line in fixture.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [api, needs, error] = fields[..] else {
            panic!("bad fixture line: {line}");
        };
        rows += 1;
        let denied = error_code(error);
        let bob = run(api, &mut login(&broker, "bob"));
        assert_eq!(bob, denied, "{api} without ACLs");
        if needs == "super-user" {
            let alice = run(api, &mut login(&broker, "alice"));
            assert_eq!(alice, Outcome::Closed, "{api}: only super users");
            let own = run(api, &mut login(&broker, "admin"));
            assert!(matches!(own, Outcome::Code(_)), "{api} as a super user");
            continue;
        }
        let acls: Vec<(String, String, String)> = needs
            .split(',')
            .map(|n| {
                let mut parts = n.splitn(3, ':');
                let rt = parts.next().unwrap().to_string();
                let name = parts.next().unwrap().to_string();
                let op = parts.next().unwrap().to_string();
                (rt, name, op)
            })
            .collect();
        let wanted: Vec<(&str, &str, &str, &str)> = acls
            .iter()
            .map(|(rt, name, op)| (rt.as_str(), name.as_str(), op.as_str(), "User:alice"))
            .collect();
        grant(&mut admin, &wanted);
        let alice = run(api, &mut login(&broker, "alice"));
        assert!(
            matches!(alice, Outcome::Code(c) if Outcome::Code(c) != denied),
            "{api} with {needs}: {alice:?}"
        );
    }
    assert!(rows >= 20, "the fixture has {rows} rows");
    let log = broker.log();
    assert!(
        log.contains("Principal = User:bob is Denied operation = Write"),
        "denials are logged Kafka's way"
    );
}

#[test]
fn metadata_hides_topics_a_principal_may_not_describe_and_super_users_see_all() {
    let broker = acl_broker();
    let mut admin = login(&broker, "admin");
    for topic in ["seen", "hidden"] {
        common::create_topic(&mut admin, topic, 1);
    }
    grant(&mut admin, &[("Topic", "seen", "Read", "User:alice")]);
    let names = |c: &mut Client| -> Vec<String> {
        let mut all = MetadataRequest::default();
        all.topics = None;
        let r: MetadataResponse = c.call(ApiKey::Metadata, 12, &all);
        let mut n: Vec<String> = r
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&mut login(&broker, "alice")), ["seen"]);
    assert!(names(&mut login(&broker, "bob")).is_empty());
    assert_eq!(names(&mut admin), ["hidden", "seen"]);
    // Auto-creation needs CREATE: bob is refused, the topic not made.
    let mut t = metadata_request::MetadataRequestTopic::default();
    t.name = Some(common::topic_name("auto-made"));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = true;
    let r: MetadataResponse = login(&broker, "bob").call(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics[0].error_code, 29);
    assert!(!names(&mut admin).contains(&"auto-made".to_string()));
}

#[test]
fn acls_survive_a_restart_and_describe_and_delete_filter_them() {
    let mut broker = acl_broker();
    grant(
        &mut login(&broker, "admin"),
        &[
            ("Topic", "orders", "Read", "User:alice"),
            ("Group", "billing", "Read", "User:alice"),
        ],
    );
    broker.restart(true);
    let mut admin = login(&broker, "admin");
    let mut req = any_acls();
    req.resource_type_filter = 1;
    req.pattern_type_filter = 1;
    req.operation = 1;
    req.permission_type = 1;
    let r: DescribeAclsResponse = admin.call(ApiKey::DescribeAcls, 3, &req);
    assert_eq!(r.error_code, 0);
    let mut names: Vec<String> = r
        .resources
        .iter()
        .map(|res| res.resource_name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["billing", "orders"], "kept across the restart");
    // A MATCH filter for topic "orders" finds the literal ACL; UNKNOWN
    // pattern types are INVALID_REQUEST.
    req.resource_type_filter = 2;
    req.resource_name_filter = Some(s("orders"));
    req.pattern_type_filter = 2;
    let r: DescribeAclsResponse = admin.call(ApiKey::DescribeAcls, 3, &req);
    assert_eq!(r.resources.len(), 1);
    req.pattern_type_filter = 0;
    let r: DescribeAclsResponse = admin.call(ApiKey::DescribeAcls, 3, &req);
    assert_eq!(r.error_code, 42);
    // Delete everything on topics: one ACL matched and gone.
    let mut f = any_filter();
    f.resource_type_filter = 2;
    f.pattern_type_filter = 1;
    f.operation = 1;
    f.permission_type = 1;
    let mut del = DeleteAclsRequest::default();
    del.filters = vec![f];
    let r: DeleteAclsResponse = admin.call(ApiKey::DeleteAcls, 3, &del);
    assert_eq!(r.filter_results[0].error_code, 0);
    assert_eq!(r.filter_results[0].matching_acls.len(), 1);
    assert_eq!(
        r.filter_results[0].matching_acls[0].resource_name.as_str(),
        "orders"
    );
    // An invalid entry: a CLUSTER ACL must name kafka-cluster.
    let bad = create_acls_request(&[("Cluster", "mine", "Alter", "User:alice")]);
    let r: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &bad);
    assert_eq!(r.results[0].error_code, 42);
}

#[test]
fn an_unknown_authorizer_class_stops_the_start() {
    let err = TestBroker::try_start_logged(&[
        "--authorizer-class-name",
        "kafka.security.authorizer.AclAuthorizer",
    ])
    .err()
    .expect("refused");
    assert!(err.contains("StandardAuthorizer"), "{err}");
}

#[test]
fn a_three_broker_cluster_replicates_with_the_authorizer_on_and_every_broker_sees_the_acls() {
    use common::cluster::Cluster;
    // Brokers reach each other on the PLAINTEXT listener as User:ANONYMOUS,
    // which must therefore be a super user (follower fetches need
    // CLUSTER_ACTION).
    let cluster = Cluster::start_with(3, |_| {
        [
            "--authorizer-class-name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--super-users",
            "User:ANONYMOUS",
        ]
        .map(String::from)
        .to_vec()
    });
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], std::time::Duration::from_secs(30));
    let leader = cluster.create_rf3_topic("guarded");
    assert!(leader > 0);
    // Created through node 3: forwarded to the active controller.
    let mut via_three = cluster.nodes[2].client();
    let r: CreateAclsResponse = via_three.call(
        ApiKey::CreateAcls,
        3,
        &create_acls_request(&[("Topic", "guarded", "Read", "User:alice")]),
    );
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    for (i, node) in cluster.nodes.iter().enumerate() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let r: DescribeAclsResponse = node.client().call(ApiKey::DescribeAcls, 3, &any_acls());
            if r.resources.len() == 1 {
                assert_eq!(r.resources[0].resource_name.as_str(), "guarded");
                assert_eq!(r.resources[0].acls[0].principal.as_str(), "User:alice");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {} does not show the ACL",
                i + 1
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    // acks=all writes commit: followers fetch under the authorizer.
    let leader_index = usize::try_from(leader - 1).unwrap();
    let mut producer = cluster.nodes[leader_index].client();
    let (code, offset) = common::produce_batch(&mut producer, "guarded", 0, one_record().to_vec());
    assert_eq!((code, offset), (0, 0), "{}", cluster.logs());
}

#[test]
fn wharf_acl_and_kafka_acls_sh_add_list_and_remove() {
    // A PLAINTEXT broker whose anonymous principal is a super user: the
    // tools connect over PLAINTEXT.
    let broker = TestBroker::start_logged(&[
        "--authorizer-class-name",
        "standard",
        "--super-users",
        "User:ANONYMOUS",
    ]);
    let run = |args: &[&str]| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(args)
            .env("WHARF_BOOTSTRAP", broker.addr.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "acl",
        "add",
        "--principal",
        "User:alice",
        "--operation",
        "read",
        "--topic",
        "orders",
    ]);
    let added = run(&[
        "kafka-acls.sh",
        "--add",
        "--deny-principal",
        "User:bob",
        "--operation",
        "Write",
        "--topic",
        "pay-",
        "--resource-pattern-type",
        "prefixed",
    ]);
    assert!(added.contains(
        "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=pay-, patternType=PREFIXED)`"
    ));
    assert!(added.contains("(principal=User:bob, host=*, operation=WRITE, permissionType=DENY)"));
    let listed = run(&["acl", "list"]);
    assert!(listed.contains("orders") && listed.contains("User:alice") && listed.contains("DENY"));
    let bob = run(&["kafka-acls.sh", "--list", "--principal", "User:bob"]);
    assert!(
        bob.contains("name=pay-") && !bob.contains("name=orders"),
        "{bob}"
    );
    run(&["kafka-acls.sh", "--remove", "--force", "--topic", "orders"]);
    let left = run(&["acl", "--output", "json", "list"]);
    assert!(!left.contains("orders") && left.contains("pay-"), "{left}");
    run(&["acl", "remove", "--principal", "User:bob"]);
    assert_eq!(run(&["acl", "--output", "json", "list"]).trim(), "[]");
}

#[test]
fn kafka_env_variables_turn_the_authorizer_on_with_allow_everyone_if_no_acl_found() {
    let broker = TestBroker::start_logged_env(
        &[],
        &[
            (
                "KAFKA_AUTHORIZER_CLASS_NAME",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            ("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND", "true"),
        ],
    );
    let mut anonymous = broker.client();
    assert_eq!(
        common::create_topic(&mut anonymous, "t", 1).topics[0].error_code,
        0
    );
    // No ACL on the cluster: anyone may add one; then topic t has an ACL,
    // and only alice may describe it.
    grant(&mut anonymous, &[("Topic", "t", "Read", "User:alice")]);
    let mut t = metadata_request::MetadataRequestTopic::default();
    t.name = Some(common::topic_name("t"));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = false;
    let r: MetadataResponse = anonymous.call(ApiKey::Metadata, 12, &req);
    assert_eq!(r.topics[0].error_code, 29);
}
