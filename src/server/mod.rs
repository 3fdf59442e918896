//! The listener side: bind, accept, one task per connection, and graceful
//! shutdown (stop accepting, let in-flight requests finish, flush, exit).

mod connection;
pub mod dispatch;
pub mod memory;
mod per_ip;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::broker::creation::TopicRequest;
use crate::broker::{AdvertisedListener, Broker, BrokerError, BrokerSettings, NewTopic};
use crate::budget::{RequestBudget, ResponseBudget};
use crate::cluster::node::{ClusterNode, NodeSettings};
use crate::cluster::quorum::{parse_voters, render_voters, Quorum, QuorumConfig};
use crate::config::Config;
use crate::config::TopicSpec;
use crate::security::{ListenerSecurity, Protocol};
use connection::{Connection, Shared};
use per_ip::PerIp;
use wharf_coordinator::metadata::ControllerConfig;

/// How long a broker of a cluster waits, at shutdown, for the controller to
/// move its leaderships elsewhere (Kafka's controlled shutdown).
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long shutdown waits for connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker ready to serve: its listeners are bound (connections queue in
/// the backlog) and its data directory is open and replayed.
pub struct Prepared {
    /// Each bound socket with its listener's name and security.
    listeners: Vec<(Arc<ListenerSecurity>, std::net::TcpListener)>,
    /// `--metrics-listen`, bound: Prometheus scrapes `/metrics` there.
    metrics: Option<std::net::TcpListener>,
    broker: Arc<Broker>,
    limits: Limits,
    cluster: ClusterPrep,
    /// `--create-topics`.
    create_topics: Vec<TopicSpec>,
    /// The fault-injection admin listener (`--admin-listen`), if asked for.
    admin: Option<std::net::TcpListener>,
}

/// What starting this node's part in the cluster needs: the quorum's
/// settings, its bound controller listener (none for a lone voter) and the
/// broker's registration details.
pub struct ClusterPrep {
    quorum: QuorumConfig,
    listener: Option<std::net::TcpListener>,
    node: NodeSettings,
}

impl ClusterPrep {
    /// The voters the flags name (none for a lone voter), checked before
    /// anything is written to the data directory.
    fn voters(config: &Config) -> anyhow::Result<Option<BTreeMap<i32, String>>> {
        let node_id = config.node_id;
        match &config.controller_quorum_voters {
            Some(spec) => {
                let voters = parse_voters(spec)?;
                if !voters.contains_key(&node_id) {
                    bail!("node id {node_id} is not in --controller-quorum-voters {spec}");
                }
                if config.controller_listen.is_none() {
                    bail!("--controller-quorum-voters needs --controller-listen for this node's controller");
                }
                if config.memory && voters.len() > 1 {
                    bail!("--memory keeps nothing across a restart, which a member of a {}-voter quorum must (its votes and log): run cluster nodes with a data directory", voters.len());
                }
                Ok(Some(voters))
            }
            None if config.controller_listen.is_some() => {
                bail!("--controller-listen needs --controller-quorum-voters")
            }
            None => Ok(None),
        }
    }

    fn new(
        config: &Config,
        voters: Option<BTreeMap<i32, String>>,
        broker: &Broker,
    ) -> anyhow::Result<ClusterPrep> {
        let node_id = config.node_id;
        let data_dir = config.resolved_data_dir();
        let (quorum, listener) = match (voters, &config.controller_listen) {
            (Some(voters), Some(listen)) => {
                let listener = std::net::TcpListener::bind(listen)
                    .with_context(|| format!("binding the controller listener {listen}"))?;
                listener
                    .set_nonblocking(true)
                    .context("setting the controller listener non-blocking")?;
                let config =
                    QuorumConfig::new(node_id, voters, broker.cluster_id.clone(), data_dir);
                (config, Some(listener))
            }
            _ => {
                let config =
                    QuorumConfig::single_voter(node_id, broker.cluster_id.clone(), data_dir);
                (config, None)
            }
        };
        let node = NodeSettings {
            node_id,
            cluster_id: broker.cluster_id.clone(),
            listeners: broker.settings.listeners().cloned().collect(),
            rack: config.broker_rack.clone(),
            voters: quorum.voters.clone(),
            heartbeat_interval: Duration::from_millis(config.broker_heartbeat_interval_ms),
            leader_rebalance_interval: config
                .auto_leader_rebalance_enable
                .then(|| Duration::from_secs(config.leader_imbalance_check_interval_seconds)),
            controller: ControllerConfig {
                default_num_partitions: config.num_partitions,
                default_replication_factor: config.default_replication_factor,
                broker_session_timeout_ms: i64::try_from(config.broker_session_timeout_ms)
                    .unwrap_or(i64::MAX),
                cluster_id: broker.cluster_id.clone(),
                ..ControllerConfig::default()
            },
        };
        Ok(ClusterPrep {
            quorum,
            listener,
            node,
        })
    }

    /// Starts the quorum and this node's cluster tasks, then hands the node
    /// to the broker.
    async fn start(self, broker: Arc<Broker>, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let listener = self
            .listener
            .map(TcpListener::from_std)
            .transpose()
            .context("registering the controller listener with the runtime")?;
        let single_voter = self.quorum.voters.len() == 1;
        let quorum = Quorum::start(self.quorum, listener)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let quorum = Arc::new(quorum);
        migrate(&broker, &quorum, single_voter).await?;
        let node = ClusterNode::start(self.node, quorum.clone(), stop.clone());
        broker.set_cluster(node);
        tokio::spawn(broker.clone().run_isr_changes(stop.clone()));
        tokio::spawn(crate::broker::apply::follow(
            broker.clone(),
            quorum.subscribe(),
            stop,
        ));
        Ok(())
    }
}

/// Moves the topics of a single-node release's `metadata.log` into the
/// cluster's metadata log, the first time a lone voter starts on such a
/// directory (see `cluster::migration`).
async fn migrate(broker: &Broker, quorum: &Quorum, single_voter: bool) -> anyhow::Result<()> {
    let legacy = broker.take_legacy_records();
    if legacy.is_empty() {
        return Ok(());
    }
    let image = quorum.image();
    if image.topics().next().is_some() || image.next_producer_id() > 0 {
        // Migrated before; the old log was not renamed yet.
        return broker
            .retire_legacy_log()
            .context("retiring the metadata log after migration");
    }
    if !single_voter {
        tracing::warn!("this data directory holds the metadata log of a single-node release; it is migrated only when it starts as a lone voter");
        return Ok(());
    }
    let records = crate::cluster::migration::cluster_records(&legacy, broker.settings.node_id);
    let count = records.len();
    quorum
        .propose(records)
        .await
        .map_err(|e| anyhow::anyhow!("migrating the metadata log: {e}"))?;
    broker
        .retire_legacy_log()
        .context("retiring the metadata log after migration")?;
    tracing::info!(
        records = count,
        "migrated the single-node metadata log into the cluster's metadata log"
    );
    Ok(())
}

/// Binds the listeners and opens the data directory, on the calling thread
/// and before any async runtime exists: start-up does this work once, and
/// doing it here saves the thread hand-offs a runtime would add between the
/// process starting and its first answered request.
pub fn prepare(config: &Config) -> anyhow::Result<Prepared> {
    let voters = ClusterPrep::voters(config)?;
    let (listeners, primary, extra) = bind_listeners(config)?;
    let listeners = secure_listeners(config, listeners)?;
    let metrics = config
        .metrics_listen
        .as_deref()
        .map(|listen| {
            let listener = std::net::TcpListener::bind(listen)
                .with_context(|| format!("binding the metrics listener {listen}"))?;
            listener
                .set_nonblocking(true)
                .context("setting the metrics listener non-blocking")?;
            anyhow::Ok(listener)
        })
        .transpose()?;
    let broker = open_broker(settings(config, primary, extra))?;
    let bound: Vec<String> = listeners
        .iter()
        .filter_map(|(security, l)| {
            Some(format!(
                "{}://{} ({})",
                security.name,
                l.local_addr().ok()?,
                security.protocol
            ))
        })
        .collect();
    let advertised: Vec<String> = broker
        .settings
        .listeners()
        .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
        .collect();
    tracing::info!(
        listen = ?bound,
        advertised = ?advertised,
        node_id = broker.settings.node_id,
        cluster_id = %broker.cluster_id,
        "wharf is ready"
    );
    let limits = Limits {
        max_connections: config.max_connections,
        max_connections_per_ip: config
            .max_connections_per_ip
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        max_request_size: config.max_request_size,
        connections_max_idle: Duration::from_millis(config.connections_max_idle_ms),
        request_read_timeout: Duration::from_millis(config.request_read_timeout_ms),
        queued_max_request_bytes: usize::try_from(config.queued_max_request_bytes)
            .unwrap_or(usize::MAX),
        queued_max_response_bytes: usize::try_from(config.queued_max_response_bytes)
            .unwrap_or(usize::MAX),
    };
    let admin = crate::faults::admin::bind(config.admin_listen.as_deref())?;
    let lone_voter = voters.is_none();
    let cluster = ClusterPrep::new(config, voters, &broker)?;
    if lone_voter && broker.is_fresh() {
        // A first start of a one-node cluster: nothing to load, so requests
        // are served before the quorum has elected itself (metadata writes
        // wait for it).
        broker.load_groups().context("loading consumer groups")?;
        broker.load_txns().context("loading transactions")?;
        broker.set_ready();
    }
    Ok(Prepared {
        listeners,
        metrics,
        broker,
        limits,
        cluster,
        create_topics: config.create_topics.clone().unwrap_or_default().0,
        admin,
    })
}

/// The broker's settings from its flags and the listeners it advertises.
pub fn settings(
    config: &Config,
    listener: AdvertisedListener,
    extra_listeners: Vec<AdvertisedListener>,
) -> BrokerSettings {
    BrokerSettings {
        node_id: config.node_id,
        listener,
        extra_listeners,
        rack_aware_reads: config.replica_selector_class.unwrap_or(false),
        data_dir: config.resolved_data_dir(),
        default_partitions: config.num_partitions,
        offsets_replication_factor: config.offsets_topic_replication_factor,
        txn_state_replication_factor: config.transaction_state_log_replication_factor,
        auto_create_topics: config.auto_create_topics,
        authorizer: (config.authorizer_class_name == Some(true)).then(|| {
            wharf_coordinator::acl::Authorizer::new(
                &config.super_users,
                config.allow_everyone_if_no_acl_found,
            )
        }),
        groups: config.group_config(),
        txns: config.txn_config(),
        configs: config.broker_configs(),
        retention_check_interval: Duration::from_millis(config.log_retention_check_interval_ms),
        flush_check_interval: Duration::from_millis(config.log_flush_scheduler_interval_ms),
        fsync_before_ack: config.fsync_before_ack,
        replica_lag_time_max: Duration::from_millis(config.replica_lag_time_max_ms),
        replica_fetch_wait_max: Duration::from_millis(config.replica_fetch_wait_max_ms),
        cleaner_interval: Duration::from_millis(config.log_cleaner_backoff_ms),
        cleaner_io_max_bytes_per_second: config.log_cleaner_io_max_bytes_per_second,
        compression_type: config.compression_type,
        max_decompressed_batch_bytes: config.max_decompressed_batch_bytes,
        max_partitions: config.max_partitions.unwrap_or_else(|| {
            crate::limits::default_max_partitions(crate::limits::available_memory())
        }),
        max_auto_created_topics_per_request: usize::try_from(
            config.max_auto_created_topics_per_request,
        )
        .unwrap_or(usize::MAX),
        fetch_session_cache_slots: usize::try_from(
            config.max_incremental_fetch_session_cache_slots,
        )
        .unwrap_or(usize::MAX),
        expected_cluster_id: config.cluster_id.clone().or_else(|| {
            let voters = config.controller_quorum_voters.as_deref()?;
            let voters = parse_voters(voters).ok()?;
            Some(crate::broker::meta_properties::cluster_id_for_voters(
                &render_voters(&voters),
            ))
        }),
    }
}

/// Opens (or creates) the data directory. Its topics, consumer groups and
/// transactions are loaded once the cluster's metadata image is applied
/// (see `broker::apply::follow`); requests wait until then.
pub fn open_broker(settings: BrokerSettings) -> anyhow::Result<Arc<Broker>> {
    Ok(Arc::new(
        Broker::open(settings).context("opening the data directory")?,
    ))
}

/// Serves a prepared broker until SIGINT or SIGTERM. Must run inside a
/// Tokio runtime.
pub async fn serve(prepared: Prepared) -> anyhow::Result<()> {
    let Prepared {
        listeners,
        metrics,
        broker,
        limits,
        cluster,
        create_topics,
        admin,
    } = prepared;
    if let Some(listener) = metrics {
        let listener =
            TcpListener::from_std(listener).context("registering the metrics listener")?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving Prometheus metrics at /metrics");
        }
        let registry = Arc::new(crate::metrics::registry(broker.clone()));
        // Ends with the runtime: scrapes need no draining.
        let (keep, stop) = watch::channel(false);
        tokio::spawn(async move {
            crate::metrics::http::serve(listener, registry, stop).await;
            drop(keep);
        });
    }
    let listeners = listeners
        .into_iter()
        .map(|(security, l)| TcpListener::from_std(l).map(|l| (security, l)))
        .collect::<Result<Vec<_>, _>>()
        .context("registering the listeners with the runtime")?;
    if !create_topics.is_empty() {
        tokio::spawn(create_startup_topics(broker.clone(), create_topics));
    }
    let admin = crate::faults::admin::start(admin, &broker)?;
    let result = run(listeners, broker, limits, cluster, shutdown_signal()).await;
    if let Some(admin) = admin {
        admin.abort();
    }
    result
}

