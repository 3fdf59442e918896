//! The broker's state: topics, their partitions and logs, the metadata log
//! that makes topics durable, and the wake-up that long-polling fetches wait
//! on.

mod acls;
pub mod apply;
pub mod compression;
pub mod configs;
pub mod creation;
mod error;
pub mod fetch_sessions;
pub mod groups;
pub mod meta_properties;
pub mod metadata_log;
mod partition;
pub mod producer_ids;
mod replay;
pub mod replica;
pub mod replication;
pub mod retention;
pub mod timestamps;
pub mod topic;
pub mod txns;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::watch;
use uuid::Uuid;
use wharf_coordinator::{GroupConfig, GroupCoordinator};
use wharf_storage::LogConfig;

pub use error::{storage_error_code, BrokerError};
pub use partition::{Following, Partition, ReplicaFetch, ReplicaRead};
pub use topic::Topic;

use configs::BrokerConfigs;
use metadata_log::MetadataRecord;

/// Suffix of partition directories being deleted; cleaned up on start.
const DELETE_SUFFIX: &str = "-delete";
const LOCK_FILE: &str = ".lock";
/// Threads closing partitions (fsyncs and snapshots) at shutdown.
const SHUTDOWN_FLUSH_THREADS: usize = 8;

/// A client listener, by name, with the address Metadata gives for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedListener {
    pub name: String,
    pub host: String,
    pub port: i32,
}

/// Broker-wide settings the request handlers need.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub node_id: i32,
    /// The `--listen` listener: clients' and the one brokers reach each
    /// other on (Kafka's `inter.broker.listener.name`).
    pub listener: AdvertisedListener,
    /// Further client listeners (`--extra-listeners`).
    pub extra_listeners: Vec<AdvertisedListener>,
    /// Consumers that give their rack are sent to an in-sync follower in
    /// it (`replica.selector.class` = the rack-aware selector, KIP-392).
    pub rack_aware_reads: bool,
    pub data_dir: PathBuf,
    pub default_partitions: i32,
    /// `offsets.topic.replication.factor`; `None`: the smaller of 3 and the
    /// number of quorum voters.
    pub offsets_replication_factor: Option<i16>,
    /// `transaction.state.log.replication.factor`; `None` as above.
    pub txn_state_replication_factor: Option<i16>,
    pub auto_create_topics: bool,
    /// The ACL authorizer (`authorizer.class.name`); `None` allows every
    /// request.
    pub authorizer: Option<wharf_coordinator::acl::Authorizer>,
    /// Consumer groups and the __consumer_offsets topic.
    pub groups: GroupConfig,
    /// Transactions and the __transaction_state topic.
    pub txns: wharf_coordinator::txn::TxnConfig,
    /// Broker configs from flags: log defaults and static settings.
    pub configs: BrokerConfigs,
    /// How often the retention task runs.
    pub retention_check_interval: std::time::Duration,
    /// How often logs are checked for a flush.ms flush.
    pub flush_check_interval: std::time::Duration,
    /// acks=all produces wait for an fsync of their records.
    pub fsync_before_ack: bool,
    /// replica.lag.time.max.ms: a follower not caught up for this long
    /// leaves the ISR.
    pub replica_lag_time_max: std::time::Duration,
    /// replica.fetch.wait.max.ms: a follower's fetch long-polls this long.
    pub replica_fetch_wait_max: std::time::Duration,
    /// Pause between log cleaner (compaction) passes.
    pub cleaner_interval: std::time::Duration,
    /// The log cleaner's I/O budget in bytes per second (`None`: unlimited).
    pub cleaner_io_max_bytes_per_second: Option<f64>,
    /// The broker's `compression.type`, for topics that set none.
    pub compression_type: compression::CompressionType,
    /// Most bytes one compressed batch may decompress to (bomb protection).
    pub max_decompressed_batch_bytes: usize,
    /// Most partitions this broker hosts, internal topics included.
    pub max_partitions: u64,
    /// Most topics one Metadata request auto-creates.
    pub max_auto_created_topics_per_request: usize,
    /// `max.incremental.fetch.session.cache.slots`: most fetch sessions
    /// (KIP-227) the broker keeps.
    pub fetch_session_cache_slots: usize,
    /// The cluster id this data directory must belong to (`--cluster-id`, or
    /// one derived from the quorum voters); a fresh directory takes it.
    pub expected_cluster_id: Option<String>,
}

