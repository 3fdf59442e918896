//! A client of a whole cluster: bootstraps from a list of addresses, learns
//! the brokers from Metadata, sends each request to the broker that must
//! answer it (a partition's leader, the controller, a group's coordinator)
//! and retries with a bounded backoff when leadership or coordination moved.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    DescribeClusterRequest, FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::{ClientError, Connection, ConnectionOptions};

/// How often and how patiently an operation is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts of an operation in all (the first one included).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Rounds over the bootstrap list before giving up on reaching the cluster.
    pub bootstrap_rounds: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 12,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            bootstrap_rounds: 3,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A broker as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, with an IPv6 host in brackets.
    pub fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host:port[,host:port...]` into addresses.
pub fn parse_bootstrap(list: &str) -> Result<Vec<String>, ClientError> {
    let addrs: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    if addrs.is_empty() {
        return Err(ClientError::Invalid(
            "--bootstrap-server needs at least one host:port".to_string(),
        ));
    }
    for addr in &addrs {
        let port = addr.rsplit_once(':').map(|(_, p)| p);
        if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
            return Err(ClientError::Invalid(format!(
                "bootstrap server {addr:?} is not host:port"
            )));
        }
    }
    Ok(addrs)
}

/// Connections to the brokers of one cluster, opened as needed.
#[derive(Debug)]
pub struct ClusterClient {
    bootstrap: Vec<String>,
    options: ConnectionOptions,
    retry: RetryPolicy,
    /// A connection for requests any broker may answer (made to a bootstrap
    /// address, or to a known broker once the bootstrap ones are gone).
    any: Option<Connection>,
    /// Connections to brokers by node id, for requests one broker must answer.
    nodes: HashMap<i32, Connection>,
    /// The brokers the last Metadata listed.
    brokers: BTreeMap<i32, BrokerInfo>,
    controller_id: i32,
    cluster_id: Option<String>,
}

impl ClusterClient {
    /// Connects to the first address of `bootstrap` that answers (trying
    /// them all `retry.bootstrap_rounds` times) and learns the brokers.
    pub async fn connect(
        bootstrap: Vec<String>,
        options: ConnectionOptions,
        retry: RetryPolicy,
    ) -> Result<Self, ClientError> {
        let mut client = Self {
            bootstrap,
            options,
            retry,
            any: None,
            nodes: HashMap::new(),
            brokers: BTreeMap::new(),
            controller_id: -1,
            cluster_id: None,
        };
        client.metadata(Some(&[])).await?;
        Ok(client)
    }

    /// The brokers the last Metadata listed, by id.
    pub fn brokers(&self) -> &BTreeMap<i32, BrokerInfo> {
        &self.brokers
    }

    /// The controller id the last Metadata named (-1 if none).
    pub fn metadata_controller_id(&self) -> i32 {
        self.controller_id
    }

    /// The cluster id the last Metadata named.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Runs `op` until it succeeds, fails for good, or has used the retry
    /// policy's attempts. Between attempts it waits (bounded exponential
    /// backoff) and refreshes the list of brokers, so that a retried request
    /// reaches the new leader or coordinator.
    pub async fn with_retries<T>(
        &mut self,
        mut op: impl AsyncFnMut(&mut ClusterClient) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut retry = 0u32;
        loop {
            match op(self).await {
                Ok(value) => return Ok(value),
                Err(e) if e.is_retriable_after_refresh() && retry + 1 < self.retry.attempts => {
                    retry += 1;
                    let wait = self.retry.backoff(retry);
                    tracing::debug!("retrying in {wait:?} after: {e}");
                    tokio::time::sleep(wait).await;
                    if let Err(e) = self.metadata(Some(&[])).await {
                        tracing::debug!("metadata refresh failed: {e}");
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Metadata for `topics` (`None`: every topic; `Some(&[])`: none, just
    /// the brokers), from any broker, never auto-creating topics. Updates
    /// the known brokers, controller and cluster id.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<MetadataResponse, ClientError> {
        let mut request = MetadataRequest::default();
        request.allow_auto_topic_creation = false;
        request.topics = topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    let mut t = MetadataRequestTopic::default();
                    t.name = Some(TopicName(StrBytes::from_string(n.clone())));
                    t
                })
                .collect()
        });
        let response = self.call_any(&request).await?;
        ClientError::check(response.error_code, None, || {
            "metadata request failed".to_string()
        })?;
        if !response.brokers.is_empty() {
            self.brokers = response
                .brokers
                .iter()
                .map(|b| {
                    let info = BrokerInfo {
                        id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    };
                    (info.id, info)
                })
                .collect();
            // Connections to brokers that left the cluster go.
            let brokers = &self.brokers;
            self.nodes.retain(|id, _| brokers.contains_key(id));
        }
        self.controller_id = response.controller_id.0;
        self.cluster_id = response.cluster_id.as_ref().map(|c| c.to_string());
        Ok(response)
    }

    /// The broker the cluster names as its controller: DescribeCluster's
    /// answer when the broker serves it, else Metadata's. `None` when no
    /// known broker is the controller (the caller then asks any broker,
    /// which forwards to the controller).
    pub async fn controller(&mut self) -> Result<Option<i32>, ClientError> {
        let serves_describe_cluster = self
            .any_connection()
            .await?
            .version_of::<DescribeClusterRequest>()
            .is_some();
        let id = if serves_describe_cluster {
            let response = self.call_any(&DescribeClusterRequest::default()).await?;
            ClientError::check(
                response.error_code,
                response.error_message.as_deref(),
                || "could not describe the cluster".to_string(),
            )?;
            response.controller_id.0
        } else {
            self.metadata(Some(&[])).await?.controller_id.0
        };
        Ok((id >= 0 && self.brokers.contains_key(&id)).then_some(id))
    }

    /// Sends `request` to the controller (or to any broker if none is known).
    pub async fn call_controller<R: Request>(
        &mut self,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        match self.controller().await? {
            Some(id) => self.call_node(id, request).await,
            None => self.call_any(request).await,
        }
    }

    /// The node id of the coordinator of consumer group `group`
    /// (FindCoordinator). Coordinator errors come back as broker errors,
    /// retriable ones among them.
    pub async fn coordinator(&mut self, group: &str) -> Result<i32, ClientError> {
        let version = self
            .any_connection()
            .await?
            .version_of::<FindCoordinatorRequest>()
            .unwrap_or(0);
        let mut request = FindCoordinatorRequest::default();
        request.key_type = 0;
        if version >= 4 {
            request.coordinator_keys = vec![StrBytes::from_string(group.to_string())];
        } else {
            request.key = StrBytes::from_string(group.to_string());
        }
        let response = self.call_any(&request).await?;
        let (node, host, port, code, message) = if version >= 4 {
            let c = response.coordinators.first().ok_or_else(|| {
                ClientError::Invalid(format!("no coordinator in the answer for group '{group}'"))
            })?;
            (
                c.node_id.0,
                c.host.to_string(),
                c.port,
                c.error_code,
                c.error_message.as_ref().map(|m| m.to_string()),
            )
        } else {
            (
                response.node_id.0,
                response.host.to_string(),
                response.port,
                response.error_code,
                response.error_message.as_ref().map(|m| m.to_string()),
            )
        };
        ClientError::check(code, message.as_deref(), || {
            format!("could not find the coordinator of group '{group}'")
        })?;
        self.brokers.entry(node).or_insert(BrokerInfo {
            id: node,
            host,
            port,
            rack: None,
        });
        Ok(node)
    }

    /// Sends `request` to any broker.
    pub async fn call_any<R: Request>(&mut self, request: &R) -> Result<R::Response, ClientError> {
        let result = self.any_connection().await?.call(request).await;
        if result.as_ref().is_err_and(ClientError::is_retriable) {
            self.any = None;
        }
        result
    }

    /// Sends `request` to broker `node`.
    pub async fn call_node<R: Request>(
        &mut self,
        node: i32,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let result = self.node_connection(node).await?.call(request).await;
        if result.as_ref().is_err_and(ClientError::is_retriable) {
            self.nodes.remove(&node);
        }
        result
    }

    /// Like [`ClusterClient::call_node`], at version `max` at most.
    pub async fn call_node_capped<R: Request>(
        &mut self,
        node: i32,
        request: &R,
        max: i16,
    ) -> Result<R::Response, ClientError> {
        let result = self
            .node_connection(node)
            .await?
            .call_capped(request, max)
            .await;
        if result.as_ref().is_err_and(ClientError::is_retriable) {
            self.nodes.remove(&node);
        }
        result
    }

    /// The connection to broker `node`, opened if need be.
    pub async fn node_connection(&mut self, node: i32) -> Result<&mut Connection, ClientError> {
        if !self.nodes.contains_key(&node) {
            if !self.brokers.contains_key(&node) {
                self.metadata(Some(&[])).await?;
            }
            let info = self
                .brokers
                .get(&node)
                .cloned()
                .ok_or(ClientError::Broker {
                    context: format!("broker {node} is not in the cluster's metadata"),
                    code: 5,
                    message: None,
                })?;
            let connection = Connection::connect(&info.addr(), self.options.clone()).await?;
            self.nodes.insert(node, connection);
        }
        self.nodes
            .get_mut(&node)
            .ok_or_else(|| ClientError::Invalid(format!("no connection to broker {node}")))
    }

    /// Forgets the connection to `node` (after it failed mid-conversation).
    pub fn disconnect(&mut self, node: i32) {
        self.nodes.remove(&node);
    }

    /// The connection for requests any broker may answer: the one in use,
    /// or a new one to the first bootstrap address (then known broker) that
    /// answers, trying them all a few rounds with a backoff in between.
    pub async fn any_connection(&mut self) -> Result<&mut Connection, ClientError> {
        if self.any.is_none() {
            let connection = self.open_any().await?;
            self.any = Some(connection);
        }
        self.any
            .as_mut()
            .ok_or_else(|| ClientError::Invalid("no connection to the cluster".to_string()))
    }

    async fn open_any(&mut self) -> Result<Connection, ClientError> {
        let mut candidates = self.bootstrap.clone();
        for broker in self.brokers.values() {
            let addr = broker.addr();
            if !candidates.contains(&addr) {
                candidates.push(addr);
            }
        }
        let mut last = String::from("no address to try");
        for round in 0..self.retry.bootstrap_rounds.max(1) {
            if round > 0 {
                tokio::time::sleep(self.retry.backoff(round)).await;
            }
            for addr in &candidates {
                match Connection::connect(addr, self.options.clone()).await {
                    Ok(connection) => return Ok(connection),
                    Err(e) => {
                        tracing::debug!("bootstrap {addr}: {e}");
                        last = e.to_string();
                    }
                }
            }
        }
        Err(ClientError::Unreachable {
            bootstrap: self.bootstrap.join(","),
            last,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(100));
        assert_eq!(policy.backoff(2), Duration::from_millis(200));
        assert_eq!(policy.backoff(4), Duration::from_millis(800));
        assert_eq!(policy.backoff(5), Duration::from_secs(1));
        assert_eq!(policy.backoff(60), Duration::from_secs(1));
    }

    #[test]
    fn a_bootstrap_list_is_split_and_checked() {
        assert_eq!(
            parse_bootstrap("a:1, b:2,").unwrap(),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert!(parse_bootstrap("").is_err());
        assert!(parse_bootstrap("localhost").is_err());
        assert!(parse_bootstrap("localhost:http").is_err());
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        let b = BrokerInfo {
            id: 1,
            host: "::1".into(),
            port: 9092,
            rack: None,
        };
        assert_eq!(b.addr(), "[::1]:9092");
    }

    #[tokio::test]
    async fn an_unreachable_bootstrap_list_fails_after_a_bounded_retry() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = std::time::Instant::now();
        let err = ClusterClient::connect(
            vec![format!("127.0.0.1:{port}")],
            ConnectionOptions::default(),
            RetryPolicy::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("no broker reachable"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
