//! Several real `wharf` processes as one cluster on loopback: the metadata
//! quorum, broker registration and heartbeats, controller failover and
//! fencing, and the start-up refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::TestBroker;
use kafka_protocol::messages::{
    describe_quorum_request, ApiKey, DescribeQuorumRequest, DescribeQuorumResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

#[test]
fn three_brokers_form_one_cluster_survive_the_controllers_kill_and_readmit_it() {
    let mut cluster = Cluster::start(3);
    let (controller, took) = cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    println!("cluster formed in {took:?}; controller {controller}");

    // kill -9 the active controller.
    let dead = usize::try_from(controller - 1).unwrap();
    cluster.nodes[dead].stop(false);
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    let started = Instant::now();
    let new_controller = loop {
        let views: Vec<_> = survivors.iter().map(|&i| cluster.view(i)).collect();
        let c = views[0].1;
        if c != controller && views.iter().all(|v| v.1 == c) {
            break c;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no new controller: {views:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "controller {controller} killed; {new_controller} took over in {:?}",
        started.elapsed()
    );

    // Its session expires: it is fenced and no longer listed.
    let live: Vec<i32> = (1..=3).filter(|&id| id != controller).collect();
    let (_, took) = cluster.wait_for(&survivors, &live, Duration::from_secs(30));
    println!("broker {controller} fenced {took:?} after the new controller was known");

    // Restarted on its data directory, it registers again.
    cluster.nodes[dead].spawn();
    let (_, took) = cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    println!("broker {controller} listed again {took:?} after its restart");
}

/// Runs `wharf serve` with `args`, expecting it to refuse to start; its stderr.
fn refused(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    assert!(!output.status.success(), "started with {args:?}");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn a_node_outside_the_voter_list_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--node-id",
        "4",
        "--controller-listen",
        "127.0.0.1:0",
        "--controller-quorum-voters",
        "1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3",
    ]);
    assert!(
        stderr.contains("node id 4 is not in --controller-quorum-voters"),
        "{stderr}"
    );
}

#[test]
fn malformed_or_duplicate_voters_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let stderr = refused(&[
        "--data-dir",
        path,
        "--controller-listen",
        "127.0.0.1:0",
        "--controller-quorum-voters",
        "1@127.0.0.1:1,1@127.0.0.1:2",
    ]);
    assert!(stderr.contains("names node id 1 twice"), "{stderr}");
    let stderr = refused(&[
        "--data-dir",
        path,
        "--controller-quorum-voters",
        "1@127.0.0.1:1",
    ]);
    assert!(stderr.contains("needs --controller-listen"), "{stderr}");
}

#[test]
fn a_data_directory_of_another_cluster_refuses_to_start() {
    let mut single = TestBroker::start();
    single.stop(true);
    let stderr = refused(&[
        "--data-dir",
        single.dir.path().to_str().unwrap(),
        "--controller-listen",
        "127.0.0.1:0",
        "--controller-quorum-voters",
        "1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3",
    ]);
    assert!(stderr.contains("belongs to cluster"), "{stderr}");
}

fn describe_quorum(node: &TestBroker) -> DescribeQuorumResponse {
    let mut partition = describe_quorum_request::PartitionData::default();
    partition.partition_index = 0;
    let mut topic = describe_quorum_request::TopicData::default();
    topic.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
    topic.partitions = vec![partition];
    let mut request = DescribeQuorumRequest::default();
    request.topics = vec![topic];
    node.client().call(ApiKey::DescribeQuorum, 1, &request)
}

#[test]
fn describe_quorum_from_any_broker_reports_the_leader_and_every_voter() {
    let cluster = Cluster::start(3);
    let (controller, _) = cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    for node in &cluster.nodes {
        let response = describe_quorum(node);
        assert_eq!(response.error_code, 0);
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "{response:?}");
        assert_eq!(p.leader_id.0, controller);
        assert!(p.leader_epoch >= 1);
        assert!(p.high_watermark > 0);
        let mut voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        voters.sort_unstable();
        assert_eq!(voters, vec![1, 2, 3]);
        assert!(
            p.current_voters.iter().all(|v| v.log_end_offset > 0),
            "{p:?}"
        );
    }
}

