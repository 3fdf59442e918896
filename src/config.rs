//! One `Config` for the broker, built from the command line (and the
//! environment, through clap's `env` support), and from Kafka's own
//! configuration (a server.properties file, the apache/kafka image's
//! `KAFKA_*` environment) by [`kafka`].

pub mod kafka;

use std::path::PathBuf;

use clap::Args;

use crate::broker::configs::BrokerConfigs;

/// `--max-connections` when not given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Settings of one broker process. Every field is a `wharf serve` flag.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on. A host name is resolved and every address it
    /// resolves to is bound (`localhost` gives both 127.0.0.1 and ::1).
    /// Port 0 picks a free port.
    #[arg(long, env = "WHARF_LISTEN", default_value = "localhost:9092")]
    pub listen: String,

    /// host:port that Metadata tells clients to connect to. Defaults to the
    /// listen host and the port actually bound.
    #[arg(long, env = "WHARF_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,

    /// The name of the `--listen` listener (Kafka's listener names, as in
    /// `PLAINTEXT://host:port`). Brokers of a cluster reach each other on
    /// it (Kafka's `inter.broker.listener.name`), so it must be the same
    /// on every broker.
    #[arg(long, env = "WHARF_LISTENER_NAME", default_value = "PLAINTEXT",
          value_parser = parse_listener_name)]
    pub listener_name: String,

    /// More client listeners, Kafka's way: `NAME://HOST:PORT[,...]` (an
    /// empty host is every interface). A client is told of the brokers'
    /// addresses on the listener it connected to, so a container can have
    /// one listener for other containers and one for the host.
    #[arg(long, env = "WHARF_EXTRA_LISTENERS", value_parser = parse_listener_list)]
    pub extra_listeners: Option<ListenerList>,

    /// What the `--extra-listeners` advertise, `NAME://HOST:PORT[,...]`;
    /// one not named here advertises its listen address (its bound port;
    /// `localhost` for a wildcard host).
    #[arg(long, env = "WHARF_EXTRA_ADVERTISED_LISTENERS", value_parser = parse_listener_list)]
    pub extra_advertised_listeners: Option<ListenerList>,

    /// Where logs and metadata live. Defaults to ~/.wharf/data, or ./data
    /// when there is no home directory.
    #[arg(long, env = "WHARF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Keep every log in memory, for brokers that are thrown away (CI
    /// jobs, tests): the data directory is a new one on a memory-backed
    /// filesystem (tmpfs: /dev/shm), removed when the broker stops.
    /// Nothing is written to disk and nothing survives a restart; the
    /// broker behaves as it does on disk otherwise. Excludes --data-dir
    /// (a log.dirs from Kafka's configuration is ignored).
    #[arg(long, env = "WHARF_MEMORY", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub memory: bool,

    /// This broker's node id.
    #[arg(long, env = "WHARF_NODE_ID", default_value_t = 1)]
    pub node_id: i32,

    /// Partitions of a topic created without an explicit count.
    #[arg(long, env = "WHARF_NUM_PARTITIONS", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub num_partitions: i32,

    /// Create unknown topics when a client's Metadata request asks for it.
    #[arg(long, env = "WHARF_AUTO_CREATE_TOPICS", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Largest request frame accepted; larger ones close the connection
    /// (Kafka's socket.request.max.bytes).
    #[arg(long, env = "WHARF_MAX_REQUEST_SIZE", default_value_t = wharf_protocol::frame::DEFAULT_MAX_REQUEST_SIZE)]
    pub max_request_size: usize,

    /// Segment size at which a partition's log rolls to a new segment
    /// (Kafka's log.segment.bytes; default 1 GiB). Topic config: segment.bytes.
    #[arg(long, alias = "log-segment-bytes", env = "WHARF_SEGMENT_BYTES")]
    pub segment_bytes: Option<u64>,

    /// Default retention time in milliseconds (Kafka's log.retention.ms;
    /// -1 keeps data forever). Topic config: retention.ms.
    #[arg(long, env = "WHARF_LOG_RETENTION_MS", allow_negative_numbers = true)]
    pub log_retention_ms: Option<i64>,

    /// Default retention time in hours (Kafka's log.retention.hours, default
    /// 168); --log-retention-ms wins when both are given.
    #[arg(long, env = "WHARF_LOG_RETENTION_HOURS")]
    pub log_retention_hours: Option<i64>,

    /// Default of the topic config min.insync.replicas (Kafka's broker
    /// config of the same name; default 1): the in-sync replicas an acks=all
    /// produce needs.
    #[arg(long, env = "WHARF_MIN_INSYNC_REPLICAS")]
    pub min_insync_replicas: Option<i32>,

    /// Default of the topic config unclean.leader.election.enable (Kafka's
    /// broker config of the same name; default false).
    #[arg(long, env = "WHARF_UNCLEAN_LEADER_ELECTION_ENABLE")]
    pub unclean_leader_election_enable: Option<bool>,

    /// Default age in milliseconds at which an active segment rolls (Kafka's
    /// log.roll.ms). Topic config: segment.ms.
    #[arg(long, env = "WHARF_LOG_ROLL_MS")]
    pub log_roll_ms: Option<i64>,

    /// Default segment age in hours at which an active segment rolls
    /// (Kafka's log.roll.hours, default 168); --log-roll-ms wins.
    #[arg(long, env = "WHARF_LOG_ROLL_HOURS")]
    pub log_roll_hours: Option<i64>,

    /// Default of the topic config min.cleanable.dirty.ratio (Kafka's
    /// log.cleaner.min.cleanable.ratio; default 0.5).
    #[arg(long, env = "WHARF_LOG_CLEANER_MIN_CLEANABLE_RATIO")]
    pub log_cleaner_min_cleanable_ratio: Option<f64>,

    /// Default of the topic config delete.retention.ms (Kafka's
    /// log.cleaner.delete.retention.ms; default one day).
    #[arg(long, env = "WHARF_LOG_CLEANER_DELETE_RETENTION_MS")]
    pub log_cleaner_delete_retention_ms: Option<i64>,

    /// Default of the topic config min.compaction.lag.ms (Kafka's
    /// log.cleaner.min.compaction.lag.ms; default 0).
    #[arg(long, env = "WHARF_LOG_CLEANER_MIN_COMPACTION_LAG_MS")]
    pub log_cleaner_min_compaction_lag_ms: Option<i64>,

    /// Default of the topic config max.compaction.lag.ms (Kafka's
    /// log.cleaner.max.compaction.lag.ms; default unbounded).
    #[arg(long, env = "WHARF_LOG_CLEANER_MAX_COMPACTION_LAG_MS")]
    pub log_cleaner_max_compaction_lag_ms: Option<i64>,

    /// Default of the topic config message.timestamp.type (Kafka's
    /// log.message.timestamp.type: CreateTime or LogAppendTime).
    #[arg(long, env = "WHARF_LOG_MESSAGE_TIMESTAMP_TYPE")]
    pub log_message_timestamp_type: Option<String>,

    /// Default of the topic config message.timestamp.before.max.ms (Kafka's
    /// log.message.timestamp.before.max.ms; default unbounded).
    #[arg(long, env = "WHARF_LOG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS")]
    pub log_message_timestamp_before_max_ms: Option<i64>,

    /// Default of the topic config message.timestamp.after.max.ms (Kafka's
    /// log.message.timestamp.after.max.ms; default one hour).
    #[arg(long, env = "WHARF_LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS")]
    pub log_message_timestamp_after_max_ms: Option<i64>,

    /// Default size limit of a partition's log in bytes (Kafka's
    /// log.retention.bytes; -1, the default, means none). Topic config: retention.bytes.
    #[arg(long, env = "WHARF_LOG_RETENTION_BYTES", allow_negative_numbers = true)]
    pub log_retention_bytes: Option<i64>,

    /// Default cleanup policy: delete, compact or compact,delete (Kafka's
    /// log.cleanup.policy). Topic config: cleanup.policy.
    #[arg(long, env = "WHARF_LOG_CLEANUP_POLICY")]
    pub log_cleanup_policy: Option<String>,

    /// Largest record batch accepted by default (Kafka's message.max.bytes,
    /// default 1048588). Topic config: max.message.bytes.
    #[arg(long, env = "WHARF_MESSAGE_MAX_BYTES")]
    pub message_max_bytes: Option<i64>,

    /// fsync a partition's log after this many unflushed records (Kafka's
    /// log.flush.interval.messages). Topic config: flush.messages.
    #[arg(long, env = "WHARF_LOG_FLUSH_INTERVAL_MESSAGES")]
    pub log_flush_interval_messages: Option<i64>,

    /// fsync a partition's log when its unflushed records are older than
    /// this many milliseconds (Kafka's log.flush.interval.ms), checked every
    /// --log-flush-scheduler-interval-ms. Topic config: flush.ms.
    #[arg(long, env = "WHARF_LOG_FLUSH_INTERVAL_MS")]
    pub log_flush_interval_ms: Option<i64>,

    /// How often the flush.ms check runs, in milliseconds.
    #[arg(long, env = "WHARF_LOG_FLUSH_SCHEDULER_INTERVAL_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub log_flush_scheduler_interval_ms: u64,

    /// Answer an acks=all produce only once its records are fsynced.
    /// Concurrent produces to a partition share one fsync (group commit), so
    /// the cost is one fsync per partition per burst, not per request.
    #[arg(long, env = "WHARF_FSYNC_BEFORE_ACK", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub fsync_before_ack: bool,

    /// Pause between log cleaner passes over compacted topics, in
    /// milliseconds (Kafka's log.cleaner.backoff.ms).
    #[arg(long, env = "WHARF_LOG_CLEANER_BACKOFF_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub log_cleaner_backoff_ms: u64,

    /// Most bytes per second the log cleaner reads and writes, over all
    /// partitions (Kafka's log.cleaner.io.max.bytes.per.second); unlimited
    /// when unset.
    #[arg(long, env = "WHARF_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND",
          value_parser = positive_rate)]
    pub log_cleaner_io_max_bytes_per_second: Option<f64>,

    /// How often retention runs over every partition, in milliseconds
    /// (Kafka's log.retention.check.interval.ms).
    #[arg(long, env = "WHARF_LOG_RETENTION_CHECK_INTERVAL_MS", default_value_t = 300_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub log_retention_check_interval_ms: u64,

    /// Codec every topic without its own `compression.type` stores batches
    /// in: producer (keep the producer's), uncompressed, gzip, snappy, lz4
    /// or zstd (Kafka's broker `compression.type`).
    #[arg(long, env = "WHARF_COMPRESSION_TYPE", default_value = "producer")]
    pub compression_type: crate::broker::compression::CompressionType,

    /// Most bytes the records of one compressed batch may decompress to;
    /// a batch past it is refused with CORRUPT_MESSAGE (decompression-bomb
    /// protection).
    #[arg(long, env = "WHARF_MAX_DECOMPRESSED_BATCH_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_decompressed_batch_bytes: usize,

    /// Most client connections served at once; more wait in the listen
    /// backlog until one closes (Kafka's max.connections). Lowered at start
    /// to half of what the open-files limit leaves after the broker's
    /// internal files, if larger (see the README).
    #[arg(long, env = "WHARF_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Most connections from one IP address; a connection past it is closed
    /// at once (Kafka's max.connections.per.ip). Unlimited when unset.
    #[arg(long, env = "WHARF_MAX_CONNECTIONS_PER_IP",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_ip: Option<u64>,

    /// Close a connection that sends no request for this long, or does not
    /// read its response for this long (Kafka's connections.max.idle.ms).
    #[arg(long, env = "WHARF_CONNECTIONS_MAX_IDLE_MS", default_value_t = 600_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub connections_max_idle_ms: u64,

    /// Close a connection whose request frame, once started, has not fully
    /// arrived within this long.
    #[arg(long, env = "WHARF_REQUEST_READ_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_read_timeout_ms: u64,

    /// Each listener's security protocol, `NAME:PROTOCOL[,...]` (Kafka's
    /// listener.security.protocol.map): PLAINTEXT, SSL, SASL_PLAINTEXT or
    /// SASL_SSL. Without it a listener named after a protocol has that
    /// protocol (the default listener, PLAINTEXT, is plaintext).
    #[arg(long, env = "WHARF_LISTENER_SECURITY_PROTOCOL_MAP",
          value_parser = parse_protocol_map)]
    pub listener_security_protocol_map: Option<String>,

    /// A Kafka TLS or SASL setting, `KEY=VALUE`, repeatable: `ssl.*`,
    /// `sasl.*` and their per-listener form `listener.name.<name>.<key>`
    /// (see the README's "Security"). Wins over the same key from --config
    /// and KAFKA_* variables.
    #[arg(long = "security-config", value_name = "KEY=VALUE",
          action = clap::ArgAction::Append, value_parser = parse_security_entry)]
    pub security_config: Vec<crate::security::keys::SecurityEntry>,

    /// How long a failed authentication waits before its answer and the
    /// close of the connection, to slow password guessing (Kafka's
    /// connection.failed.authentication.delay.ms).
    #[arg(
        long,
        env = "WHARF_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS",
        default_value_t = 100
    )]
    pub connection_failed_authentication_delay_ms: u64,

    /// The security keys of Kafka's configuration (--config, KAFKA_*),
    /// filled by `config::kafka::load`; --security-config wins over them.
    #[arg(skip)]
    pub kafka_security_keys: crate::security::SecurityKeys,

    /// Most bytes of requests being read or handled at once over all
    /// connections, beyond a first 8 KiB buffer each (Kafka's
    /// queued.max.request.bytes); connections stop reading while it is
    /// spent. Raised to --max-request-size + 4 if lower.
    #[arg(long, env = "WHARF_QUEUED_MAX_REQUEST_BYTES", default_value_t = 256 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub queued_max_request_bytes: u64,

    /// Most bytes of responses built but not yet written, over all
    /// connections; one Fetch answer takes at most an eighth of it. While
    /// it is spent, answers carry only a first batch (overdrawing it by at
    /// most its size again), then no records.
    #[arg(long, env = "WHARF_QUEUED_MAX_RESPONSE_BYTES", default_value_t = 256 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub queued_max_response_bytes: u64,

    /// Partitions of the internal __consumer_offsets topic, fixed when it is
    /// first created (Kafka's offsets.topic.num.partitions).
    #[arg(long, env = "WHARF_OFFSETS_TOPIC_NUM_PARTITIONS", default_value_t = 50,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub offsets_topic_num_partitions: i32,

    /// Replicas of each __consumer_offsets partition, fixed when the topic
    /// is first created (Kafka's offsets.topic.replication.factor; Kafka
    /// defaults to 3). Default: the smaller of 3 and the number of
    /// controller quorum voters, so a single node works as it is.
    #[arg(long, env = "WHARF_OFFSETS_TOPIC_REPLICATION_FACTOR",
          value_parser = clap::value_parser!(i16).range(1..))]
    pub offsets_topic_replication_factor: Option<i16>,

    /// Replicas of each __transaction_state partition (Kafka's
    /// transaction.state.log.replication.factor). Default: the smaller of 3
    /// and the number of controller quorum voters.
    #[arg(long, env = "WHARF_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
          value_parser = clap::value_parser!(i16).range(1..))]
    pub transaction_state_log_replication_factor: Option<i16>,

    /// Replicas of topics created without a replication factor (Kafka's
    /// default.replication.factor).
    #[arg(long, env = "WHARF_DEFAULT_REPLICATION_FACTOR", default_value_t = 1,
          value_parser = clap::value_parser!(i16).range(1..))]
    pub default_replication_factor: i16,

    /// How long a follower may go without catching up to its leader's log
    /// end before the leader removes it from the ISR (Kafka's
    /// replica.lag.time.max.ms).
    #[arg(long, env = "WHARF_REPLICA_LAG_TIME_MAX_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub replica_lag_time_max_ms: u64,

    /// Whether the active controller moves leadership back to each
    /// partition's preferred (first) replica when it can lead again (Kafka's
    /// auto.leader.rebalance.enable).
    #[arg(long, env = "WHARF_AUTO_LEADER_REBALANCE_ENABLE", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub auto_leader_rebalance_enable: bool,

    /// How often that check runs (Kafka's
    /// leader.imbalance.check.interval.seconds).
    #[arg(long, env = "WHARF_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub leader_imbalance_check_interval_seconds: u64,

    /// Longest a follower's fetch waits at its leader for new records
    /// (Kafka's replica.fetch.wait.max.ms).
    #[arg(long, env = "WHARF_REPLICA_FETCH_WAIT_MAX_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub replica_fetch_wait_max_ms: u64,

    /// How long the first rebalance of an empty group waits for more members
    /// (Kafka's group.initial.rebalance.delay.ms), extended by each newcomer
    /// up to the rebalance timeout. Kafka's default of 3000 is tuned for
    /// fleets of consumers restarting together; 0 (Kafka's shipped
    /// development config) sends consumers started together by one script
    /// through one rebalance per arrival, re-reading whatever was not yet
    /// committed. Wharf's 1000 covers consumers started together while a
    /// lone consumer starts reading after one second.
    #[arg(long, env = "WHARF_GROUP_INITIAL_REBALANCE_DELAY_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(i64).range(0..=3_600_000))]
    pub group_initial_rebalance_delay_ms: i64,

    /// Smallest session timeout a group member may ask for
    /// (group.min.session.timeout.ms).
    #[arg(
        long,
        env = "WHARF_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6_000
    )]
    pub group_min_session_timeout_ms: i32,

    /// Largest session timeout a group member may ask for
    /// (group.max.session.timeout.ms).
    #[arg(
        long,
        env = "WHARF_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000
    )]
    pub group_max_session_timeout_ms: i32,

    /// Session timeout of members of consumer-protocol (KIP-848) groups
    /// (group.consumer.session.timeout.ms).
    #[arg(long, env = "WHARF_GROUP_CONSUMER_SESSION_TIMEOUT_MS", default_value_t = 45_000,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub group_consumer_session_timeout_ms: i32,

    /// Heartbeat interval told to members of consumer-protocol groups
    /// (group.consumer.heartbeat.interval.ms).
    #[arg(long, env = "WHARF_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub group_consumer_heartbeat_interval_ms: i32,

    /// Most members of a consumer-protocol group (group.consumer.max.size).
    #[arg(long, env = "WHARF_GROUP_CONSUMER_MAX_SIZE", default_value_t = i32::MAX,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub group_consumer_max_size: i32,

    /// Server-side assignors of consumer-protocol groups, the first the
    /// default (group.consumer.assignors; Wharf has uniform and range).
    #[arg(long, env = "WHARF_GROUP_CONSUMER_ASSIGNORS", default_value = "uniform,range",
          value_delimiter = ',', value_parser = ["uniform", "range"])]
    pub group_consumer_assignors: Vec<String>,

    /// How long the committed offsets of an empty group are kept
    /// (offsets.retention.minutes).
    #[arg(long, env = "WHARF_OFFSETS_RETENTION_MINUTES", default_value_t = 10_080,
          value_parser = clap::value_parser!(i64).range(1..=1_000_000_000))]
    pub offsets_retention_minutes: i64,

    /// Largest transaction.timeout.ms a transactional producer may ask for
    /// (Kafka's transaction.max.timeout.ms).
    #[arg(long, env = "WHARF_TRANSACTION_MAX_TIMEOUT_MS", default_value_t = 900_000,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub transaction_max_timeout_ms: i32,

    /// Partitions of the internal __transaction_state topic, fixed when it
    /// is first created (Kafka's transaction.state.log.num.partitions).
    #[arg(long, env = "WHARF_TRANSACTION_STATE_LOG_NUM_PARTITIONS", default_value_t = 50,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub transaction_state_log_num_partitions: i32,

    /// Most `.log` files of closed (non-active) segments held open for
    /// reading at once, over all partitions; reads of others open them on
    /// demand and the least recently read close. Default: 1024, or a
    /// quarter of the open-files limit left for segment files if smaller
    /// (see the README); a larger value is lowered to that with a warning.
    #[arg(long, env = "WHARF_MAX_OPEN_SEGMENT_FILES",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_open_segment_files: Option<u64>,

    /// Most active segments' `.log` files held open for writing at once,
    /// over all partitions: a partition being written keeps its file open,
    /// and the least recently written close when others need a slot (an
    /// idle partition holds no descriptor). Default: what the open-files
    /// limit leaves after the other shares (see the README).
    #[arg(long, env = "WHARF_MAX_OPEN_ACTIVE_SEGMENT_FILES",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_open_active_segment_files: Option<u64>,

    /// Most partitions this broker hosts, internal topics included;
    /// creations past it get POLICY_VIOLATION. Default: one per 128 KiB of
    /// the machine's (or the cgroup's) memory, at least 1000.
    #[arg(long, env = "WHARF_MAX_PARTITIONS",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_partitions: Option<u64>,

    /// Most topics one Metadata request auto-creates; the request's other
    /// unknown topics are answered LEADER_NOT_AVAILABLE, as Kafka answers a
    /// topic whose creation is under way, and clients ask again.
    #[arg(long, env = "WHARF_MAX_AUTO_CREATED_TOPICS_PER_REQUEST", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_auto_created_topics_per_request: u32,

    /// Kafka's `max.incremental.fetch.session.cache.slots`: most
    /// incremental fetch sessions (KIP-227) the broker keeps at once; 0
    /// gives none, and every fetch is a full one.
    #[arg(long, env = "WHARF_MAX_INCREMENTAL_FETCH_SESSION_CACHE_SLOTS", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub max_incremental_fetch_session_cache_slots: u32,

    /// Make the log engine's file I/O fail on purpose, to see how clients
    /// and tools cope with a full or failing disk: a comma-separated list of
    /// POINT=ERROR[@TRIGGER], with POINT one of segment-create,
    /// segment-write, index-write, segment-sync, dir-sync, truncate, rename,
    /// remove, aux-write, aux-sync, quorum-log-write, quorum-log-sync (the
    /// metadata quorum's Raft log); ERROR enospc or eio; TRIGGER always (default),
    /// after:N (the first N calls succeed) or next:N (the next N calls
    /// fail). Example: `segment-write=enospc@after:3`. Never for production.
    #[arg(long, env = "WHARF_FAULT_INJECTION")]
    pub fault_injection: Option<String>,

    /// Serve the fault-injection admin API (HTTP, for `wharf faults ...
    /// --admin HOST:PORT`) on this address: a test can then make chosen
    /// requests fail, wait or lose their connection. Off unless given; meant
    /// for loopback and CI, never for production.
    #[arg(long, env = "WHARF_ADMIN_LISTEN", value_name = "HOST:PORT")]
    pub admin_listen: Option<String>,

    /// Log filter: a level (error, warn, info, debug, trace) or a
    /// tracing-subscriber directive such as `wharf=debug`.
    #[arg(long, env = "WHARF_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Where to serve Prometheus metrics over HTTP at `/metrics`
    /// (`HOST:PORT`). Off unless given.
    #[arg(long, env = "WHARF_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// Where this node's controller listens for the metadata quorum's
    /// traffic and brokers' registrations and heartbeats (Kafka's
    /// CONTROLLER listener). Needed with several voters.
    #[arg(long, env = "WHARF_CONTROLLER_LISTEN")]
    pub controller_listen: Option<String>,

    /// The metadata quorum's voters, `id@host:port,...` (Kafka's
    /// controller.quorum.voters); the same list on every node. Without it
    /// the node is the single voter of its own one-node cluster.
    #[arg(long, env = "WHARF_CONTROLLER_QUORUM_VOTERS")]
    pub controller_quorum_voters: Option<String>,

    /// The cluster id a fresh data directory is formatted with, and that an
    /// existing one must have (Kafka's `kafka-storage format --cluster-id`,
    /// the CLUSTER_ID of Kafka's images). By default a random one, or with
    /// --controller-quorum-voters one derived from the voter list, the same
    /// on every node.
    #[arg(long, env = "WHARF_CLUSTER_ID")]
    pub cluster_id: Option<String>,

    /// The rack this broker is in (Kafka's broker.rack), for rack-aware
    /// replica placement.
    #[arg(long, env = "WHARF_BROKER_RACK")]
    pub broker_rack: Option<String>,

    /// Which replica a consumer reads from (Kafka's replica.selector.class):
    /// `org.apache.kafka.common.replica.RackAwareReplicaSelector` (or
    /// `rack-aware`) sends a consumer that gives its `client.rack` to an
    /// in-sync follower in that rack (KIP-392); unset, or
    /// `org.apache.kafka.common.replica.LeaderSelector` (`leader`), keeps
    /// every consumer on the leader.
    #[arg(long, env = "WHARF_REPLICA_SELECTOR_CLASS", value_parser = parse_replica_selector)]
    pub replica_selector_class: Option<bool>,

    /// Turns ACL authorization on (Kafka's authorizer.class.name):
    /// `org.apache.kafka.metadata.authorizer.StandardAuthorizer` (or
    /// `standard`); empty or unset leaves every request allowed.
    #[arg(long, env = "WHARF_AUTHORIZER_CLASS_NAME", value_parser = parse_authorizer)]
    pub authorizer_class_name: Option<bool>,

    /// Principals the authorizer allows everything, `User:admin;User:bob`
    /// (Kafka's super.users).
    #[arg(long, env = "WHARF_SUPER_USERS", default_value = "")]
    pub super_users: String,

    /// With the authorizer on, allow a request on a resource no ACL names
    /// (Kafka's allow.everyone.if.no.acl.found).
    #[arg(long, env = "WHARF_ALLOW_EVERYONE_IF_NO_ACL_FOUND", default_value_t = false,
          action = clap::ArgAction::Set)]
    pub allow_everyone_if_no_acl_found: bool,

    /// How often the broker heartbeats to the active controller (Kafka's
    /// broker.heartbeat.interval.ms; Kafka's default is 2000, Wharf's 500 so
    /// that a dead leader is replaced within 3 s).
    #[arg(long, env = "WHARF_BROKER_HEARTBEAT_INTERVAL_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub broker_heartbeat_interval_ms: u64,

    /// How long the controller waits for a broker's heartbeat before it
    /// fences the broker and elects new leaders for its partitions (Kafka's
    /// broker.session.timeout.ms; Kafka's default is 9000, Wharf's 2500).
    #[arg(long, env = "WHARF_BROKER_SESSION_TIMEOUT_MS", default_value_t = 2500,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub broker_session_timeout_ms: u64,

    /// Topics to create at start, `NAME:PARTITIONS[:REPLICATION_FACTOR]`
    /// comma-separated (e.g. `orders:3:1,audit:1`); one that exists is left
    /// as it is. For containers and CI jobs that need their topics before
    /// the first client connects.
    #[arg(long, env = "WHARF_CREATE_TOPICS", value_parser = parse_topic_specs)]
    pub create_topics: Option<TopicSpecs>,

    /// A Kafka server.properties file to take settings from (see the
    /// README's "Kafka's configuration"). Flags, WHARF_* and KAFKA_*
    /// variables win over it.
    #[arg(long = "config", env = "WHARF_CONFIG", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Print the effective configuration, and where each value came from,
    /// then exit without starting.
    #[arg(long)]
    pub print_config: bool,

    /// Log line format: `text` (human-readable) or `json` (one JSON object
    /// per line, for log collectors).
    #[arg(long, env = "WHARF_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A bytes-per-second rate: a finite number above 0.