/// Per-server limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// None: no limit per address.
    pub max_connections_per_ip: Option<usize>,
    pub max_request_size: usize,
    pub connections_max_idle: Duration,
    pub request_read_timeout: Duration,
    pub queued_max_request_bytes: usize,
    pub queued_max_response_bytes: usize,
}

impl Limits {
    /// What every connection shares. The request budget is raised to hold
    /// one request of the largest size, or such a request could never be
    /// read.
    fn shared(&self) -> Shared {
        let one_request = self
            .max_request_size
            .saturating_add(wharf_protocol::frame::SIZE_PREFIX_LEN);
        if self.queued_max_request_bytes < self.max_request_size {
            tracing::warn!(
                "--queued-max-request-bytes {} is below one request of --max-request-size; using {one_request}",
                self.queued_max_request_bytes
            );
        }
        Shared {
            max_request_size: self.max_request_size,
            idle_timeout: self.connections_max_idle,
            request_timeout: self.request_read_timeout,
            request_budget: RequestBudget::new(self.queued_max_request_bytes.max(one_request)),
            response_budget: ResponseBudget::new(self.queued_max_response_bytes),
        }
    }
}

/// Serves `listeners` until `shutdown` completes, then drains connections and
/// flushes the broker's logs.
pub async fn run(
    listeners: Vec<(Arc<ListenerSecurity>, TcpListener)>,
    broker: Arc<Broker>,
    limits: Limits,
    cluster: ClusterPrep,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // The quorum starts beside the listeners, so the first requests are not
    // held up by it; a node that cannot join its quorum stops.
    let mut joining = tokio::spawn(cluster.start(broker.clone(), stop_rx.clone()));
    // Every connection holds a clone; when all are dropped, recv() ends.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shared = Arc::new(limits.shared());
    let per_ip = limits.max_connections_per_ip.map(PerIp::new);
    let mut acceptors = Vec::new();
    for listener in listeners {
        acceptors.push(tokio::spawn(accept_loop(
            listener,
            broker.clone(),
            shared.clone(),
            per_ip.clone(),
            permits.clone(),
            stop_rx.clone(),
            alive_tx.clone(),
        )));
    }
    drop(alive_tx);
    let ticker = tokio::spawn(group_ticker(broker.clone()));
    let retention = tokio::spawn(crate::broker::retention::run(
        broker.clone(),
        stop_rx.clone(),
    ));
    let mut failure = None;
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => {}
        joined = &mut joining => {
            let joined = joined.unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")));
            match joined {
                Ok(()) => (&mut shutdown).await,
                Err(e) => {
                    tracing::error!("cannot join the controller quorum: {e:#}");
                    failure = Some(e);
                }
            }
        }
    }
    if failure.is_none() {
        if let Some(node) = broker.cluster() {
            // Requests are still served meanwhile: clients move to the new
            // leaders as they learn of them.
            tracing::info!(
                "controlled shutdown: handing this broker's leaderships to other replicas"
            );
            if node.controlled_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT).await {
                tracing::info!("controlled shutdown: the controller let this broker stop");
            } else {
                tracing::warn!(
                    "controlled shutdown: no answer from the controller within {CONTROLLED_SHUTDOWN_TIMEOUT:?}; stopping anyway"
                );
            }
        }
    }
    ticker.abort();
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    // The receiver half lives on in every connection, so this cannot fail.
    let _ = stop_tx.send(true);
    for acceptor in acceptors {
        let _ = acceptor.await;
    }
    let _ = retention.await;
    if tokio::time::timeout(DRAIN_TIMEOUT, alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {DRAIN_TIMEOUT:?}");
    }
    let flushing = broker.clone();
    tokio::task::spawn_blocking(move || flushing.flush_all())
        .await
        .context("flushing logs")?;
    joining.abort();
    if let Some(e) = failure {
        return Err(e);
    }
    tracing::info!("wharf stopped cleanly");
    Ok(())
}

