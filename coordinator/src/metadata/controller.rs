//! What the controller decides, as pure functions of the image (and, for
//! broker liveness, the controller's [`BrokerSessions`](super::brokers)).
//!
//! Each decision returns the records to propose; nothing here changes the
//! image. The active controller proposes them to the metadata log and
//! applies them to its own working image before it decides the next
//! request (as Kafka's controller replays its own records into its
//! in-memory state right away), so that two requests in a row see each
//! other's effects even before the records are committed.

use kafka_protocol::ResponseError;

use super::image::MetadataImage;

/// A refused request: Kafka's error code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ControllerError {
    pub code: ResponseError,
    pub message: String,
}

impl ControllerError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        ControllerError {
            code,
            message: message.into(),
        }
    }
}

/// The broker settings the controller's decisions depend on.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `default.replication.factor`: used when CreateTopics asks for -1.
    pub default_replication_factor: i16,
    /// `num.partitions`: used when CreateTopics asks for -1 partitions.
    pub default_num_partitions: i32,
    /// `broker.session.timeout.ms`: a broker with no heartbeat for this long
    /// is fenced.
    pub broker_session_timeout_ms: i64,
    /// `unclean.leader.election.enable` from the controller's own settings,
    /// used when neither the topic nor the cluster-wide broker config in the
    /// image sets it.
    pub unclean_leader_election_enable: bool,
    /// The cluster id brokers must register with.
    pub cluster_id: String,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            default_replication_factor: 1,
            default_num_partitions: 1,
            broker_session_timeout_ms: 9_000,
            unclean_leader_election_enable: false,
            cluster_id: String::new(),
        }
    }
}

/// The topic config key that allows unclean leader election.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

impl ControllerConfig {
    /// Whether a leader may be elected from outside the ISR of `topic`: the
    /// topic's override, else the cluster-wide broker default in the image,
    /// else the controller's setting. Values parse as Java's
    /// `Boolean.parseBoolean` does ("true" in any case is true).
    pub fn unclean_election_enabled(&self, image: &MetadataImage, topic: &str) -> bool {
        let cluster_default = image
            .configs(&super::image::ConfigResource::Broker(String::new()))
            .and_then(|c| c.get(UNCLEAN_LEADER_ELECTION_ENABLE))
            .map(String::as_str);
        match image
            .topic_config(topic, UNCLEAN_LEADER_ELECTION_ENABLE)
            .or(cluster_default)
        {
            Some(value) => value.eq_ignore_ascii_case("true"),
            None => self.unclean_leader_election_enable,
        }
    }
}