fn positive_rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!(
            "{value:?} is not a positive number of bytes per second"
        )),
    }
}

/// `wharf serve`'s flags on their own, for [`Config::from_flags`].
#[derive(Debug, clap::Parser)]
struct ServeFlags {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// A config from `wharf serve` flags (without the command words), as
    /// the command line would build it: for tests and the fuzz targets.
    pub fn from_flags<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args = std::iter::once(std::ffi::OsString::from("wharf-serve"))
            .chain(flags.into_iter().map(Into::into));
        <ServeFlags as clap::Parser>::try_parse_from(args).map(|f| f.config)
    }

    /// The coordinator's settings.
    pub fn group_config(&self) -> wharf_coordinator::GroupConfig {
        wharf_coordinator::GroupConfig {
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: self.group_min_session_timeout_ms,
            max_session_timeout_ms: self.group_max_session_timeout_ms,
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
            offsets_partitions: self.offsets_topic_num_partitions,
            consumer_session_timeout_ms: self.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: self.group_consumer_heartbeat_interval_ms,
            consumer_max_size: self.group_consumer_max_size,
            consumer_assignors: self.group_consumer_assignors.clone(),
        }
    }

    /// The transaction coordinator's settings.
    pub fn txn_config(&self) -> wharf_coordinator::txn::TxnConfig {
        wharf_coordinator::txn::TxnConfig {
            max_timeout_ms: self.transaction_max_timeout_ms,
            state_partitions: self.transaction_state_log_num_partitions,
            ..Default::default()
        }
    }

    /// The broker configs these flags set, under Kafka's names: the log
    /// defaults given explicitly, and the broker's other settings.
    pub fn broker_configs(&self) -> BrokerConfigs {
        let mut out = BrokerConfigs::default();
        let mut log = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                out.log_overrides.insert(name.to_string(), v);
            }
        };
        log(
            "log.segment.bytes",
            self.segment_bytes.map(|v| v.to_string()),
        );
        log(
            "log.retention.ms",
            self.log_retention_ms.map(|v| v.to_string()),
        );
        log(
            "log.retention.hours",
            self.log_retention_hours.map(|v| v.to_string()),
        );
        log(
            "log.retention.bytes",
            self.log_retention_bytes.map(|v| v.to_string()),
        );
        log("log.cleanup.policy", self.log_cleanup_policy.clone());
        for (name, value) in [
            (
                "min.insync.replicas",
                self.min_insync_replicas.map(|v| v.to_string()),
            ),
            (
                "unclean.leader.election.enable",
                self.unclean_leader_election_enable.map(|v| v.to_string()),
            ),
            ("log.roll.ms", self.log_roll_ms.map(|v| v.to_string())),
            ("log.roll.hours", self.log_roll_hours.map(|v| v.to_string())),
            (
                "log.cleaner.min.cleanable.ratio",
                self.log_cleaner_min_cleanable_ratio.map(|v| v.to_string()),
            ),
            (
                "log.cleaner.delete.retention.ms",
                self.log_cleaner_delete_retention_ms.map(|v| v.to_string()),
            ),
            (
                "log.cleaner.min.compaction.lag.ms",
                self.log_cleaner_min_compaction_lag_ms
                    .map(|v| v.to_string()),
            ),
            (
                "log.cleaner.max.compaction.lag.ms",
                self.log_cleaner_max_compaction_lag_ms
                    .map(|v| v.to_string()),
            ),
            (
                "log.message.timestamp.type",
                self.log_message_timestamp_type.clone(),
            ),
            (
                "log.message.timestamp.before.max.ms",
                self.log_message_timestamp_before_max_ms
                    .map(|v| v.to_string()),
            ),
            (
                "log.message.timestamp.after.max.ms",
                self.log_message_timestamp_after_max_ms
                    .map(|v| v.to_string()),
            ),
        ] {
            log(name, value);
        }
        log(
            "message.max.bytes",
            self.message_max_bytes.map(|v| v.to_string()),
        );
        // The broker's compression.type is the topic config's default.
        log(
            "compression.type",
            (self.compression_type != crate::broker::compression::CompressionType::Producer)
                .then(|| self.compression_type.to_string()),
        );
        let other = [
            ("node.id", self.node_id.to_string()),
            ("broker.id", self.node_id.to_string()),
            ("num.partitions", self.num_partitions.to_string()),
            (
                "auto.create.topics.enable",
                self.auto_create_topics.to_string(),
            ),
            (
                "socket.request.max.bytes",
                self.max_request_size.to_string(),
            ),
            (
                "connections.max.idle.ms",
                self.connections_max_idle_ms.to_string(),
            ),
            (
                "queued.max.request.bytes",
                self.queued_max_request_bytes.to_string(),
            ),
            (
                "max.connections.per.ip",
                self.max_connections_per_ip
                    .map_or_else(|| i32::MAX.to_string(), |n| n.to_string()),
            ),
            ("log.dirs", self.resolved_data_dir().display().to_string()),
            (
                "log.retention.check.interval.ms",
                self.log_retention_check_interval_ms.to_string(),
            ),
            (
                "log.cleaner.io.max.bytes.per.second",
                self.log_cleaner_io_max_bytes_per_second
                    .map_or_else(|| "1.7976931348623157E308".to_string(), |r| r.to_string()),
            ),
        ];
        out.other = other.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if self.authorizer_class_name == Some(true) {
            out.other.insert(
                "authorizer.class.name".to_string(),
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
            );
            out.other
                .insert("super.users".to_string(), self.super_users.clone());
            out.other.insert(
                "allow.everyone.if.no.acl.found".to_string(),
                self.allow_everyone_if_no_acl_found.to_string(),
            );
        }
        out
    }

    /// Where a client on this machine reaches the `--listen` listener
    /// (`wharf health` without an address): its host and port, with a
    /// wildcard host (every interface) replaced by the loopback address.
    pub fn local_address(&self) -> Result<String, String> {
        let listen = self.listen.trim();
        let (host, port) = listen
            .rsplit_once(':')
            .ok_or_else(|| format!("the listen address {listen:?} has no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("the listen address {listen:?} has a bad port"))?;
        if port == 0 {
            return Err(format!(
                "the broker listens on {listen} (a free port chosen at start): give --bootstrap-server"
            ));
        }
        let host = match host {
            "" | "0.0.0.0" => "127.0.0.1",
            "::" | "[::]" => "[::1]",
            other => other,
        };
        Ok(format!("{host}:{port}"))
    }

    /// The data directory to use: the flag, else ~/.wharf/data, else ./data.
    pub fn resolved_data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home).join(".wharf").join("data"),
            _ => PathBuf::from("data"),
        }
    }
}