#[derive(Debug, Default)]
struct TopicTable {
    by_name: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
    /// Each topic's name with `.` read as `_`, to its real name: Kafka
    /// refuses a topic whose name differs from another's only there, since
    /// both map to the same metric names.
    by_collision_key: HashMap<String, String>,
}

impl TopicTable {
    fn insert(&mut self, topic: Arc<Topic>) {
        self.by_collision_key
            .insert(topic::collision_key(&topic.name), topic.name.to_string());
        self.by_name.insert(topic.name.to_string(), topic.clone());
        self.by_id.insert(topic.id, topic);
    }

    fn remove(&mut self, topic: &Topic) {
        self.by_name.remove(&*topic.name);
        self.by_id.remove(&topic.id);
        self.by_collision_key
            .remove(&topic::collision_key(&topic.name));
    }

    /// The existing topic whose name collides with `name` (differs only in
    /// `.` against `_`), if any.
    fn collision(&self, name: &str) -> Option<&str> {
        self.by_collision_key
            .get(&topic::collision_key(name))
            .map(String::as_str)
            .filter(|existing| *existing != name)
    }
}

#[derive(Debug)]
pub struct Broker {
    pub settings: BrokerSettings,
    pub cluster_id: String,
    topics: RwLock<TopicTable>,
    /// Topics being created and the partitions hosted, for the partition
    /// limit (see `creation`). Taken after `metadata`, before `topics`.
    creations: Mutex<creation::Creations>,
    /// Topic names in the log start offset checkpoint last written or read.
    checkpoint_names: Mutex<HashSet<String>>,
    /// Consumer groups and their committed offsets.
    pub groups: GroupCoordinator,
    /// Transactional ids and their transactions.
    pub txns: wharf_coordinator::txn::TxnCoordinator,
    /// The block producer ids are handed out from (InitProducerId).
    producer_ids: Mutex<producer_ids::ProducerIdBlock>,
    /// Held while a new block of producer ids is asked for.
    producer_id_fetch: tokio::sync::Mutex<()>,
    /// The one writer of `log-start-offset-checkpoint` (DeleteRecords,
    /// retention and topic changes all write it).
    log_start_checkpoint: wharf_storage::checkpoint::CheckpointFile,
    /// This node's part in the cluster, once its quorum has started.
    cluster: std::sync::OnceLock<Arc<crate::cluster::node::ClusterNode>>,
    /// Flips to true when `cluster` is set.
    cluster_joined: watch::Sender<bool>,
    /// The data directory had neither a metadata quorum nor a single-node
    /// metadata log when opened: nothing to load before serving.
    fresh: bool,
    /// The metadata image the broker acted on last (see `apply`).
    applied: watch::Sender<wharf_coordinator::metadata::ImageSnapshot>,
    /// Held while an image is applied: one at a time.
    applying: Mutex<()>,
    /// Topics whose new partitions are being opened beside the applier.
    opening: Mutex<HashSet<Uuid>>,
    /// True once the first image is applied and the coordinators loaded:
    /// requests wait for it.
    ready: watch::Sender<bool>,
    /// The records of a single-node release's `metadata.log`, until they
    /// are migrated into the cluster's metadata log (see
    /// `cluster::migration`).
    legacy: Mutex<Vec<MetadataRecord>>,
    /// Followers' fetchers and the leader's ISR requests.
    replication: replication::Replication,
    /// Wakes the log maintenance task for a retention pass now (a topic's
    /// retention configs changed).
    pub retention_wake: tokio::sync::Notify,
    /// Protocol-level fault rules (`wharf faults`), empty unless added
    /// through the admin listener.
    pub faults: crate::faults::FaultTable,
    /// What the request path counts for `/metrics` (see `crate::metrics`).
    pub metrics: crate::metrics::Metrics,
    /// Incremental fetch sessions (KIP-227), broker-wide.
    pub fetch_sessions: FetchSessions,
    /// Held open for the broker's life: the data directory's exclusive lock.
    _lock: File,
}

