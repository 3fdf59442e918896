//! This process as a member of the cluster: its voter in the metadata
//! quorum, the controller it runs when it leads, and the broker's
//! registration and heartbeats.
//!
//! Every `wharf serve` runs a [`ClusterNode`]: without
//! `--controller-quorum-voters` it is the single voter of its own quorum.
//! The broker registers with the active controller (BrokerRegistration) and
//! then heartbeats every `--broker-heartbeat-interval-ms`
//! (BrokerHeartbeat), both over the controller listener in Kafka's own
//! request formats, or by a direct call when this node is the controller.
//! The controller fences a broker whose heartbeats stop for
//! `--broker-session-timeout-ms`; Metadata and DescribeCluster list the
//! brokers the image shows alive.
//!
//! Metadata writes (CreateTopics, DeleteTopics, CreatePartitions, topic
//! configs, producer id blocks) reach the active controller from any node
//! the same way; see [`admin`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::broker_registration_request::{self, Listener};
use kafka_protocol::messages::AlterUserScramCredentialsRequest;
use kafka_protocol::messages::UpdateFeaturesRequest;
use kafka_protocol::messages::{
    describe_quorum_request, describe_quorum_response, AllocateProducerIdsRequest,
    AlterPartitionRequest, ApiKey, ApiVersionsResponse, BrokerHeartbeatRequest,
    BrokerHeartbeatResponse, BrokerRegistrationRequest, BrokerRegistrationResponse,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeQuorumRequest,
    DescribeQuorumResponse, IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, ElectLeadersRequest};
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use uuid::Uuid;
use wharf_client::{Connection, ConnectionOptions};
use wharf_coordinator::metadata::brokers::{HeartbeatRequest, RegistrationRequest};
use wharf_coordinator::metadata::features;
use wharf_coordinator::metadata::records::{BrokerEndpoint, BrokerFeature};
use wharf_coordinator::metadata::{ControllerConfig, ControllerError, ImageSnapshot};

use super::controller::Controller;
use super::quorum::{ControllerApis, Quorum};
use crate::broker::AdvertisedListener;

pub mod admin;

pub use admin::{CONTROLLER_CALL_TIMEOUT, RETRY_BACKOFF};

/// What the node needs to know about this broker.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub node_id: i32,
    pub cluster_id: String,
    /// The client listeners this broker registers, the inter-broker one
    /// first.
    pub listeners: Vec<AdvertisedListener>,
    pub rack: Option<String>,
    /// The quorum's voters and their controller listeners.
    pub voters: BTreeMap<i32, String>,
    pub heartbeat_interval: Duration,
    pub controller: ControllerConfig,
    /// How often the active controller moves leadership back to preferred
    /// replicas (`auto.leader.rebalance.enable` with
    /// `leader.imbalance.check.interval.seconds`); `None`: never.
    pub leader_rebalance_interval: Option<Duration>,
}