/// How long `--create-topics` keeps trying (the quorum may still be
/// electing its controller).
const CREATE_TOPICS_DEADLINE: Duration = Duration::from_secs(120);

/// Creates the `--create-topics` topics once the broker serves; an existing
/// topic is left as it is (another broker of the cluster, or an earlier
/// start, made it). Retries while the controller cannot decide yet.
async fn create_startup_topics(broker: Arc<Broker>, topics: Vec<TopicSpec>) {
    broker.wait_ready().await;
    let deadline = tokio::time::Instant::now() + CREATE_TOPICS_DEADLINE;
    let mut pending = topics;
    while !pending.is_empty() {
        let requests = pending
            .iter()
            .map(|t| TopicRequest {
                new: NewTopic {
                    name: t.name.clone(),
                    partitions: t.partitions,
                    configs: BTreeMap::new(),
                },
                replication_factor: t.replication_factor,
                assignments: Vec::new(),
            })
            .collect();
        let results = broker.create_topics(requests, false).await;
        let mut retry = Vec::new();
        for (topic, result) in pending.into_iter().zip(results) {
            match result {
                Ok(_) => tracing::info!(
                    topic = %topic.name,
                    partitions = topic.partitions,
                    "created at start (--create-topics)"
                ),
                Err(BrokerError::TopicAlreadyExists(_)) => {
                    tracing::info!(topic = %topic.name, "exists already (--create-topics)");
                }
                Err(e @ BrokerError::Controller(..)) | Err(e @ BrokerError::Peer(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!(topic = %topic.name, "not created yet, retrying: {e}");
                    retry.push(topic);
                }
                Err(e) => tracing::error!(
                    topic = %topic.name,
                    "cannot create the topic of --create-topics: {e}"
                ),
            }
        }
        pending = retry;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// How often the group coordinator's timers run.
const GROUP_TICK: Duration = Duration::from_millis(100);

/// Drives the group coordinator's timers (session expiry, rebalance
/// deadlines, offset retention) and persists what they produce.
async fn group_ticker(broker: Arc<Broker>) {
    let mut interval = tokio::time::interval(GROUP_TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        broker.groups.tick(crate::broker::groups::now_ms());
        broker.flush_group_records();
        let txns = broker.clone();
        // Markers are file writes: off the async workers.
        let _ = tokio::task::spawn_blocking(move || txns.tick_txns()).await;
    }
}

/// Waits for one of `permits`, then for a connection on `listener`: `None`
/// once `stop` turns true. The permit is held for the connection's life,
/// so past the cap new connections wait in the listen backlog.
pub(crate) async fn accept_within(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
) -> Option<(
    tokio::sync::OwnedSemaphorePermit,
    std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
)> {
    let permit = tokio::select! {
        p = permits.clone().acquire_owned() => p.ok()?,
        _ = stop.wait_for(|s| *s) => return None,
    };
    let accepted = tokio::select! {
        a = listener.accept() => a,
        _ = stop.wait_for(|s| *s) => return None,
    };
    Some((permit, accepted))
}

/// Accepts connections while fewer than `--max-connections` are open (as
/// Kafka, the rest wait in the listen backlog), closing at once those past
/// the per-address limit.
async fn accept_loop(
    (security, listener): (Arc<ListenerSecurity>, TcpListener),
    broker: Arc<Broker>,
    shared: Arc<Shared>,
    per_ip: Option<Arc<PerIp>>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    while let Some((permit, accepted)) = accept_within(&listener, &permits, &mut stop).await {
        match accepted {
            Ok((stream, peer)) => {
                let slot = match &per_ip {
                    None => None,
                    Some(table) => match table.admit(peer.ip()) {
                        Some(slot) => Some(slot),
                        None => {
                            tracing::info!(
                                %peer,
                                "refusing connection: {} already open from {} (--max-connections-per-ip)",
                                table.open(peer.ip()),
                                peer.ip()
                            );
                            drop(stream);
                            continue;
                        }
                    },
                };
                let open = broker.metrics.connection_opened();
                let security = security.clone();
                let broker = broker.clone();
                let shared = shared.clone();
                let stop = stop.clone();
                let alive = alive.clone();
                tokio::spawn(async move {
                    // The TLS handshake, if any, runs here: never in the
                    // accept loop.
                    if let Some(connection) =
                        Connection::open(stream, peer, security, broker, shared).await
                    {
                        connection.run(stop).await;
                    }
                    drop(open);
                    drop(slot);
                    drop(permit);
                    drop(alive);
                });
            }
            Err(e) => {
                // Typically EMFILE: back off rather than spin.
                tracing::error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Binds every address `listen` resolves to. `localhost` always means both
/// loopback addresses, whatever this machine's resolver says, because
/// clients resolve it to either. Port 0 binds the first address to a free
/// port and the others to the same one.
fn bind(listen: &str) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut addrs: Vec<SocketAddr> = match listen.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => {
            let port: u16 = port
                .parse()
                .with_context(|| format!("bad port in --listen {listen:?}"))?;
            vec![
                SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
            ]
        }
        _ => std::net::ToSocketAddrs::to_socket_addrs(listen)
            .with_context(|| format!("resolving --listen {listen:?}"))?
            .collect(),
    };
    addrs.dedup();
    if addrs.is_empty() {
        bail!("--listen {listen:?} resolves to no address");
    }
    let mut listeners = Vec::new();
    let mut port = None;
    let mut last_err = None;
    for mut addr in addrs {
        if let Some(p) = port {
            addr.set_port(p);
        }
        match bind_one(addr) {
            Ok(l) => {
                port = l.local_addr().ok().map(|a| a.port());
                listeners.push(l);
            }
            Err(e) => {
                tracing::warn!(%addr, "could not bind: {e}");
                last_err = Some(e);
            }
        }
    }
    match (listeners.is_empty(), last_err) {
        (true, Some(e)) => Err(e).with_context(|| format!("binding {listen}")),
        _ => Ok(listeners),
    }
}

/// A non-blocking listening socket on `addr`, ready for Tokio. (std sets
/// SO_REUSEADDR on Unix, so a restart does not wait out TIME_WAIT.)
fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Binds `--listen` and the `--extra-listeners`; returns the sockets with
/// their listener names, and what each listener advertises.
#[allow(clippy::type_complexity)]
fn bind_listeners(
    config: &Config,
) -> anyhow::Result<(
    Vec<(Arc<str>, std::net::TcpListener)>,
    AdvertisedListener,
    Vec<AdvertisedListener>,
)> {
    let mut sockets = Vec::new();
    let primary_name: Arc<str> = Arc::from(config.listener_name.as_str());
    let bound = bind(&config.listen)?;
    let port = bound
        .first()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port())
        .context("no address bound")?;
    let primary = advertised(
        &config.listener_name,
        &config.listen,
        config.advertised_listener.as_deref(),
        port,
    )?;
    sockets.extend(bound.into_iter().map(|l| (primary_name.clone(), l)));
    let mut extra = Vec::new();
    let named = config.extra_listeners.as_ref().map_or(&[][..], |l| &l.0);
    let advertised_extra = config
        .extra_advertised_listeners
        .as_ref()
        .map_or(&[][..], |l| &l.0);
    for a in advertised_extra {
        if !named.iter().any(|l| l.name == a.name) {
            bail!(
                "--extra-advertised-listeners names {}, which is not in --extra-listeners",
                a.name
            );
        }
    }
    for listener in named {
        if listener.name == config.listener_name {
            bail!(
                "--extra-listeners names {}, the --listen listener's name (--listener-name)",
                listener.name
            );
        }
        let address = match listener.host.as_str() {
            "" => format!("0.0.0.0:{}", listener.port),
            _ => listener.address(),
        };
        let bound = bind(&address).with_context(|| format!("binding listener {listener}"))?;
        let port = bound
            .first()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
            .context("no address bound")?;
        let shown = advertised_extra
            .iter()
            .find(|a| a.name == listener.name)
            .map(|a| a.address());
        extra.push(advertised(
            &listener.name,
            &address,
            shown.as_deref(),
            port,
        )?);
        let name: Arc<str> = Arc::from(listener.name.as_str());
        sockets.extend(bound.into_iter().map(|l| (name.clone(), l)));
    }
    Ok((sockets, primary, extra))
}

/// Each bound listener with its security: its protocol from
/// --listener-security-protocol-map (or its name), and for SSL and SASL its
/// TLS and SASL settings, read now so that a bad key file stops the start.
fn secure_listeners(
    config: &Config,
    listeners: Vec<(Arc<str>, std::net::TcpListener)>,
) -> anyhow::Result<Vec<(Arc<ListenerSecurity>, std::net::TcpListener)>> {
    let map = config
        .listener_security_protocol_map
        .as_deref()
        .map(crate::security::parse_protocol_map)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--listener-security-protocol-map: {e}"))?;
    let keys = config.security_keys().map_err(|e| anyhow::anyhow!(e))?;
    let handshake_timeout = Duration::from_millis(config.request_read_timeout_ms);
    let failed_auth_delay = Duration::from_millis(config.connection_failed_authentication_delay_ms);
    let mut built: BTreeMap<Arc<str>, Arc<ListenerSecurity>> = BTreeMap::new();
    let mut out = Vec::new();
    for (name, socket) in listeners {
        let security = match built.get(&name) {
            Some(security) => security.clone(),
            None => {
                let protocol = crate::security::protocol_of(&name, map.as_ref())?;
                if protocol != Protocol::Plaintext
                    && *name == *config.listener_name
                    && config.controller_quorum_voters.is_some()
                {
                    bail!(
                        "listener {name} is {protocol}: brokers of a cluster reach each other on the --listener-name listener, which must be PLAINTEXT (add a PLAINTEXT listener for them)"
                    );
                }
                let security = Arc::new(ListenerSecurity::build(
                    name.clone(),
                    protocol,
                    &keys,
                    handshake_timeout,
                    failed_auth_delay,
                )?);
                built.insert(name.clone(), security.clone());
                security
            }
        };
        out.push((security, socket));
    }
    Ok(out)
}

/// What listener `name`, bound at `listen` (port `bound_port`), advertises:
/// `advertised_as` when given, else the listen host with the bound port
/// (`localhost` for a wildcard address).
fn advertised(
    name: &str,
    listen: &str,
    advertised_as: Option<&str>,
    bound_port: u16,
) -> anyhow::Result<AdvertisedListener> {
    let source = advertised_as.unwrap_or(listen);
    let (host, port) = source
        .rsplit_once(':')
        .with_context(|| format!("{source:?} is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut port: i32 = port
        .parse()
        .with_context(|| format!("bad port in {source:?}"))?;
    if advertised_as.is_none() {
        port = i32::from(bound_port);
    }
    let host = match host {
        "" | "0.0.0.0" | "::" => {
            tracing::warn!(listener = name, "listening on a wildcard address; advertising localhost (set the advertised listener for remote clients)");
            "localhost".to_string()
        }
        h => h.to_string(),
    };
    Ok(AdvertisedListener {
        name: name.to_string(),
        host,
        port,
    })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
/// Set by SIGINT or SIGTERM from the moment [`catch_early_signals`] ran:
/// a signal that arrives while the broker is still starting (before the
/// runtime listens for it) is remembered, not fatal.
static EARLY_SIGNAL: std::sync::OnceLock<Arc<std::sync::atomic::AtomicBool>> =
    std::sync::OnceLock::new();

/// Catches SIGINT and SIGTERM from process start, so that one arriving
/// before [`serve`] listens for it still means a clean shutdown (exit 0)
/// rather than death by signal. Call first thing in `main`.
pub fn catch_early_signals() {
    #[cfg(unix)]
    {
        let flag = EARLY_SIGNAL.get_or_init(|| Arc::new(std::sync::atomic::AtomicBool::new(false)));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            if let Err(e) = signal_hook::flag::register(signal, flag.clone()) {
                tracing::warn!("cannot catch signal {signal} at start: {e}");
            }
        }
    }
}

fn early_signal() -> bool {
    EARLY_SIGNAL
        .get()
        .is_some_and(|f| f.load(std::sync::atomic::Ordering::Acquire))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM, including one that arrived
/// before this was first polled (see [`catch_early_signals`]).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // Both streams listen from here on; a signal before is in the flag.
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                if early_signal() {
                    return;
                }
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("cannot listen for SIGINT and SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