/// The fetch session cache behind its lock, with the clock its times are
/// read from.
#[derive(Debug)]
pub struct FetchSessions {
    cache: Mutex<fetch_sessions::FetchSessionCache>,
    origin: std::time::Instant,
}

impl FetchSessions {
    pub fn new(slots: usize) -> Self {
        FetchSessions {
            cache: Mutex::new(fetch_sessions::FetchSessionCache::new(slots)),
            origin: std::time::Instant::now(),
        }
    }

    /// Runs `f` on the cache with the time now, in milliseconds since the
    /// broker started. Held only for the call: never across an await.
    pub fn with<T>(&self, f: impl FnOnce(&mut fetch_sessions::FetchSessionCache, u64) -> T) -> T {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut cache, now)
    }
}

/// What a topic creation asks for, already defaulted.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

impl BrokerSettings {
    /// The listener brokers reach each other on.
    pub fn inter_broker_listener(&self) -> &str {
        &self.listener.name
    }

    /// Every client listener, the inter-broker one first.
    pub fn listeners(&self) -> impl Iterator<Item = &AdvertisedListener> {
        std::iter::once(&self.listener).chain(&self.extra_listeners)
    }

    /// This broker's address on `listener` (the inter-broker listener's
    /// for a name it does not have: a connection always arrives on one of
    /// its own, so that is a fallback only).
    pub fn advertised(&self, listener: &str) -> &AdvertisedListener {
        self.extra_listeners
            .iter()
            .find(|l| l.name == listener)
            .unwrap_or(&self.listener)
    }
}

impl Broker {
    /// Opens the data directory: locks it, reads or writes its identity,
    /// replays the metadata log and recovers every partition's log.
    pub fn open(settings: BrokerSettings) -> Result<Self, BrokerError> {
        settings.configs.validate()?;
        let internal = i64::from(settings.groups.offsets_partitions)
            .saturating_add(i64::from(settings.txns.state_partitions));
        if i64::try_from(settings.max_partitions).unwrap_or(i64::MAX) < internal {
            return Err(BrokerError::InvalidConfig(format!(
                "--max-partitions {} leaves no room for the internal topics' {internal} partitions (--offsets-topic-num-partitions plus --transaction-state-log-num-partitions)",
                settings.max_partitions
            )));
        }
        let dir = settings.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| BrokerError::io("creating the data directory", &dir, e))?;
        let lock = lock_data_dir(&dir)?;
        let cluster_id = meta_properties::load_or_create(
            &dir,
            settings.node_id,
            settings.expected_cluster_id.as_deref(),
        )?;
        remove_deleted_partition_dirs(&dir);