/// A broker as Metadata and DescribeCluster list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// This process's part in the cluster.
pub struct ClusterNode {
    settings: NodeSettings,
    quorum: Arc<Quorum>,
    controller: Arc<Controller<Quorum>>,
    incarnation: Uuid,
    /// The broker epoch of this broker's registration, -1 before one.
    epoch: AtomicI64,
    /// A connection to the active controller kept between metadata writes:
    /// a write takes it out (concurrent ones open their own) and puts it
    /// back, so no lock is held across a call.
    admin_client: std::sync::Mutex<Option<(i32, Connection)>>,
    /// How long a metadata write keeps looking for the active controller.
    call_timeout: Duration,
    /// Set once a controlled shutdown began: heartbeats ask to shut down.
    shutting_down: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("node_id", &self.settings.node_id)
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ClusterNode {
    /// Wraps a started quorum, installs the controller's Kafka APIs on its
    /// listener and starts the registration, heartbeat and fencing tasks,
    /// which end when `stop` flips to true.
    pub fn start(
        settings: NodeSettings,
        quorum: Arc<Quorum>,
        stop: watch::Receiver<bool>,
    ) -> Arc<ClusterNode> {
        let controller = Arc::new(Controller::new(
            quorum.clone(),
            settings.controller.clone(),
            Arc::new(crate::broker::retention::now_ms),
        ));
        let node = Arc::new(ClusterNode {
            settings,
            quorum,
            controller,
            incarnation: Uuid::new_v4(),
            epoch: AtomicI64::new(-1),
            admin_client: std::sync::Mutex::new(None),
            call_timeout: CONTROLLER_CALL_TIMEOUT,
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        });
        node.quorum.set_controller_apis(Arc::new(Apis {
            controller: node.controller.clone(),
            quorum: node.quorum.clone(),
        }));
        tokio::spawn(lifecycle(node.clone(), stop.clone()));
        tokio::spawn(fencer(node.clone(), stop));
        node
    }

    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    pub fn image(&self) -> ImageSnapshot {
        self.quorum.image()
    }

    /// The quorum leader: the active controller's node id.
    pub fn controller_id(&self) -> Option<i32> {
        self.quorum.leader().map(|(id, _)| id)
    }

    /// Brokers registered, unfenced and reachable on `listener`.
    pub fn live_brokers(&self, listener: &str) -> Vec<LiveBroker> {
        let image = self.image();
        image
            .alive_brokers()
            .filter_map(|b| {
                let endpoint = b.endpoints.iter().find(|e| e.name == listener)?;
                Some(LiveBroker {
                    id: b.id,
                    host: endpoint.host.clone(),
                    port: i32::from(endpoint.port),
                    rack: b.rack.clone(),
                })
            })
            .collect()
    }

    /// This broker's registration epoch, once registered.
    pub fn broker_epoch(&self) -> Option<i64> {
        Some(self.epoch.load(Ordering::Acquire)).filter(|e| *e >= 0)
    }

    fn registration(&self) -> BrokerRegistrationRequest {
        let listeners = self
            .settings
            .listeners
            .iter()
            .map(|l| {
                let mut listener = Listener::default();
                listener.name = StrBytes::from_string(l.name.clone());
                listener.host = StrBytes::from_string(l.host.clone());
                listener.port = u16::try_from(l.port).unwrap_or(0);
                // PLAINTEXT: the only security protocol served.
                listener.security_protocol = 0;
                listener
            })
            .collect();
        let mut request = BrokerRegistrationRequest::default();
        request.broker_id = self.settings.node_id.into();
        request.cluster_id = StrBytes::from_string(self.settings.cluster_id.clone());
        request.incarnation_id = self.incarnation;
        request.listeners = listeners;
        request.rack = self.settings.rack.clone().map(StrBytes::from_string);
        request.features = features::broker_features()
            .into_iter()
            .map(|f| {
                let mut out = broker_registration_request::Feature::default();
                out.name = StrBytes::from_string(f.name);
                out.min_supported_version = f.min_supported_version;
                out.max_supported_version = f.max_supported_version;
                out
            })
            .collect();
        request
    }

    fn heartbeat(&self, epoch: i64) -> BrokerHeartbeatRequest {
        let mut request = BrokerHeartbeatRequest::default();
        request.broker_id = self.settings.node_id.into();
        request.broker_epoch = epoch;
        let applied = self.quorum.describe().high_watermark;
        request.current_metadata_offset = i64::try_from(applied).unwrap_or(i64::MAX);
        request.want_shut_down = self.shutting_down.load(Ordering::Acquire);
        request
    }

    /// Kafka's controlled shutdown: heartbeats asking to shut down until
    /// the controller answers that this broker may stop, which it does
    /// once the partitions this broker led have other leaders (from their
    /// ISR) and this broker has seen that change. Gives up after `within`
    /// (no controller, no other replica); false then. A lone voter has no
    /// one to hand its partitions to and stops at once.
    pub async fn controlled_shutdown(&self, within: Duration) -> bool {
        if self.settings.voters.len() <= 1 {
            return true;
        }
        let Some(epoch) = self.broker_epoch() else {
            return true;
        };
        self.shutting_down.store(true, Ordering::Release);
        let attempts = async {
            let mut client = None;
            loop {
                let request = self.heartbeat(epoch);
                let result = self
                    .to_controller(
                        request,
                        |c, r| async move { heartbeat(&c, &r).await },
                        &mut client,
                    )
                    .await;
                match result {
                    Ok(r) if r.error_code == 0 && r.should_shut_down => return,
                    // Not registered (any more): nothing to hand over.
                    Ok(r) if r.error_code == ResponseError::StaleBrokerEpoch.code() => return,
                    Ok(_) => {}
                    Err(e) => tracing::debug!("controlled shutdown heartbeat not sent: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(within, attempts).await.is_ok()
    }

    /// How this broker connects to the controller listener of another.
    fn client_options(&self) -> ConnectionOptions {
        ConnectionOptions {
            client_id: format!("wharf-broker-{}", self.settings.node_id),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            ..ConnectionOptions::default()
        }
    }

    /// Sends `request` to the active controller: a direct call when it is
    /// this node, else over the controller listener of the leader.
    async fn to_controller<R, F, Fut>(
        &self,
        request: R,
        local: F,
        client: &mut Option<(i32, Connection)>,
    ) -> Result<R::Response, String>
    where
        R: kafka_protocol::protocol::Request,
        F: FnOnce(Arc<Controller<Quorum>>, R) -> Fut,
        Fut: Future<Output = R::Response>,
    {
        let leader = self
            .controller_id()
            .ok_or_else(|| "no active controller yet".to_string())?;
        if leader == self.settings.node_id {
            return Ok(local(self.controller.clone(), request).await);
        }
        if client.as_ref().is_none_or(|(id, _)| *id != leader) {
            let addr = self
                .settings
                .voters
                .get(&leader)
                .ok_or_else(|| format!("controller {leader} is not a known voter"))?;
            let connection = Connection::connect(addr, self.client_options())
                .await
                .map_err(|e| e.to_string())?;
            *client = Some((leader, connection));
        }
        let Some((_, connection)) = client.as_mut() else {
            return Err("no connection to the controller".to_string());
        };
        match connection.call(&request).await {
            Ok(response) => Ok(response),
            Err(e) => {
                *client = None;
                Err(e.to_string())
            }
        }
    }
}

impl ClusterNode {
    /// DescribeQuorum for `__cluster_metadata-0`, from this node: the
    /// leader's answer, or NOT_LEADER_OR_FOLLOWER on a follower.
    pub fn describe_quorum(&self) -> DescribeQuorumResponse {
        describe_quorum(&self.quorum)
    }

    /// DescribeQuorum answered by the active controller: this node when it
    /// leads, else the leader over its controller listener.
    pub async fn describe_quorum_from_leader(&self) -> DescribeQuorumResponse {
        let mut request = DescribeQuorumRequest::default();
        let mut partition = describe_quorum_request::PartitionData::default();
        partition.partition_index = 0;
        let mut topic = describe_quorum_request::TopicData::default();
        topic.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
        topic.partitions = vec![partition];
        request.topics = vec![topic];
        let mut client = None;
        let quorum = self.quorum.clone();
        let local = move |_, _| async move { describe_quorum(&quorum) };
        match self.to_controller(request, local, &mut client).await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!("DescribeQuorum not forwarded: {e}");
                let mut response = DescribeQuorumResponse::default();
                response.error_code = ResponseError::NotController.code();
                response.error_message = Some(StrBytes::from_string(e));
                response
            }
        }
    }
}

/// The metadata log's topic name, as DescribeQuorum names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// DescribeQuorum's answer from `quorum`'s view.
pub fn describe_quorum(quorum: &Quorum) -> DescribeQuorumResponse {
    let d = quorum.describe();
    let mut partition = describe_quorum_response::PartitionData::default();
    partition.partition_index = 0;
    if d.leader != Some(d.node_id) {
        partition.error_code = ResponseError::NotLeaderOrFollower.code();
        partition.leader_id = d.leader.unwrap_or(-1).into();
    } else {
        partition.leader_id = d.node_id.into();
        partition.leader_epoch = i32::try_from(d.epoch).unwrap_or(i32::MAX);
        partition.high_watermark = i64::try_from(d.high_watermark).unwrap_or(i64::MAX);
        partition.current_voters = d
            .voters
            .iter()
            .map(|v| {
                let mut state = describe_quorum_response::ReplicaState::default();
                state.replica_id = v.node_id.into();
                state.log_end_offset = v
                    .log_end_offset
                    .map_or(-1, |o| i64::try_from(o).unwrap_or(i64::MAX));
                let ack = v
                    .last_ack_ms
                    .map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX));
                state.last_fetch_timestamp = ack;
                state.last_caught_up_timestamp = if v.lag == Some(0) { ack } else { -1 };
                state
            })
            .collect();
    }
    let mut topic = describe_quorum_response::TopicData::default();
    topic.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    topic.partitions = vec![partition];
    let mut response = DescribeQuorumResponse::default();
    response.topics = vec![topic];
    response
}

/// Registers this broker, then heartbeats until `stop`.
async fn lifecycle(node: Arc<ClusterNode>, mut stop: watch::Receiver<bool>) {
    let mut client = None;
    let mut logged_wait = false;
    let mut last_refusal = None;
    loop {
        let epoch = node.epoch.load(Ordering::Acquire);
        if epoch < 0 {
            let request = node.registration();
            let result = node
                .to_controller(
                    request,
                    |c, r| async move { register(&c, &r).await },
                    &mut client,
                )
                .await;
            match result {
                Ok(r) if r.error_code == 0 => {
                    node.epoch.store(r.broker_epoch, Ordering::Release);
                    tracing::info!(
                        broker_epoch = r.broker_epoch,
                        "registered with the controller"
                    );
                    continue;
                }
                // NOT_CONTROLLER while leadership moves is routine; other
                // refusals are logged once per error code, not per retry.
                Ok(r) if r.error_code == ResponseError::NotController.code() => {
                    tracing::debug!("registration reached a former controller; retrying");
                }
                Ok(r) if last_refusal != Some(r.error_code) => {
                    last_refusal = Some(r.error_code);
                    tracing::warn!(
                        error = ?ResponseError::try_from_code(r.error_code),
                        "broker registration refused; retrying"
                    );
                }
                Ok(_) => {}
                Err(e) if !logged_wait => {
                    tracing::info!("waiting for the controller to register: {e}");
                    logged_wait = true;
                }
                Err(e) => tracing::debug!("registration not sent: {e}"),
            }
        } else {
            let request = node.heartbeat(epoch);
            let result = node
                .to_controller(
                    request,
                    |c, r| async move { heartbeat(&c, &r).await },
                    &mut client,
                )
                .await;
            match result {
                Ok(r) if r.error_code == ResponseError::StaleBrokerEpoch.code() => {
                    tracing::warn!(
                        "the controller no longer knows this registration; registering again"
                    );
                    node.epoch.store(-1, Ordering::Release);
                    continue;
                }
                Ok(r) if r.error_code != 0 => tracing::debug!(
                    error = ?ResponseError::try_from_code(r.error_code),
                    "heartbeat refused"
                ),
                Ok(_) => {}
                Err(e) => tracing::debug!("heartbeat not sent: {e}"),
            }
        }
        let pause = if node.epoch.load(Ordering::Acquire) < 0 {
            Duration::from_millis(100)
        } else {
            node.settings.heartbeat_interval
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// How often the active controller looks for expired broker sessions: a
/// dead broker's partitions move at most this long after its session ends.
const FENCE_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// On the active controller, fences brokers whose sessions expired.
async fn fencer(node: Arc<ClusterNode>, mut stop: watch::Receiver<bool>) {
    let mut last_rebalance = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FENCE_CHECK_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = node.controller.fence_stale_brokers().await {
            tracing::debug!("fencing check failed: {e}");
        }
        if let Some(every) = node.settings.leader_rebalance_interval {
            if last_rebalance.elapsed() >= every {
                last_rebalance = tokio::time::Instant::now();
                rebalance_leaders(&node.controller).await;
            }
        }
    }
}

/// On the active controller: preferred elections for the partitions whose
/// first replica could lead but does not (Kafka's automatic leader
/// rebalance, without its per-broker imbalance threshold).
async fn rebalance_leaders(controller: &Controller<Quorum>) {
    use wharf_coordinator::metadata::elections::ElectionType;
    match controller
        .elect_leaders(ElectionType::Preferred, None)
        .await
    {
        Ok(outcomes) => {
            let moved: Vec<String> = outcomes
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|((t, p), _)| format!("{t}-{p}"))
                .collect();
            if !moved.is_empty() {
                tracing::info!(partitions = ?moved, "leadership moved back to preferred replicas");
            }
        }
        Err(e) if e.code == ResponseError::NotController => {}
        Err(e) => tracing::debug!("leader rebalance failed: {e}"),
    }
}

fn error_code(e: &ControllerError) -> i16 {
    e.code.code()
}

async fn register(
    controller: &Controller<Quorum>,
    request: &BrokerRegistrationRequest,
) -> BrokerRegistrationResponse {
    let registration = RegistrationRequest {
        broker_id: request.broker_id.0,
        cluster_id: request.cluster_id.to_string(),
        incarnation_id: request.incarnation_id,
        listeners: request
            .listeners
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
                security_protocol: l.security_protocol,
            })
            .collect(),
        features: request
            .features
            .iter()
            .map(|f| BrokerFeature {
                name: f.name.to_string(),
                min_supported_version: f.min_supported_version,
                max_supported_version: f.max_supported_version,
            })
            .collect(),
        rack: request.rack.as_ref().map(|r| r.to_string()),
        log_dirs: request.log_dirs.clone(),
    };
    let mut response = BrokerRegistrationResponse::default();
    match controller.register_broker(&registration).await {
        Ok(epoch) => response.broker_epoch = epoch,
        Err(e) => {
            tracing::info!(broker = request.broker_id.0, "registration refused: {e}");
            response.error_code = error_code(&e);
            response.broker_epoch = -1;
        }
    }
    response
}

