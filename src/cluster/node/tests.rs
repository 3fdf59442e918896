//! In-process tests of metadata writes from any node: three `Quorum`s and
//! their `ClusterNode`s on 127.0.0.1 port-0 listeners with temporary
//! directories. Every wait is bounded; the runtime's end stops the tasks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::CreateTopicsRequest;
use tempfile::TempDir;
use tokio::net::TcpListener;
use wharf_coordinator::metadata::topics::NewTopic;
use wharf_coordinator::metadata::ConfigResource;

use super::*;
use crate::cluster::quorum::QuorumConfig;

/// A bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(30);

struct Nodes {
    _dirs: Vec<TempDir>,
    _stop: watch::Sender<bool>,
    voters: BTreeMap<i32, String>,
    nodes: BTreeMap<i32, Arc<ClusterNode>>,
}

impl Nodes {
    /// Starts three voters with their nodes and waits until every node
    /// agrees on a leader and every broker is registered and unfenced.
    async fn start() -> Nodes {
        let mut listeners = Vec::new();
        for id in 1..=3 {
            listeners.push((id, TcpListener::bind("127.0.0.1:0").await.unwrap()));
        }
        let voters: BTreeMap<i32, String> = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
            .collect();
        let (stop_tx, stop) = watch::channel(false);
        let mut dirs = Vec::new();
        let mut nodes = BTreeMap::new();
        for (id, listener) in listeners {
            let dir = tempfile::tempdir().unwrap();
            let mut config = QuorumConfig::new(id, voters.clone(), "test-cluster", dir.path());
            config.election_timeout = Duration::from_millis(400);
            config.heartbeat_interval = Duration::from_millis(80);
            config.write_timeout = Duration::from_secs(5);
            let quorum = Quorum::start(config, Some(listener)).await.unwrap();
            let settings = NodeSettings {
                node_id: id,
                cluster_id: "test-cluster".to_string(),
                listeners: vec![crate::broker::AdvertisedListener {
                    name: "PLAINTEXT".to_string(),
                    host: "127.0.0.1".to_string(),
                    port: 9092 + id,
                }],
                rack: None,
                voters: voters.clone(),
                heartbeat_interval: Duration::from_millis(100),
                leader_rebalance_interval: None,
                controller: ControllerConfig {
                    cluster_id: "test-cluster".to_string(),
                    default_replication_factor: 3,
                    ..ControllerConfig::default()
                },
            };
            nodes.insert(
                id,
                ClusterNode::start(settings, Arc::new(quorum), stop.clone()),
            );
            dirs.push(dir);
        }
        let cluster = Nodes {
            _dirs: dirs,
            _stop: stop_tx,
            voters,
            nodes,
        };
        cluster
            .converge("three live brokers", |image| {
                image.alive_brokers().count() == 3
            })
            .await;
        cluster
    }

