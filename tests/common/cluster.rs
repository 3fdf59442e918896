//! Several real `wharf` processes as one cluster on loopback (each its own
//! voter of the metadata quorum).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};

use super::TestBroker;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Cluster {
    pub nodes: Vec<TestBroker>,
}

impl Cluster {
    pub fn start(size: i32) -> Cluster {
        Self::start_with(size, |_| Vec::new())
    }

    /// Like [`Cluster::start`], with `extra(node id)` added to each node's
    /// flags.
    pub fn start_with(size: i32, extra: impl Fn(i32) -> Vec<String>) -> Cluster {
        // Ports are picked free, then bound by the brokers; another test
        // may take one in between. Such a start is tried again on new ports.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start_with(size, &extra) {
                Ok(cluster) => return cluster,
                Err(exit) if exit.contains("Address already in use") && attempt < 5 => {
                    eprintln!("cluster start lost a port race, trying again: {exit}");
                }
                Err(exit) => panic!("{exit}"),
            }
        }
    }

    fn try_start_with(size: i32, extra: &impl Fn(i32) -> Vec<String>) -> Result<Cluster, String> {
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
                let extra = extra(id);
                let mut args = vec![
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
                ];
                args.extend(extra.iter().map(String::as_str));
                TestBroker::try_start_logged(&args)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut cluster = Cluster { nodes };
        // A controller listener is bound just after the client one: a lost
        // race there shows as an exit right after the broker listens.
        std::thread::sleep(Duration::from_millis(200));
        for node in &mut cluster.nodes {
            if let Some(exit) = node.exited() {
                return Err(exit);
            }
        }
        Ok(cluster)
    }

    /// (broker ids, controller id) that node `index` reports in Metadata.
    pub fn view(&self, index: usize) -> (Vec<i32>, i32) {
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
    pub fn wait_for(&self, alive: &[usize], brokers: &[i32], within: Duration) -> (i32, Duration) {
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

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {} ---\n{}", i + 1, n.log()))
            .collect()
    }

    /// Creates `topic` (one partition, three replicas) through node 1 and
    /// waits for it to have a leader and a full ISR; returns the leader.
    pub fn create_rf3_topic(&self, topic: &str) -> i32 {
        let mut client = self.nodes[0].client();
        let mut t = kafka_protocol::messages::create_topics_request::CreatableTopic::default();
        t.name = super::topic_name(topic);
        t.num_partitions = 1;
        t.replication_factor = 3;
        let mut request = kafka_protocol::messages::CreateTopicsRequest::default();
        request.topics = vec![t];
        request.timeout_ms = 30_000;
        let created: kafka_protocol::messages::CreateTopicsResponse =
            client.call(ApiKey::CreateTopics, 7, &request);
        assert_eq!(created.topics[0].error_code, 0, "{created:?}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut request = MetadataRequest::default();
            let mut m = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
            m.name = Some(super::topic_name(topic));
            request.topics = Some(vec![m]);
            let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
            let p = response.topics[0].partitions.first();
            if let Some(p) = p.filter(|p| p.leader_id.0 > 0 && p.isr_nodes.len() == 3) {
                return p.leader_id.0;
            }
            assert!(
                Instant::now() < deadline,
                "{topic}: no leader with a full ISR\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