async fn heartbeat(
    controller: &Controller<Quorum>,
    request: &BrokerHeartbeatRequest,
) -> BrokerHeartbeatResponse {
    let beat = HeartbeatRequest {
        broker_id: request.broker_id.0,
        broker_epoch: request.broker_epoch,
        current_metadata_offset: request.current_metadata_offset,
        want_fence: request.want_fence,
        want_shut_down: request.want_shut_down,
    };
    let mut response = BrokerHeartbeatResponse::default();
    match controller.heartbeat(&beat).await {
        Ok(reply) => {
            response.is_caught_up = reply.is_caught_up;
            response.is_fenced = reply.is_fenced;
            response.should_shut_down = reply.should_shut_down;
        }
        Err(e) => {
            response.error_code = error_code(&e);
            response.is_fenced = true;
        }
    }
    response
}

/// The Kafka APIs the controller listener serves besides the quorum's own.
struct Apis {
    controller: Arc<Controller<Quorum>>,
    quorum: Arc<Quorum>,
}

impl ControllerApis for Apis {
    fn handle(&self, frame: Vec<u8>) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send + '_>> {
        Box::pin(async move {
            let mut frame = Bytes::from(frame);
            let parsed = match wharf_protocol::header::decode_request_header(&mut frame) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("bad request on the controller listener: {e}");
                    return None;
                }
            };
            let version = parsed.header.request_api_version;
            let mut out = BytesMut::new();
            if let Err(e) = wharf_protocol::header::encode_response_header(
                &mut out,
                parsed.api_key,
                version,
                parsed.header.correlation_id,
            ) {
                tracing::warn!("{e}");
                return None;
            }
            let encoded = match parsed.api_key {
                ApiKey::ApiVersions => encode(&api_versions(), version),
                ApiKey::BrokerRegistration => {
                    let request = BrokerRegistrationRequest::decode(&mut frame, version).ok()?;
                    encode(&register(&self.controller, &request).await, version)
                }
                ApiKey::BrokerHeartbeat => {
                    let request = BrokerHeartbeatRequest::decode(&mut frame, version).ok()?;
                    encode(&heartbeat(&self.controller, &request).await, version)
                }
                ApiKey::DescribeQuorum => {
                    DescribeQuorumRequest::decode(&mut frame, version).ok()?;
                    encode(&describe_quorum(&self.quorum), version)
                }
                ApiKey::CreateTopics => {
                    let request = CreateTopicsRequest::decode(&mut frame, version).ok()?;
                    let response =
                        admin::serve_create_topics(&self.controller, &request, version).await;
                    encode(&response, version)
                }
                ApiKey::DeleteTopics => {
                    let request = DeleteTopicsRequest::decode(&mut frame, version).ok()?;
                    let response =
                        admin::serve_delete_topics(&self.controller, &request, version).await;
                    encode(&response, version)
                }
                ApiKey::CreatePartitions => {
                    let request = CreatePartitionsRequest::decode(&mut frame, version).ok()?;
                    let response =
                        admin::serve_create_partitions(&self.controller, &request, version).await;
                    encode(&response, version)
                }
                ApiKey::IncrementalAlterConfigs => {
                    let request =
                        IncrementalAlterConfigsRequest::decode(&mut frame, version).ok()?;
                    let response =
                        admin::serve_incremental_alter_configs(&self.controller, &request, version)
                            .await;
                    encode(&response, version)
                }
                ApiKey::ElectLeaders => {
                    let request = ElectLeadersRequest::decode(&mut frame, version).ok()?;
                    let response =
                        admin::serve_elect_leaders(&self.controller, &request, version).await;
                    encode(&response, version)
                }
                ApiKey::AlterPartitionReassignments => {
                    let request =
                        AlterPartitionReassignmentsRequest::decode(&mut frame, version).ok()?;
                    let response = admin::serve_alter_partition_reassignments(
                        &self.controller,
                        &request,
                        version,
                    )
                    .await;
                    encode(&response, version)
                }
                ApiKey::AlterPartition => {
                    let request = AlterPartitionRequest::decode(&mut frame, version).ok()?;
                    let response =
                        admin::serve_alter_partition(&self.controller, &request, version).await;
                    encode(&response, version)
                }
                ApiKey::CreateAcls => {
                    let request =
                        kafka_protocol::messages::CreateAclsRequest::decode(&mut frame, version)
                            .ok()?;
                    let response =
                        admin::serve_create_acls(&self.controller, &request, version).await;
                    encode(&response, version)
                }
                ApiKey::DeleteAcls => {
                    let request =
                        kafka_protocol::messages::DeleteAclsRequest::decode(&mut frame, version)
                            .ok()?;
                    let response =
                        admin::serve_delete_acls(&self.controller, &request, version).await;
                    encode(&response, version)
                }
                ApiKey::AllocateProducerIds => {
                    let request = AllocateProducerIdsRequest::decode(&mut frame, version).ok()?;
                    let response =
                        admin::serve_allocate_producer_ids(&self.controller, &request, version)
                            .await;
                    encode(&response, version)
                }
                ApiKey::UpdateFeatures => {
                    let request = UpdateFeaturesRequest::decode(&mut frame, version).ok()?;
                    let response =
                        admin::serve_update_features(&self.controller, &request, version).await;
                    encode(&response, version)
                }
                ApiKey::AlterUserScramCredentials => {
                    let request =
                        AlterUserScramCredentialsRequest::decode(&mut frame, version).ok()?;
                    let response = admin::serve_alter_user_scram_credentials(
                        &self.controller,
                        &request,
                        version,
                    )
                    .await;
                    encode(&response, version)
                }
                other => {
                    tracing::warn!(api = ?other, "API not served on the controller listener; closing the connection");
                    return None;
                }
            };
            out.extend_from_slice(&encoded?);
            Some(out.to_vec())
        })
    }
}