    /// The agreed leader and a follower.
    async fn leader_and_follower(&self) -> (i32, i32) {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen: Vec<Option<i32>> = self.nodes.values().map(|n| n.controller_id()).collect();
            if let Some(Some(l)) = seen.first().copied() {
                if seen.iter().all(|s| *s == Some(l)) {
                    let follower = self.nodes.keys().copied().find(|id| *id != l).unwrap();
                    return (l, follower);
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every node's image satisfies `pred`.
    async fn converge(&self, what: &str, pred: impl Fn(&ImageSnapshot) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !self.nodes.values().all(|n| pred(&n.image())) {
            assert!(Instant::now() < deadline, "images did not converge: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.to_string(),
        num_partitions: partitions,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: vec![("retention.ms".to_string(), Some("60000".to_string()))],
    }
}

fn partitions(image: &ImageSnapshot, topic: &str) -> usize {
    image.topic_by_name(topic).map_or(0, |t| t.partitions.len())
}

fn topic_configs(image: &ImageSnapshot, topic: &str) -> BTreeMap<String, String> {
    image
        .configs(&ConfigResource::Topic(topic.to_string()))
        .cloned()
        .unwrap_or_default()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_writes_from_a_follower_reach_every_image() {
    let cluster = Nodes::start().await;
    let (leader, follower) = cluster.leader_and_follower().await;
    let node = &cluster.nodes[&follower];

    // CreateTopics, three at once from the same node (each call takes or
    // opens its own connection).
    let (a, b, c) = tokio::join!(
        node.create_topics(vec![new_topic("orders", 3)], false),
        node.create_topics(vec![new_topic("payments", 1)], false),
        node.create_topics(
            vec![new_topic("refunds", 2), new_topic("bad name!", 1)],
            false
        ),
    );
    let orders = a[0].1.clone().unwrap();
    assert_eq!((orders.num_partitions, orders.replication_factor), (3, 3));
    assert_ne!(orders.topic_id, Uuid::nil());
    b[0].1.clone().unwrap();
    assert_eq!(c[0].0, "refunds");
    c[0].1.clone().unwrap();
    assert_eq!(
        c[1].1.as_ref().unwrap_err().code,
        ResponseError::InvalidTopicException
    );
    let again = node
        .create_topics(vec![new_topic("orders", 1)], false)
        .await;
    assert_eq!(
        again[0].1.as_ref().unwrap_err().code,
        ResponseError::TopicAlreadyExists
    );
    cluster
        .converge("orders created", |i| {
            partitions(i, "orders") == 3
                && partitions(i, "payments") == 1
                && partitions(i, "refunds") == 2
                && i.topic_id("orders") == Some(orders.topic_id)
                && topic_configs(i, "orders") == map(&[("retention.ms", "60000")])
        })
        .await;

    // validate_only changes nothing.
    let checked = node.create_topics(vec![new_topic("dry", 1)], true).await;
    checked[0].1.clone().unwrap();

    // CreatePartitions.
    node.create_partitions("orders".to_string(), 5, None, false)
        .await
        .unwrap();
    let err = node
        .create_partitions("orders".to_string(), 2, None, false)
        .await
        .unwrap_err();
    assert_eq!(err.code, ResponseError::InvalidPartitions);
    let assigned = vec![vec![1, 2, 3]];
    node.create_partitions("payments".to_string(), 2, Some(assigned), false)
        .await
        .unwrap();
    cluster
        .converge("partitions added", |i| {
            partitions(i, "orders") == 5 && partitions(i, "payments") == 2
        })
        .await;

    // Config replacement: new keys set, absent ones deleted.
    let first = map(&[("cleanup.policy", "compact"), ("retention.ms", "1000")]);
    node.set_topic_configs("orders".to_string(), first.clone())
        .await
        .unwrap();
    cluster
        .converge("configs set", |i| topic_configs(i, "orders") == first)
        .await;
    let second = map(&[("segment.bytes", "1048576")]);
    node.set_topic_configs("orders".to_string(), second.clone())
        .await
        .unwrap();
    cluster
        .converge("configs replaced", |i| topic_configs(i, "orders") == second)
        .await;
    let err = node
        .set_topic_configs("missing".to_string(), second.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code, ResponseError::UnknownTopicOrPartition);

    // Producer id blocks, from the follower and from the leader.
    let from_follower = node.allocate_producer_ids().await.unwrap();
    let from_leader = cluster.nodes[&leader]
        .allocate_producer_ids()
        .await
        .unwrap();
    assert_eq!(from_follower, (0, 1000));
    assert_eq!(from_leader, (1000, 1000));
    cluster
        .converge("producer ids taken", |i| i.next_producer_id() == 2000)
        .await;

    // DeleteTopics.
    let deleted = node
        .delete_topics(vec!["orders".to_string(), "missing".to_string()])
        .await;
    assert_eq!(deleted[0].1.clone().unwrap(), orders.topic_id);
    assert_eq!(
        deleted[1].1.as_ref().unwrap_err().code,
        ResponseError::UnknownTopicOrPartition
    );
    cluster
        .converge("orders deleted", |i| {
            i.topic_by_name("orders").is_none()
                && i.topic_by_name("payments").is_some()
                && i.topic_by_name("dry").is_none()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_listener_answers_create_topics_on_the_leader_only() {
    let cluster = Nodes::start().await;
    let (leader, follower) = cluster.leader_and_follower().await;
    let mut topic = CreatableTopic::default();
    topic.name = TopicName(StrBytes::from_static_str("direct"));
    topic.num_partitions = 2;
    topic.replication_factor = 3;
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = 10_000;

    let options = || ConnectionOptions {
        client_id: "test".to_string(),
        ..ConnectionOptions::default()
    };
    let mut to_follower = Connection::connect(&cluster.voters[&follower], options())
        .await
        .unwrap();
    let response = to_follower.call(&request).await.unwrap();
    assert_eq!(
        response.topics[0].error_code,
        ResponseError::NotController.code()
    );
    assert!(response.topics[0].error_message.is_some());

    let mut to_leader = Connection::connect(&cluster.voters[&leader], options())
        .await
        .unwrap();
    let response = to_leader.call(&request).await.unwrap();
    let result = &response.topics[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    assert_eq!(result.name.0.as_str(), "direct");
    assert_eq!((result.num_partitions, result.replication_factor), (2, 3));
    assert_ne!(result.topic_id, Uuid::nil());
    cluster
        .converge("direct created", |i| {
            i.topic_id("direct") == Some(result.topic_id) && partitions(i, "direct") == 2
        })
        .await;

    // The same again: TOPIC_ALREADY_EXISTS with Kafka's message.
    let response = to_leader.call(&request).await.unwrap();
    assert_eq!(
        response.topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_started_while_the_leader_dies_is_retried_on_the_next_leader() {
    let mut cluster = Nodes::start().await;
    let (leader, follower) = cluster.leader_and_follower().await;
    let dead = cluster.nodes.remove(&leader).unwrap();
    dead.quorum().stop_raft().await;
    let started = Instant::now();
    // The follower still names the dead leader for a while: the first
    // attempts get NOT_CONTROLLER or a failed call, then no leader, then
    // the new one.
    let results = cluster.nodes[&follower]
        .create_topics(vec![new_topic("after-failover", 1)], false)
        .await;
    let created = results[0].1.clone().unwrap();
    assert!(started.elapsed() < CONTROLLER_CALL_TIMEOUT);
    let new_leader = cluster.nodes[&follower].controller_id();
    assert!(new_leader.is_some_and(|l| l != leader), "{new_leader:?}");
    cluster
        .converge("created after failover", |i| {
            i.topic_id("after-failover") == Some(created.topic_id)
        })
        .await;
    let block = cluster.nodes[&follower].allocate_producer_ids().await;
    assert_eq!(block.unwrap().1, 1000);
}