/// One `NAME://HOST:PORT` of a listener list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedListener {
    pub name: String,
    /// Empty: every interface.
    pub host: String,
    pub port: u16,
}

impl NamedListener {
    /// `host:port` (an empty host as given).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for NamedListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.name, self.address())
    }
}

/// A listener list, `NAME://HOST:PORT[,...]`, names unique.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListenerList(pub Vec<NamedListener>);

/// A listener name: letters, digits, `_` and `-`, as Kafka's.
fn parse_listener_name(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a listener name (letters, digits, '_' and '-')"
        ))
    }
}

/// Parses `NAME://HOST:PORT[,...]` (IPv6 hosts in brackets).
fn parse_protocol_map(s: &str) -> Result<String, String> {
    crate::security::parse_protocol_map(s)?;
    Ok(s.to_string())
}

/// Never fails: clap would echo the whole value, secret included, in its
/// error. [`Config::security_keys`] checks the entries instead.
fn parse_security_entry(s: &str) -> Result<crate::security::keys::SecurityEntry, String> {
    Ok(crate::security::keys::SecurityEntry::split(s))
}

impl Config {
    /// Every TLS and SASL key: Kafka's configuration's, then the
    /// --security-config flags over them; an error (that shows no secret)
    /// for a flag that is not a usable `KEY=VALUE`.
    pub fn security_keys(&self) -> Result<crate::security::SecurityKeys, String> {
        let mut keys = self.kafka_security_keys.clone();
        for entry in &self.security_config {
            let (key, value) = entry.check()?;
            keys.0.insert(key, value);
        }
        Ok(keys)
    }
}