fn encode<T: Encodable>(message: &T, version: i16) -> Option<Vec<u8>> {
    let mut out = BytesMut::new();
    match message.encode(&mut out, version) {
        Ok(()) => Some(out.to_vec()),
        Err(e) => {
            tracing::warn!("could not encode a controller response: {e}");
            None
        }
    }
}

/// ApiVersions on the controller listener: the controller's own APIs.
fn api_versions() -> ApiVersionsResponse {
    let entry = |key: ApiKey, min: i16, max: i16| {
        let mut v = ApiVersion::default();
        v.api_key = key as i16;
        v.min_version = min;
        v.max_version = max;
        v
    };
    let mut response = ApiVersionsResponse::default();
    response.api_keys = vec![
        entry(
            ApiKey::ApiVersions,
            0,
            kafka_protocol::messages::ApiVersionsRequest::VERSIONS
                .max
                .min(3),
        ),
        entry(
            ApiKey::BrokerRegistration,
            0,
            BrokerRegistrationRequest::VERSIONS.max,
        ),
        entry(
            ApiKey::BrokerHeartbeat,
            0,
            BrokerHeartbeatRequest::VERSIONS.max,
        ),
        entry(ApiKey::DescribeQuorum, 0, 2),
        entry(
            ApiKey::CreateTopics,
            CreateTopicsRequest::VERSIONS.min,
            CreateTopicsRequest::VERSIONS.max,
        ),
        entry(
            ApiKey::DeleteTopics,
            DeleteTopicsRequest::VERSIONS.min,
            DeleteTopicsRequest::VERSIONS.max,
        ),
        entry(
            ApiKey::CreatePartitions,
            CreatePartitionsRequest::VERSIONS.min,
            CreatePartitionsRequest::VERSIONS.max,
        ),
        entry(
            ApiKey::IncrementalAlterConfigs,
            IncrementalAlterConfigsRequest::VERSIONS.min,
            IncrementalAlterConfigsRequest::VERSIONS.max,
        ),
        entry(
            ApiKey::AllocateProducerIds,
            AllocateProducerIdsRequest::VERSIONS.min,
            AllocateProducerIdsRequest::VERSIONS.max,
        ),
        entry(
            ApiKey::ElectLeaders,
            ElectLeadersRequest::VERSIONS.min,
            ElectLeadersRequest::VERSIONS.max,
        ),
        entry(
            ApiKey::AlterPartitionReassignments,
            AlterPartitionReassignmentsRequest::VERSIONS.min,
            AlterPartitionReassignmentsRequest::VERSIONS.max,
        ),
        entry(
            ApiKey::AlterPartition,
            AlterPartitionRequest::VERSIONS.min,
            AlterPartitionRequest::VERSIONS.max,
        ),
        entry(
            ApiKey::UpdateFeatures,
            UpdateFeaturesRequest::VERSIONS.min,
            UpdateFeaturesRequest::VERSIONS.max,
        ),
        entry(ApiKey::AlterUserScramCredentials, 0, 0),
        entry(ApiKey::CreateAcls, 2, 3),
        entry(ApiKey::DeleteAcls, 2, 3),
    ];
    response
}

impl ClusterNode {
    /// This process's incarnation id, as its registration carries it.
    pub fn incarnation(&self) -> Uuid {
        self.incarnation
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
