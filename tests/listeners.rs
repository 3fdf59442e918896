//! Several named client listeners (`--extra-listeners`): each client is
//! told of the brokers at their addresses on the listener it connected to,
//! as Kafka does for a container's internal and host listeners.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{free_port, Cluster};
use common::{produce_batch, wait_bounded, Client, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// The brokers a Metadata request names, as (id, host, port).
fn advertised_brokers(client: &mut Client) -> Vec<(i32, String, i32)> {
    let mut request = MetadataRequest::default();
    request.topics = Some(Vec::new());
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string(), b.port))
        .collect()
}

/// The group coordinator's address FindCoordinator gives.
fn coordinator(client: &mut Client, group: &str) -> (String, i32) {
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(group.to_string());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &request);
        if response.error_code == 0 {
            return (response.host.to_string(), response.port);
        }
        assert!(
            Instant::now() < deadline,
            "no coordinator: error {}",
            response.error_code
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Connects once the listener at `addr` accepts.
fn connect(addr: SocketAddr) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{addr} never accepted");
        std::thread::sleep(Duration::from_millis(50));
    }
    Client::connect(addr)
}

#[test]
fn each_listener_advertises_the_brokers_at_its_own_addresses() {
    let host_port = free_port();
    let internal = format!("INTERNAL://127.0.0.1:{}", free_port());
    let external = format!("EXTERNAL://127.0.0.1:{host_port}");
    let broker = TestBroker::start_with(&[
        "--listener-name",
        "BROKER",
        "--extra-listeners",
        &format!("{internal},{external}"),
        "--extra-advertised-listeners",
        "EXTERNAL://wharf.example:29092",
    ]);

    // The --listen listener advertises its own address.
    let mut primary = broker.client();
    assert_eq!(
        advertised_brokers(&mut primary),
        vec![(1, "127.0.0.1".to_string(), i32::from(broker.addr.port()))]
    );

    // An extra listener without an advertised address gives its own.
    let internal_addr: SocketAddr = internal.trim_start_matches("INTERNAL://").parse().unwrap();
    let mut client = connect(internal_addr);
    assert_eq!(
        advertised_brokers(&mut client),
        vec![(1, "127.0.0.1".to_string(), i32::from(internal_addr.port()))]
    );

    // One with an advertised address gives that, for Metadata,
    // FindCoordinator and DescribeCluster alike.
    let mut outside = connect(SocketAddr::from(([127, 0, 0, 1], host_port)));
    assert_eq!(
        advertised_brokers(&mut outside),
        vec![(1, "wharf.example".to_string(), 29092)]
    );
    assert_eq!(
        coordinator(&mut outside, "g"),
        ("wharf.example".to_string(), 29092)
    );
    assert_eq!(
        coordinator(&mut primary, "g"),
        ("127.0.0.1".to_string(), i32::from(broker.addr.port()))
    );
    let described: DescribeClusterResponse = outside.call(
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    let brokers: Vec<(String, i32)> = described
        .brokers
        .iter()
        .map(|b| (b.host.to_string(), b.port))
        .collect();
    assert_eq!(brokers, vec![("wharf.example".to_string(), 29092)]);
}

#[test]
fn listener_flags_that_cannot_work_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--extra-listeners", "PLAINTEXT://127.0.0.1:0"],
            "the --listen listener's name",
        ),
        (
            &[
                "--extra-listeners",
                "EXTERNAL://127.0.0.1:0",
                "--extra-advertised-listeners",
                "OTHER://h:1",
            ],
            "OTHER, which is not in --extra-listeners",
        ),
        (
            &[
                "--extra-listeners",
                "EXTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
            ],
            "listener EXTERNAL is given twice",
        ),
    ];
    for (args, expected) in cases {
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_bounded(child, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_cluster_replicates_over_its_named_listener_and_advertises_each_one() {
    let external: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let ports = external.clone();
    let cluster = Cluster::start_with(3, move |id| {
        let port = ports[usize::try_from(id - 1).unwrap()];
        vec![
            "--listener-name".to_string(),
            "REPLICATION".to_string(),
            "--extra-listeners".to_string(),
            format!("EXTERNAL://127.0.0.1:{port}"),
            "--extra-advertised-listeners".to_string(),
            format!("EXTERNAL://broker-{id}.example:{port}"),
        ]
    });
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(60));

    // Through node 1's external listener: every broker at its external
    // address.
    let mut outside = connect(SocketAddr::from(([127, 0, 0, 1], external[0])));
    let mut seen = advertised_brokers(&mut outside);
    seen.sort();
    let expected: Vec<(i32, String, i32)> = (1..=3)
        .map(|id| {
            let port = external[usize::try_from(id - 1).unwrap()];
            (id, format!("broker-{id}.example"), i32::from(port))
        })
        .collect();
    assert_eq!(seen, expected);

    // An RF 3 topic takes acks=all writes: the followers copy the leader
    // over the REPLICATION listener.
    let leader = cluster.create_rf3_topic("named");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut to_leader = cluster.nodes[usize::try_from(leader - 1).unwrap()].client();
    let records = wharf_protocol::batch::build_batch(
        0,
        &[(None, Some(&b"replicated"[..]), 1_700_000_000_000)],
        wharf_protocol::compression::Compression::None,
    )
    .unwrap();
    // The leader may not have applied the new topic yet
    // (UNKNOWN_TOPIC_OR_PARTITION, retriable).
    let answer = loop {
        let answer = produce_batch(&mut to_leader, "named", 0, records.clone());
        if answer.0 != 3 || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answer, (0, 0), "{}", cluster.logs());
}
