//! Several real `wharf` processes as one cluster on loopback: the metadata
//! quorum, broker registration and heartbeats, controller failover and
//! fencing, and the start-up refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::TestBroker;
use kafka_protocol::messages::{
    describe_quorum_request, ApiKey, DescribeQuorumRequest, DescribeQuorumResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    nodes: Vec<TestBroker>,
}

impl Cluster {
    fn start(size: i32) -> Cluster {
        let controller_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let voters = controller_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (1..=size)
            .map(|id| {
                let index = usize::try_from(id - 1).unwrap();
                let node_id = id.to_string();
                let listen = format!("127.0.0.1:{}", controller_ports[index]);
                TestBroker::start_logged(&[
                    "--node-id",
                    &node_id,
                    "--controller-listen",
                    &listen,
                    "--controller-quorum-voters",
                    &voters,
                    "--broker-heartbeat-interval-ms",
                    "300",
                    "--broker-session-timeout-ms",
                    "2000",
                ])
            })
            .collect();
        Cluster { nodes }
    }

    /// (broker ids, controller id) that node `index` reports in Metadata.
    fn view(&self, index: usize) -> (Vec<i32>, i32) {
        let mut client = self.nodes[index].client();
        let mut request = MetadataRequest::default();
        request.topics = None;
        let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
        let mut ids: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
        ids.sort_unstable();
        (ids, response.controller_id.0)
    }

    /// Polls until every node in `alive` reports `brokers` and one
    /// controller among them; the controller and how long it took.
    fn wait_for(&self, alive: &[usize], brokers: &[i32], within: Duration) -> (i32, Duration) {
        let started = Instant::now();
        loop {
            let views: Vec<_> = alive.iter().map(|&i| self.view(i)).collect();
            let controller = views[0].1;
            if views
                .iter()
                .all(|(ids, c)| ids == brokers && *c == controller && brokers.contains(c))
            {
                return (controller, started.elapsed());
            }
            assert!(
                started.elapsed() < within,
                "nodes {alive:?} did not all report brokers {brokers:?} with one controller: {views:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {} ---\n{}", i + 1, n.log()))
            .collect()
    }
}

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
fn ten_controller_kills_in_a_row_leave_one_cluster_with_every_voter_caught_up() {
    let mut cluster = Cluster::start(3);
    let mut failovers = Vec::new();
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
        cluster.nodes[dead].spawn();
    }
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
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
    println!(
        "10 controller kills: failover min {:?}, median {:?}, max {:?}",
        failovers[0], failovers[5], failovers[9]
    );
}