#[test]
fn a_lone_broker_is_its_own_single_voter_quorum() {
    let broker = TestBroker::start();
    let started = Instant::now();
    let p = loop {
        let response = describe_quorum(&broker);
        // Until the quorum has started: NOT_CONTROLLER, no partitions.
        let found = response.topics.first().and_then(|t| t.partitions.first());
        if let Some(p) = found.filter(|p| p.error_code == 0) {
            break p.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{response:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(p.leader_id.0, 1);
    assert_eq!(p.current_voters.len(), 1);
}

#[test]
fn ten_controller_kills_in_a_row_with_topic_creations_lose_no_metadata() {
    let mut cluster = Cluster::start(3);
    let mut failovers = Vec::new();
    let mut creations = Vec::new();
    for cycle in 0..10 {
        let (controller, _) = cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
        let dead = usize::try_from(controller - 1).unwrap();
        cluster.nodes[dead].stop(false);
        let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
        let started = Instant::now();
        loop {
            let views: Vec<_> = survivors.iter().map(|&i| cluster.view(i)).collect();
            let c = views[0].1;
            if c != controller && views.iter().all(|v| v.1 == c) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "cycle {cycle}: no new controller after killing {controller}: {views:?}\n{}",
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        failovers.push(started.elapsed());
        // Topic creation works again under the new controller, asked of
        // either survivor.
        let asked = survivors[cycle % 2];
        let name = format!("cycle-{cycle}");
        let started = Instant::now();
        loop {
            let (code, message, _, _) = create_replicated(&cluster, asked, &name, 2, 2);
            if code == 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "cycle {cycle}: {name} not created: {code} {message:?}\n{}",
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        creations.push(started.elapsed());
        cluster.nodes[dead].spawn();
    }
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    // Every topic made between the kills exists on every broker.
    for cycle in 0..10 {
        wait_for_topic(&cluster, &[0, 1, 2], &format!("cycle-{cycle}"), 2);
    }
    // Every voter ends with the leader's whole log.
    let started = Instant::now();
    loop {
        let leader = cluster.nodes.iter().map(describe_quorum).find_map(|r| {
            let p = r.topics.first()?.partitions.first()?.clone();
            (p.error_code == 0).then_some(p)
        });
        if let Some(p) = leader {
            let ends: Vec<i64> = p.current_voters.iter().map(|v| v.log_end_offset).collect();
            if ends.len() == 3 && ends.iter().all(|e| *e == ends[0] && *e > 0) {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "voters did not catch up\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    failovers.sort();
    creations.sort();
    println!(
        "10 controller kills: failover min {:?}, median {:?}, max {:?}; topic creation after the failover took min {:?}, median {:?}, max {:?}",
        failovers[0], failovers[5], failovers[9], creations[0], creations[5], creations[9]
    );
}

/// Metadata v12 of `topics` from node `index`.
fn topic_metadata(cluster: &Cluster, index: usize, topics: &[&str]) -> MetadataResponse {
    let mut client = cluster.nodes[index].client();
    let mut request = MetadataRequest::default();
    request.topics = Some(
        topics
            .iter()
            .map(|t| {
                let mut m =
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
                m.name = Some(TopicName(StrBytes::from_string(t.to_string())));
                m
            })
            .collect(),
    );
    request.allow_auto_topic_creation = false;
    client.call(ApiKey::Metadata, 12, &request)
}

/// (partition, leader, leader epoch, replicas, ISR).
type PartitionView = (i32, i32, i32, Vec<i32>, Vec<i32>);

/// Each partition of `topic` as node `index` reports it: (partition,
/// leader, leader epoch, replicas, isr), sorted; empty while unknown.
fn partitions_seen(cluster: &Cluster, index: usize, topic: &str) -> Vec<PartitionView> {
    let response = topic_metadata(cluster, index, &[topic]);
    let t = &response.topics[0];
    if t.error_code != 0 {
        return Vec::new();
    }
    let mut out: Vec<_> = t
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.leader_id.0,
                p.leader_epoch,
                p.replica_nodes.iter().map(|r| r.0).collect(),
                p.isr_nodes.iter().map(|r| r.0).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

/// CreateTopics v7 of one topic on node `index`: (error code, message,
/// partitions, replication factor).
fn create_replicated(
    cluster: &Cluster,
    index: usize,
    name: &str,
    partitions: i32,
    replication_factor: i16,
) -> (i16, Option<String>, i32, i16) {
    let mut client = cluster.nodes[index].client();
    let mut t = kafka_protocol::messages::create_topics_request::CreatableTopic::default();
    t.name = TopicName(StrBytes::from_string(name.to_string()));
    t.num_partitions = partitions;
    t.replication_factor = replication_factor;
    let mut req = kafka_protocol::messages::CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 30_000;
    let resp: kafka_protocol::messages::CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &req);
    let r = &resp.topics[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
        r.num_partitions,
        r.replication_factor,
    )
}

/// Polls until every node in `nodes` reports the same `partitions`
/// partitions of `topic`; returns them and how long it took.
fn wait_for_topic(
    cluster: &Cluster,
    nodes: &[usize],
    topic: &str,
    partitions: usize,
) -> (Vec<PartitionView>, Duration) {
    let started = Instant::now();
    loop {
        let views: Vec<_> = nodes
            .iter()
            .map(|&i| partitions_seen(cluster, i, topic))
            .collect();
        if views[0].len() == partitions && views.iter().all(|v| *v == views[0]) {
            return (views[0].clone(), started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nodes {nodes:?} do not agree on {topic}: {views:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn one_record(value: &str) -> Vec<u8> {
    wharf_protocol::batch::build_batch(
        0,
        &[(Some(&b"k"[..]), Some(value.as_bytes()), 1_700_000_000_000)],
        wharf_protocol::compression::Compression::None,
    )
    .unwrap()
}

/// Produce v10 of one record: the partition's response and the response's
/// node endpoints.
fn produce_v10(
    cluster: &Cluster,
    index: usize,
    topic: &str,
    partition: i32,
    value: &str,
) -> (
    kafka_protocol::messages::produce_response::PartitionProduceResponse,
    Vec<kafka_protocol::messages::produce_response::NodeEndpoint>,
) {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let mut client = cluster.nodes[index].client();
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(bytes::Bytes::from(one_record(value)));
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partition_data = vec![p];
    let mut req = kafka_protocol::messages::ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    let resp: kafka_protocol::messages::ProduceResponse = client.call(ApiKey::Produce, 10, &req);
    (
        resp.responses[0].partition_responses[0].clone(),
        resp.node_endpoints,
    )
}

#[test]
fn a_replicated_topic_made_on_one_broker_is_known_to_all_and_led_by_each_in_turn() {
    let cluster = Cluster::start(3);
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));

    // Created through broker 2, six partitions of three replicas.
    let created = Instant::now();
    let (code, message, partitions, rf) = create_replicated(&cluster, 1, "rep", 6, 3);
    assert_eq!((code, partitions, rf), (0, 6, 3), "{message:?}");
    let (seen, took) = wait_for_topic(&cluster, &[0, 1, 2], "rep", 6);
    println!(
        "CreateTopics answered in {:?}; every broker's Metadata showed the topic {took:?} after the answer",
        created.elapsed() - took
    );
    let mut led = std::collections::BTreeMap::new();
    for (index, leader, epoch, mut replicas, mut isr) in seen.clone() {
        replicas.sort_unstable();
        isr.sort_unstable();
        assert_eq!(replicas, vec![1, 2, 3], "partition {index}");
        assert_eq!(isr, vec![1, 2, 3], "partition {index}");
        assert!(
            (1..=3).contains(&leader),
            "partition {index} leader {leader}"
        );
        assert!(epoch >= 0);
        *led.entry(leader).or_insert(0) += 1;
    }
    // Round-robin placement: two leaderships each.
    assert_eq!(
        led.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{seen:?}"
    );

    // More replicas than brokers.
    let (code, _, _, _) = create_replicated(&cluster, 2, "too-many", 1, 4);
    assert_eq!(code, 38, "INVALID_REPLICATION_FACTOR");
    // An existing name, asked of another broker.
    let (code, _, _, _) = create_replicated(&cluster, 0, "rep", 1, 1);
    assert_eq!(code, 36, "TOPIC_ALREADY_EXISTS");

    // Produce to a broker that does not lead: NOT_LEADER_OR_FOLLOWER with
    // the leader (KIP-951); to the leader: stored.
    let (_, leader, epoch, _, _) = seen[0].clone();
    let follower = (1..=3).find(|b| *b != leader).unwrap();
    let (answer, endpoints) = produce_v10(
        &cluster,
        usize::try_from(follower - 1).unwrap(),
        "rep",
        0,
        "x",
    );
    assert_eq!(answer.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(answer.current_leader.leader_id.0, leader);
    assert_eq!(answer.current_leader.leader_epoch, epoch);
    assert_eq!(
        endpoints.iter().map(|e| e.node_id.0).collect::<Vec<_>>(),
        vec![leader]
    );
    assert_eq!(
        endpoints[0].port,
        i32::from(
            cluster.nodes[usize::try_from(leader - 1).unwrap()]
                .addr
                .port()
        )
    );
    let (answer, _) = produce_v10(
        &cluster,
        usize::try_from(leader - 1).unwrap(),
        "rep",
        0,
        "x",
    );
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
    // A consumer's Fetch v11+ may be served by a follower (KIP-392), up to
    // what it has committed; it never answers past its high watermark.
    let mut client = cluster.nodes[usize::try_from(follower - 1).unwrap()].client();
    let from_follower = common::fetch_partition(&mut client, "rep", 0, 0);
    assert_eq!(from_follower.error_code, 0);
    assert!(from_follower.high_watermark <= 1, "{from_follower:?}");
    let mut client = cluster.nodes[usize::try_from(leader - 1).unwrap()].client();
    let fetched = common::fetch_partition(&mut client, "rep", 0, 0);
    assert_eq!(fetched.error_code, 0);
    assert_eq!(fetched.high_watermark, 1);

    // FindCoordinator: every broker names the same coordinator, the leader
    // of the group's __consumer_offsets partition.
    let coordinators: Vec<i32> = (0..3)
        .map(|i| {
            let mut client = cluster.nodes[i].client();
            let started = Instant::now();
            loop {
                let mut req = kafka_protocol::messages::FindCoordinatorRequest::default();
                req.key = StrBytes::from_static_str("the-group");
                let resp: kafka_protocol::messages::FindCoordinatorResponse =
                    client.call(ApiKey::FindCoordinator, 3, &req);
                if resp.error_code == 0 {
                    break resp.node_id.0;
                }
                assert!(started.elapsed() < Duration::from_secs(30), "{resp:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .collect();
    assert!(coordinators.iter().all(|c| *c == coordinators[0]));
    let offsets = partitions_seen(&cluster, 0, "__consumer_offsets");
    let partition =
        wharf_coordinator::partition_for("the-group", i32::try_from(offsets.len()).unwrap());
    let offsets_leader = offsets.iter().find(|p| p.0 == partition).unwrap().1;
    assert_eq!(coordinators[0], offsets_leader);
    // Internal topics get min(3, voters) replicas.
    assert!(offsets.iter().all(|p| p.3.len() == 3));

    // CreatePartitions through broker 1: every broker sees eight.
    let mut client = cluster.nodes[0].client();
    let mut grow =
        kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default();
    grow.name = TopicName(StrBytes::from_static_str("rep"));
    grow.count = 8;
    grow.assignments = None;
    let mut req = kafka_protocol::messages::CreatePartitionsRequest::default();
    req.topics = vec![grow];
    req.timeout_ms = 30_000;
    let resp: kafka_protocol::messages::CreatePartitionsResponse =
        client.call(ApiKey::CreatePartitions, 3, &req);
    assert_eq!(resp.results[0].error_code, 0, "{resp:?}");
    let (seen, _) = wait_for_topic(&cluster, &[0, 1, 2], "rep", 8);
    assert!(seen.iter().all(|p| p.3.len() == 3));
    // Shrinking is refused.
    let mut shrink =
        kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default();
    shrink.name = TopicName(StrBytes::from_static_str("rep"));
    shrink.count = 2;
    shrink.assignments = None;
    req.topics = vec![shrink];
    let resp: kafka_protocol::messages::CreatePartitionsResponse =
        client.call(ApiKey::CreatePartitions, 3, &req);
    assert_eq!(resp.results[0].error_code, 37, "INVALID_PARTITIONS");

    // A config change through broker 3 is seen by broker 2.
    let mut client = cluster.nodes[2].client();
    let mut op =
        kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig::default();
    op.name = StrBytes::from_static_str("retention.ms");
    op.config_operation = 0;
    op.value = Some(StrBytes::from_static_str("123456"));
    let mut resource =
        kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource::default(
        );
    resource.resource_type = 2;
    resource.resource_name = StrBytes::from_static_str("rep");
    resource.configs = vec![op];
    let mut req = kafka_protocol::messages::IncrementalAlterConfigsRequest::default();
    req.resources = vec![resource];
    let resp: kafka_protocol::messages::IncrementalAlterConfigsResponse =
        client.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    assert_eq!(resp.responses[0].error_code, 0, "{resp:?}");
    let mut client = cluster.nodes[1].client();
    let started = Instant::now();
    loop {
        let mut resource =
            kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default();
        resource.resource_type = 2;
        resource.resource_name = StrBytes::from_static_str("rep");
        resource.configuration_keys = Some(vec![StrBytes::from_static_str("retention.ms")]);
        let mut req = kafka_protocol::messages::DescribeConfigsRequest::default();
        req.resources = vec![resource];
        let resp: kafka_protocol::messages::DescribeConfigsResponse =
            client.call(ApiKey::DescribeConfigs, 4, &req);
        let value = resp.results[0].configs[0]
            .value
            .as_ref()
            .map(|v| v.to_string());
        if value.as_deref() == Some("123456") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{resp:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Deleted through broker 3: gone from every broker.
    let mut client = cluster.nodes[2].client();
    let mut del = kafka_protocol::messages::DeleteTopicsRequest::default();
    del.topic_names = vec![TopicName(StrBytes::from_static_str("rep"))];
    del.timeout_ms = 30_000;
    let resp: kafka_protocol::messages::DeleteTopicsResponse =
        client.call(ApiKey::DeleteTopics, 5, &del);
    assert_eq!(resp.responses[0].error_code, 0);
    let started = Instant::now();
    while (0..3).any(|i| !partitions_seen(&cluster, i, "rep").is_empty()) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "rep still listed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CreateTopics v7 of one topic on node `index` with a `timeout_ms`.
fn create_with_timeout(cluster: &Cluster, index: usize, name: &str, timeout_ms: i32) -> i16 {
    let mut client = cluster.nodes[index].client();
    let mut t = kafka_protocol::messages::create_topics_request::CreatableTopic::default();
    t.name = TopicName(StrBytes::from_string(name.to_string()));
    t.num_partitions = 3;
    t.replication_factor = 2;
    let mut req = kafka_protocol::messages::CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = timeout_ms;
    let resp: kafka_protocol::messages::CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &req);
    resp.topics[0].error_code
}

#[test]
fn a_fenced_broker_loses_its_leaderships_and_a_lost_majority_refuses_writes_but_serves_reads() {
    let mut cluster = Cluster::start(3);
    let (controller, _) = cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    let (code, message, _, _) = create_replicated(&cluster, 0, "f", 3, 3);
    assert_eq!(code, 0, "{message:?}");
    let (code, message, _, _) = create_replicated(&cluster, 0, "stray", 1, 3);
    assert_eq!(code, 0, "{message:?}");
    let (before, _) = wait_for_topic(&cluster, &[0, 1, 2], "f", 3);
    wait_for_topic(&cluster, &[0, 1, 2], "stray", 1);

    // kill -9 a broker that leads a partition and is not the controller.
    let (_, victim, old_epoch, _, _) = before.iter().find(|p| p.1 != controller).cloned().unwrap();
    let dead = usize::try_from(victim - 1).unwrap();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    cluster.nodes[dead].stop(false);
    let killed = Instant::now();
    loop {
        let views: Vec<_> = survivors
            .iter()
            .map(|&i| partitions_seen(&cluster, i, "f"))
            .collect();
        let moved = views.iter().all(|v| {
            v.len() == 3
                && v.iter()
                    .all(|p| p.1 != victim && p.1 >= 1 && !p.4.contains(&victim))
        });
        if moved && views[0] == views[1] {
            let moved_to = views[0]
                .iter()
                .find(|p| before.iter().any(|b| b.0 == p.0 && b.1 == victim))
                .unwrap();
            assert!(moved_to.2 > old_epoch, "leader epoch bumped: {moved_to:?}");
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "broker {victim}'s leaderships did not move: {views:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "broker {victim} killed: fenced and its partitions led elsewhere after {:?}",
        killed.elapsed()
    );
    // A topic deleted while it is down...
    let mut client = cluster.nodes[survivors[0]].client();
    let mut del = kafka_protocol::messages::DeleteTopicsRequest::default();
    del.topic_names = vec![TopicName(StrBytes::from_static_str("stray"))];
    del.timeout_ms = 30_000;
    let resp: kafka_protocol::messages::DeleteTopicsResponse =
        client.call(ApiKey::DeleteTopics, 5, &del);
    assert_eq!(resp.responses[0].error_code, 0);
    let stray = cluster.nodes[dead].dir.path().join("stray-0");
    assert!(stray.exists(), "the dead broker's replica is still on disk");
    cluster.nodes[dead].spawn();
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    // ...is removed from its disk when it returns.
    assert!(!stray.exists(), "stray partition left behind");

    // Two of three gone: writes fail (and apply nothing), reads answer.
    let (alive, gone) = (0usize, [1usize, 2]);
    for &i in &gone {
        cluster.nodes[i].stop(false);
    }
    let asked = Instant::now();
    let code = create_with_timeout(&cluster, alive, "during", 3_000);
    assert!(
        code == 7 || code == 41,
        "REQUEST_TIMED_OUT or NOT_CONTROLLER without a majority, got {code}"
    );
    assert!(asked.elapsed() < Duration::from_secs(15));
    assert_eq!(partitions_seen(&cluster, alive, "f").len(), 3);
    for &i in &gone {
        cluster.nodes[i].spawn();
    }
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(60));
    let started = Instant::now();
    loop {
        let code = create_with_timeout(&cluster, 1, "after", 5_000);
        if code == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no creation after the majority returned: {code}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for_topic(&cluster, &[0, 1, 2], "after", 3);
    // The refused creation is on every broker whole, or on none.
    let during: Vec<usize> = (0..3)
        .map(|i| partitions_seen(&cluster, i, "during").len())
        .collect();
    assert!(
        during.iter().all(|n| *n == 0) || during.iter().all(|n| *n == 3),
        "{during:?}"
    );
}

#[test]
fn a_data_directory_of_the_single_node_release_opens_with_its_topics_and_producer_ids() {
    use wharf::broker::metadata_log::{MetadataLog, MetadataRecord, FILE_NAME, MIGRATED_NAME};
    // Records written under the single-node layout: partition directories
    // of plain segments, the topics in metadata.log, no quorum directory.
    let mut broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(
        common::create_topic(&mut client, "legacy", 2).topics[0].error_code,
        0
    );
    for (partition, value) in [(0, "a"), (1, "b"), (0, "c")] {
        let (code, _) = common::produce_batch(&mut client, "legacy", partition, one_record(value));
        assert_eq!(code, 0);
    }
    drop(client);
    broker.stop(true);
    let dir = broker.dir.path().to_path_buf();
    std::fs::remove_dir_all(dir.join("__cluster_metadata-0")).unwrap();
    for p in 0..2 {
        std::fs::remove_file(dir.join(format!("legacy-{p}")).join("partition.metadata")).unwrap();
    }
    let id = uuid::Uuid::new_v4();
    {
        let (mut log, _) = MetadataLog::open(&dir).unwrap();
        for record in [
            MetadataRecord::TopicCreated {
                id: uuid::Uuid::new_v4(),
                name: "gone".into(),
                partitions: 1,
                configs: Default::default(),
            },
            MetadataRecord::TopicCreated {
                id,
                name: "legacy".into(),
                partitions: 2,
                configs: [("retention.ms".to_string(), "86400000".to_string())].into(),
            },
            MetadataRecord::ProducerIdsReserved { end: 7_000 },
        ] {
            log.append(&record).unwrap();
        }
        // A deleted topic stays deleted.
        let gone = match MetadataLog::open(&dir).unwrap().1.first() {
            Some(MetadataRecord::TopicCreated { id, .. }) => *id,
            other => panic!("{other:?}"),
        };
        log.append(&MetadataRecord::TopicDeleted { id: gone })
            .unwrap();
    }

    broker.spawn();
    let mut client = broker.client();
    let mut request = MetadataRequest::default();
    request.topics = None;
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    let names: Vec<String> = response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, vec!["legacy".to_string()]);
    assert_eq!(response.topics[0].topic_id, id);
    assert_eq!(response.topics[0].partitions.len(), 2);
    // The records are where they were.
    let p0 = common::fetch_partition(&mut client, "legacy", 0, 0);
    assert_eq!((p0.error_code, p0.high_watermark), (0, 2));
    let p1 = common::fetch_partition(&mut client, "legacy", 1, 0);
    assert_eq!((p1.error_code, p1.high_watermark), (0, 1));
    // Producer ids continue past the old reservation.
    let mut init = kafka_protocol::messages::InitProducerIdRequest::default();
    init.transactional_id = None;
    init.transaction_timeout_ms = 60_000;
    init.producer_id = (-1).into();
    init.producer_epoch = -1;
    let resp: kafka_protocol::messages::InitProducerIdResponse =
        client.call(ApiKey::InitProducerId, 4, &init);
    assert_eq!(resp.error_code, 0);
    assert!(resp.producer_id.0 >= 7_000, "{}", resp.producer_id.0);
    assert!(!dir.join(FILE_NAME).exists());
    assert!(dir.join(MIGRATED_NAME).exists());

    // And again after a restart, from the quorum alone.
    drop(client);
    broker.restart(true);
    let mut client = broker.client();
    let p0 = common::fetch_partition(&mut client, "legacy", 0, 0);
    assert_eq!((p0.error_code, p0.high_watermark), (0, 2));
}