pub fn parse_listener_list(s: &str) -> Result<ListenerList, String> {
    let mut out: Vec<NamedListener> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, address) = item
            .split_once("://")
            .ok_or_else(|| format!("{item:?} is not NAME://HOST:PORT"))?;
        let name = parse_listener_name(name)?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("{item:?} has no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{item:?} has a bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener {name} is given twice"));
        }
        out.push(NamedListener {
            name,
            host: host.to_string(),
            port,
        });
    }
    if out.is_empty() {
        return Err("no listener given".to_string());
    }
    Ok(ListenerList(out))
}

/// One topic of `--create-topics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
}

/// The topics of `--create-topics`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicSpecs(pub Vec<TopicSpec>);

/// Parses `NAME:PARTITIONS[:REPLICATION_FACTOR][,...]`.
pub fn parse_topic_specs(s: &str) -> Result<TopicSpecs, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let parts: Vec<&str> = item.split(':').collect();
        let (name, partitions, rf) = match parts.as_slice() {
            [name, p] => (*name, *p, None),
            [name, p, rf] => (*name, *p, Some(*rf)),
            _ => {
                return Err(format!(
                    "{item:?} is not NAME:PARTITIONS[:REPLICATION_FACTOR]"
                ))
            }
        };
        if name.is_empty() {
            return Err(format!("{item:?} has no topic name"));
        }
        let partitions: i32 = partitions
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{item:?}: partitions must be a positive number"))?;
        let replication_factor: i16 =
            match rf {
                None => -1,
                Some(rf) => rf.parse().ok().filter(|r| *r > 0).ok_or_else(|| {
                    format!("{item:?}: replication factor must be a positive number")
                })?,
            };
        out.push(TopicSpec {
            name: name.to_string(),
            partitions,
            replication_factor,
        });
    }
    Ok(TopicSpecs(out))
}