        let records = metadata_log::read_legacy(&dir)
            .map_err(|e| BrokerError::io("reading the metadata log", &dir, e))?;
        let fresh =
            records.is_empty() && !dir.join(wharf_storage::quorum::METADATA_LOG_DIR).exists();
        let broker = Self {
            fetch_sessions: FetchSessions::new(settings.fetch_session_cache_slots),
            groups: GroupCoordinator::new(settings.groups.clone()),
            txns: wharf_coordinator::txn::TxnCoordinator::new(settings.txns.clone()),
            settings,
            cluster_id,
            topics: RwLock::new(TopicTable::default()),
            creations: Mutex::new(creation::Creations::default()),
            checkpoint_names: Mutex::new(HashSet::new()),
            producer_ids: Mutex::new(producer_ids::ProducerIdBlock::default()),
            producer_id_fetch: tokio::sync::Mutex::new(()),
            log_start_checkpoint: wharf_storage::checkpoint::CheckpointFile::new(
                dir.join(retention::CHECKPOINT_FILE),
            ),
            cluster: std::sync::OnceLock::new(),
            cluster_joined: watch::Sender::new(false),
            fresh,
            applied: watch::Sender::new(
                Arc::new(wharf_coordinator::metadata::MetadataImage::new()),
            ),
            applying: Mutex::new(()),
            opening: Mutex::new(HashSet::new()),
            ready: watch::Sender::new(false),
            legacy: Mutex::new(records),
            replication: replication::Replication::default(),
            retention_wake: tokio::sync::Notify::new(),
            faults: crate::faults::FaultTable::default(),
            metrics: crate::metrics::Metrics::default(),
            _lock: lock,
        };
        Ok(broker)
    }

    /// After the first image is applied: restores the log start offsets of
    /// the partitions it opened, then reports what the directory holds.
    pub fn opened(&self) {
        self.remove_stray_partitions();
        self.restore_log_start_offsets();
        let hosted = self.lock_creations().hosted;
        let max = self.settings.max_partitions;
        if hosted > max {
            tracing::warn!(
                partitions = hosted,
                max_partitions = max,
                "this broker hosts more partitions than --max-partitions allows: all are served, new ones are refused"
            );
        }
        tracing::info!(topics = self.read_table().by_name.len(), partitions = hosted, dir = %self.settings.data_dir.display(), "data directory opened");
    }

    /// The single-node release's metadata records, taken once for
    /// migration (empty for a directory that never had them).
    pub fn take_legacy_records(&self) -> Vec<MetadataRecord> {
        std::mem::take(&mut *self.legacy.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Renames `metadata.log` out of the way once its records live in the
    /// cluster's metadata log (kept as `metadata.log.migrated`).
    pub fn retire_legacy_log(&self) -> Result<(), BrokerError> {
        metadata_log::retire(&self.settings.data_dir)
            .map_err(|e| BrokerError::io("retiring the metadata log", &self.settings.data_dir, e))
    }

    /// Marks the broker ready: requests held at the door go on. The first
    /// call logs Kafka's own line for a broker that starts serving (its
    /// broker state going from RECOVERY to RUNNING): testcontainers'
    /// `KafkaContainer` and other tools wait for that line in the log.
    pub fn set_ready(&self) {
        if !self.ready.send_replace(true) {
            tracing::info!(
                node_id = self.settings.node_id,
                "serving requests: Transitioning from RECOVERY to RUNNING"
            );
        }
    }

    /// Waits until the broker is ready for requests.
    pub async fn wait_ready(&self) {
        if *self.ready.borrow() {
            return;
        }
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Hands the broker its cluster node (once; later calls are ignored).
    pub fn set_cluster(&self, node: Arc<crate::cluster::node::ClusterNode>) {
        let _ = self.cluster.set(node);
        self.cluster_joined.send_replace(true);
    }

    /// Whether the data directory was empty of metadata when opened (a
    /// first start): a lone voter then serves at once, before its quorum
    /// has elected itself, as there is nothing to load.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// This node's part in the cluster, once its quorum has started.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::node::ClusterNode>> {
        self.cluster.get()
    }

    /// The brokers clients are told of (Metadata, DescribeCluster) and the
    /// controller's id: the live brokers of the cluster's image, or this
    /// broker alone until its own registration is in the image.
    /// `listener` is the one the client connected to: brokers are listed
    /// at their addresses on it.
    pub fn cluster_view(&self, listener: &str) -> (Vec<crate::cluster::node::LiveBroker>, i32) {
        let own = self.settings.advertised(listener);
        let me = crate::cluster::node::LiveBroker {
            id: self.settings.node_id,
            host: own.host.clone(),
            port: own.port,
            rack: None,
        };
        let Some(node) = self.cluster() else {
            return (vec![me], self.settings.node_id);
        };
        let brokers = node.live_brokers(listener);
        if !brokers.iter().any(|b| b.id == me.id) {
            return (vec![me], self.settings.node_id);
        }
        // Clients send admin requests to the controller they are told of,
        // and wait while it is not a listed broker: name the active
        // controller when it is listed, else a listed broker (every broker
        // takes admin requests), as Kafka's KRaft brokers do.
        let controller = node
            .controller_id()
            .filter(|c| brokers.iter().any(|b| b.id == *c))
            .or_else(|| brokers.iter().map(|b| b.id).min())
            .unwrap_or(me.id);
        (brokers, controller)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_table().by_name.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.read_table().by_id.get(id).cloned()
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.read_table().by_name.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Checks a topic's name, partitions and configs, and that no topic of
    /// that name exists (see also `validate_creation`).
    pub fn validate_new_topic(&self, new: &NewTopic) -> Result<(), BrokerError> {
        topic::validate_name(&new.name)?;
        if new.partitions < 1 {
            return Err(BrokerError::InvalidPartitions(new.partitions));
        }
        configs::validate_topic_configs(&new.configs)?;
        if self.topic(&new.name).is_some() || self.image().topic_id(&new.name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(new.name.clone()));
        }
        if let Some(existing) = self.read_table().collision(&new.name) {
            return Err(BrokerError::InvalidTopic(format!(
                "topic name {:?} collides with existing topic {existing:?} ('.' and '_' are alike in metric names)",
                new.name
            )));
        }
        Ok(())
    }

    /// Flushes every partition to disk and snapshots its producers' state;
    /// used at shutdown.
    pub fn flush_all(&self) {
        let partitions: Vec<(Arc<Topic>, Arc<Partition>)> = self
            .topics()
            .into_iter()
            .flat_map(|topic| {
                let partitions = topic.partitions.clone();
                partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect();
        // Closing is mostly waiting for fsyncs, which a disk serves several
        // at a time: with 10,000 partitions one thread took 9.5 s.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let close_next = || loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((topic, partition)) = partitions.get(i) else {
                return;
            };
            if let Err(e) = partition.close() {
                tracing::error!(topic = %topic.name, partition = partition.index, "flush failed: {e}");
            }
        };
        let threads = partitions.len().min(SHUTDOWN_FLUSH_THREADS);
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(close_next);
            }
            close_next();
        });
    }

    fn log_config(&self, configs: &BTreeMap<String, String>) -> LogConfig {
        LogConfig {
            max_decompressed_batch_bytes: self.settings.max_decompressed_batch_bytes,
            ..self.settings.configs.log_config(configs)
        }
    }

    /// Renames a partition directory out of the way, then removes it. A
    /// crash in between leaves a `*-delete` directory that the next start
    /// removes.
    fn remove_partition_dir(&self, name: &str, index: i32) {
        let dir = partition_dir(&self.settings.data_dir, name, index);
        if !dir.exists() {
            return;
        }
        let doomed = self.settings.data_dir.join(format!(
            "{name}-{index}.{}{DELETE_SUFFIX}",
            Uuid::new_v4().simple()
        ));
        let target = match std::fs::rename(&dir, &doomed) {
            Ok(()) => doomed,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "could not rename before deleting: {e}");
                dir
            }
        };
        if let Err(e) = std::fs::remove_dir_all(&target) {
            tracing::error!(dir = %target.display(), "could not delete partition data: {e}");
        }
    }

    /// Applies `f` to the names in the log start offset checkpoint.
    fn checkpoint_names<T>(&self, f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
        f(&mut self
            .checkpoint_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    fn read_table(&self) -> std::sync::RwLockReadGuard<'_, TopicTable> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `<data dir>/<topic>-<partition>`, as Kafka names it.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

fn lock_data_dir(dir: &Path) -> Result<File, BrokerError> {
    let path = dir.join(LOCK_FILE);
    let file =
        File::create(&path).map_err(|e| BrokerError::io("creating the lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BrokerError::DataDirInUse(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(BrokerError::io("locking the data directory", &path, e))
        }
    }
}

fn remove_deleted_partition_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(DELETE_SUFFIX) && entry.path().is_dir() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(dir = %entry.path().display(), "removed data of a deleted topic")
                }
                Err(e) => tracing::warn!(dir = %entry.path().display(), "could not remove: {e}"),
            }
        }
    }
}