/// `replica.selector.class`: true for the rack-aware selector, false for
/// the leader.
/// Kafka's authorizer class name: true for the standard (KRaft)
/// authorizer, false for none.
fn parse_authorizer(s: &str) -> Result<bool, String> {
    match s.trim() {
        "" => Ok(false),
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer" | "standard" => Ok(true),
        other => Err(format!(
            "{other:?}: Wharf's only authorizer is org.apache.kafka.metadata.authorizer.StandardAuthorizer (ACLs stored in the cluster metadata)"
        )),
    }
}

fn parse_replica_selector(s: &str) -> Result<bool, String> {
    match s {
        "org.apache.kafka.common.replica.RackAwareReplicaSelector" | "rack-aware" => Ok(true),
        "org.apache.kafka.common.replica.LeaderSelector" | "leader" => Ok(false),
        other => Err(format!(
            "{other:?}: the replica selectors are org.apache.kafka.common.replica.RackAwareReplicaSelector (rack-aware) and org.apache.kafka.common.replica.LeaderSelector (leader)"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn from_flags_reads_serve_flags_and_refuses_unknown_ones() {
        let config = Config::from_flags(["--data-dir", "/tmp/x", "--num-partitions", "3"]).unwrap();
        assert_eq!(config.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(config.num_partitions, 3);
        assert!(Config::from_flags(["--no-such-flag"]).is_err());
    }

    #[test]
    fn local_address_reaches_a_wildcard_listener_on_loopback() {
        let at = |listen: &str| {
            Config::from_flags(["--listen", listen])
                .unwrap()
                .local_address()
        };
        assert_eq!(at("0.0.0.0:19092").unwrap(), "127.0.0.1:19092");
        assert_eq!(at(":9093").unwrap(), "127.0.0.1:9093");
        assert_eq!(at("[::]:9094").unwrap(), "[::1]:9094");
        assert_eq!(at("broker:9095").unwrap(), "broker:9095");
        assert_eq!(
            Config::from_flags::<[&str; 0], &str>([])
                .unwrap()
                .local_address()
                .unwrap(),
            "localhost:9092"
        );
        let free = at("127.0.0.1:0").unwrap_err();
        assert!(free.contains("--bootstrap-server"), "{free}");
        assert!(at("no-port").is_err());
    }
}
