//! Kafka's configuration for `wharf serve`: a `server.properties` file
//! (`--config`) and the apache/kafka image's environment (`KAFKA_*`,
//! `CLUSTER_ID`).
//!
//! Kafka's keys are translated into `wharf serve` flags and fill only the
//! flags that neither the command line nor a `WHARF_*` variable set:
//! flags > `WHARF_*` env > `KAFKA_*` env > the file > defaults. Between the
//! two Kafka layers the merge is per Kafka key (a `KAFKA_*` variable
//! replaces the file's line, as the image does when it writes its
//! environment into the file), and the merged keys are then translated
//! together (listeners need several keys at once).
//!
//! Every translated value goes through the flag's own clap parser, so a bad
//! value is refused exactly as on the command line, but with the file name
//! and line (or the variable's name) in the message. [`KEYS`] is the table
//! of every Kafka key Wharf reads, ignores or refuses; anything else stops
//! the start.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use super::{Config, ServeFlags};

/// What Wharf does with one Kafka key.
#[derive(Debug, Clone, Copy)]
pub enum Use {
    /// Its value is the value of this `wharf serve` flag (long name).
    Flag(&'static str),
    /// Its value, converted, is the value of this flag.
    Convert(&'static str, Conversion),
    /// Read with the other listener keys into --listen,
    /// --advertised-listener and --controller-listen.
    Listeners,
    /// Checked (process.roles), sets no flag.
    Roles,
    /// A TLS or SASL key (`ssl.*`, `sasl.*`, `listener.name.*`): checked
    /// by `security::keys`, kept as it is for the listeners.
    Security,
    /// Accepted with one notice line: nothing in Wharf to set.
    Ignored(&'static str),
    /// Stops the start: Wharf cannot honour it.
    Refused(&'static str),
}

/// A value conversion from Kafka's form to the flag's.
#[derive(Debug, Clone, Copy)]
pub enum Conversion {
    /// Minutes to milliseconds (log.retention.minutes).
    MinutesToMs,
    /// `log.dirs`: one directory only.
    OneDir,
    /// `delete.topic.enable`: true is what Wharf does; false is refused.
    AlwaysTrue,
    /// `-1` means "unbounded" in Kafka: keep Wharf's default.
    MinusOneUnset,
}

/// One row of the key table.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The Kafka key, or a prefix ending in `.` for a family of keys.
    pub key: &'static str,
    pub to: Use,
}

const fn flag(key: &'static str, flag: &'static str) -> Key {
    Key {
        key,
        to: Use::Flag(flag),
    }
}

const fn ignored(key: &'static str, why: &'static str) -> Key {
    Key {
        key,
        to: Use::Ignored(why),
    }
}

const JVM: &str = "a JVM or thread-pool setting; Wharf has no equivalent";
const NOT_BROKER_WIDE: &str =
    "Wharf has no broker-wide default for it (set the topic config instead)";
const INTERNAL: &str = "a Kafka internal Wharf does not have";
const METRICS: &str = "Kafka's JMX metrics reporters; Wharf has none";

/// Every Kafka key Wharf knows. When two keys set one flag (node.id and
/// broker.id, log.dirs and log.dir, log.retention.ms and
/// log.retention.minutes), the first in this table wins, as in Kafka.
/// Rows whose key ends in `.` cover every key with that prefix.
pub static KEYS: &[Key] = &[
    // Identity and roles.
    flag("node.id", "node-id"),
    flag("broker.id", "node-id"),
    Key { key: "process.roles", to: Use::Roles },
    flag("broker.rack", "broker-rack"),
    flag("replica.selector.class", "replica-selector-class"),
    // Listeners and the controller quorum.
    Key { key: "listeners", to: Use::Listeners },
    Key { key: "advertised.listeners", to: Use::Listeners },
    Key { key: "listener.security.protocol.map", to: Use::Listeners },
    Key { key: "inter.broker.listener.name", to: Use::Listeners },
    Key { key: "security.inter.broker.protocol", to: Use::Listeners },
    Key { key: "controller.listener.names", to: Use::Listeners },
    flag("controller.quorum.voters", "controller-quorum-voters"),
    ignored(
        "controller.quorum.bootstrap.servers",
        "Wharf's quorum is set by controller.quorum.voters; without it this node is its own single voter",
    ),
    ignored("controller.quorum.election.timeout.ms", INTERNAL),
    ignored("controller.quorum.fetch.timeout.ms", INTERNAL),
    ignored("controller.quorum.election.backoff.max.ms", INTERNAL),
    ignored("controller.quorum.request.timeout.ms", INTERNAL),
    ignored("controller.quorum.retry.backoff.ms", INTERNAL),
    ignored("controller.quorum.append.linger.ms", INTERNAL),
    flag("broker.heartbeat.interval.ms", "broker-heartbeat-interval-ms"),
    flag("broker.session.timeout.ms", "broker-session-timeout-ms"),
    // Storage.
    Key { key: "log.dirs", to: Use::Convert("data-dir", Conversion::OneDir) },
    Key { key: "log.dir", to: Use::Convert("data-dir", Conversion::OneDir) },
    flag("log.segment.bytes", "segment-bytes"),
    flag("log.retention.ms", "log-retention-ms"),
    Key {
        key: "log.retention.minutes",
        to: Use::Convert("log-retention-ms", Conversion::MinutesToMs),
    },
    flag("log.retention.hours", "log-retention-hours"),
    flag("log.retention.bytes", "log-retention-bytes"),
    flag("log.retention.check.interval.ms", "log-retention-check-interval-ms"),
    flag("log.cleanup.policy", "log-cleanup-policy"),
    flag("log.flush.interval.messages", "log-flush-interval-messages"),
    flag("log.flush.interval.ms", "log-flush-interval-ms"),
    flag("log.flush.scheduler.interval.ms", "log-flush-scheduler-interval-ms"),
    ignored("log.flush.offset.checkpoint.interval.ms", INTERNAL),
    ignored("log.flush.start.offset.checkpoint.interval.ms", INTERNAL),
    flag("log.cleaner.backoff.ms", "log-cleaner-backoff-ms"),
    flag(
        "log.cleaner.io.max.bytes.per.second",
        "log-cleaner-io-max-bytes-per-second",
    ),
    ignored("log.cleaner.enable", "Wharf's cleaner always runs for compacted topics"),
    ignored("log.cleaner.threads", JVM),
    ignored("log.cleaner.dedupe.buffer.size", INTERNAL),
    ignored("log.cleaner.io.buffer.size", INTERNAL),
    ignored("log.cleaner.io.buffer.load.factor", INTERNAL),
    flag("log.cleaner.min.cleanable.ratio", "log-cleaner-min-cleanable-ratio"),
    flag("log.cleaner.delete.retention.ms", "log-cleaner-delete-retention-ms"),
    flag("log.cleaner.min.compaction.lag.ms", "log-cleaner-min-compaction-lag-ms"),
    flag("log.cleaner.max.compaction.lag.ms", "log-cleaner-max-compaction-lag-ms"),
    flag("log.roll.hours", "log-roll-hours"),
    flag("log.roll.ms", "log-roll-ms"),
    ignored("log.roll.jitter.hours", NOT_BROKER_WIDE),
    ignored("log.roll.jitter.ms", NOT_BROKER_WIDE),
    ignored("log.index.size.max.bytes", INTERNAL),
    ignored("log.index.interval.bytes", INTERNAL),
    ignored("log.preallocate", INTERNAL),
    ignored("log.segment.delete.delay.ms", INTERNAL),
    flag("min.insync.replicas", "min-insync-replicas"),
    flag("log.message.timestamp.type", "log-message-timestamp-type"),
    flag(
        "log.message.timestamp.before.max.ms",
        "log-message-timestamp-before-max-ms",
    ),
    flag(
        "log.message.timestamp.after.max.ms",
        "log-message-timestamp-after-max-ms",
    ),
    flag("unclean.leader.election.enable", "unclean-leader-election-enable"),
    ignored("num.recovery.threads.per.data.dir", JVM),
    // Topics.
    flag("num.partitions", "num-partitions"),
    flag("default.replication.factor", "default-replication-factor"),
    flag("auto.create.topics.enable", "auto-create-topics"),
    Key {
        key: "delete.topic.enable",
        to: Use::Convert("", Conversion::AlwaysTrue),
    },
    flag("message.max.bytes", "message-max-bytes"),
    flag("compression.type", "compression-type"),
    // Replication.
    flag("replica.lag.time.max.ms", "replica-lag-time-max-ms"),
    flag("replica.fetch.wait.max.ms", "replica-fetch-wait-max-ms"),
    flag("auto.leader.rebalance.enable", "auto-leader-rebalance-enable"),
    flag(
        "leader.imbalance.check.interval.seconds",
        "leader-imbalance-check-interval-seconds",
    ),
    ignored("leader.imbalance.per.broker.percentage", INTERNAL),
    ignored("num.replica.fetchers", JVM),
    ignored("replica.fetch.max.bytes", INTERNAL),
    ignored("replica.fetch.min.bytes", INTERNAL),
    ignored("replica.fetch.backoff.ms", INTERNAL),
    ignored("replica.socket.timeout.ms", INTERNAL),
    ignored("replica.socket.receive.buffer.bytes", JVM),
    ignored("replica.high.watermark.checkpoint.interval.ms", INTERNAL),
    // Connections and requests.
    flag("socket.request.max.bytes", "max-request-size"),
    flag("max.connections", "max-connections"),
    flag("max.connections.per.ip", "max-connections-per-ip"),
    flag("connections.max.idle.ms", "connections-max-idle-ms"),
    Key {
        key: "queued.max.request.bytes",
        to: Use::Convert("queued-max-request-bytes", Conversion::MinusOneUnset),
    },
    ignored("queued.max.requests", INTERNAL),
    ignored("num.network.threads", JVM),
    ignored("num.io.threads", JVM),
    ignored("background.threads", JVM),
    ignored("socket.send.buffer.bytes", JVM),
    ignored("socket.receive.buffer.bytes", JVM),
    ignored("socket.listen.backlog.size", JVM),
    ignored("request.timeout.ms", INTERNAL),
    flag(
        "max.incremental.fetch.session.cache.slots",
        "max-incremental-fetch-session-cache-slots",
    ),
    // Groups and offsets.
    flag("group.initial.rebalance.delay.ms", "group-initial-rebalance-delay-ms"),
    flag("group.min.session.timeout.ms", "group-min-session-timeout-ms"),
    flag("group.max.session.timeout.ms", "group-max-session-timeout-ms"),
    ignored("group.max.size", INTERNAL),
    ignored("group.coordinator.", INTERNAL),
    flag(
        "group.consumer.session.timeout.ms",
        "group-consumer-session-timeout-ms",
    ),
    flag(
        "group.consumer.heartbeat.interval.ms",
        "group-consumer-heartbeat-interval-ms",
    ),
    flag("group.consumer.max.size", "group-consumer-max-size"),
    flag("group.consumer.assignors", "group-consumer-assignors"),
    ignored("group.consumer.", INTERNAL),
    ignored("group.share.", INTERNAL),
    flag("offsets.topic.num.partitions", "offsets-topic-num-partitions"),
    flag(
        "offsets.topic.replication.factor",
        "offsets-topic-replication-factor",
    ),
    flag("offsets.retention.minutes", "offsets-retention-minutes"),
    ignored("offsets.topic.segment.bytes", INTERNAL),
    ignored("offsets.topic.compression.codec", INTERNAL),
    ignored("offsets.load.buffer.size", INTERNAL),
    ignored("offsets.commit.timeout.ms", INTERNAL),
    ignored("offsets.commit.required.acks", INTERNAL),
    ignored("offsets.retention.check.interval.ms", INTERNAL),
    // Transactions.
    flag("transaction.max.timeout.ms", "transaction-max-timeout-ms"),
    flag(
        "transaction.state.log.num.partitions",
        "transaction-state-log-num-partitions",
    ),
    flag(
        "transaction.state.log.replication.factor",
        "transaction-state-log-replication-factor",
    ),
    ignored("transaction.state.log.min.isr", INTERNAL),
    ignored("transaction.state.log.segment.bytes", INTERNAL),
    ignored("transaction.state.log.load.buffer.size", INTERNAL),
    ignored("transactional.id.expiration.ms", INTERNAL),
    ignored("transaction.abort.timed.out.transaction.cleanup.interval.ms", INTERNAL),
    ignored("transaction.remove.expired.transaction.cleanup.interval.ms", INTERNAL),
    ignored("producer.id.expiration.ms", INTERNAL),
    // Share groups (Kafka 4's shipped files set these).
    ignored("share.coordinator.", INTERNAL),
    // ZooKeeper, metrics, JVM-side plumbing.
    ignored("zookeeper.", "Wharf runs without ZooKeeper (KRaft-style quorum)"),
    ignored("metric.reporters", METRICS),
    ignored("metrics.", METRICS),
    ignored("kafka.metrics.", METRICS),
    ignored("confluent.", "a Confluent Platform setting"),
    // What Wharf cannot do: stop rather than run without it.
    // Security: see security::keys for what each key does.
    Key { key: "ssl.", to: Use::Security },
    Key { key: "sasl.", to: Use::Security },
    Key { key: "listener.name.", to: Use::Security },
    flag(
        "connection.failed.authentication.delay.ms",
        "connection-failed-authentication-delay-ms",
    ),
    flag("authorizer.class.name", "authorizer-class-name"),
    flag("super.users", "super-users"),
    flag(
        "allow.everyone.if.no.acl.found",
        "allow-everyone-if-no-acl-found",
    ),
];

/// `KAFKA_*` variables of the apache/kafka image that are not broker keys
/// (JVM, log4j and JMX options): accepted with a notice.
pub static IGNORED_ENV: &[&str] = &[
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPTS",
    "KAFKA_HEAP_OPT",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JMX_PORT",
    "KAFKA_JMX_HOSTNAME",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
    "KAFKA_DEBUG",
];

/// The row for `key`: an exact row, else the longest prefix row.
pub fn lookup(key: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.key == key).or_else(|| {
        KEYS.iter()
            .filter(|k| k.key.ends_with('.') && key.starts_with(k.key))
            .max_by_key(|k| k.key.len())
    })
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    WharfEnv(String),
    KafkaEnv(String),
    File { path: String, line: usize },
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => f.write_str("flag"),
            Origin::WharfEnv(var) => write!(f, "env {var}"),
            Origin::KafkaEnv(var) => write!(f, "env {var}"),
            Origin::File { path, line } => write!(f, "{path}:{line}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// Why the configuration was refused: the message names the file and line
/// or the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn at(origin: &Origin, key: &str, value: &str, reason: impl fmt::Display) -> Self {
        ConfigError(format!("{origin}: {key}={value}: {reason}"))
    }
}

/// One Kafka key's value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaValue {
    pub value: String,
    pub origin: Origin,
}

/// Kafka keys after merging the file and the `KAFKA_*` environment.
pub type KafkaMap = BTreeMap<String, KafkaValue>;

/// Reads a properties file's keys, each with its line. A key given twice
/// keeps its last value, as Java's `Properties` does.
pub fn read_properties(path: &Path) -> Result<KafkaMap, ConfigError> {
    let file = std::fs::File::open(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    parse_properties(std::io::BufReader::new(file), &path.display().to_string())
}

/// [`read_properties`] on any reader; `name` is the file name for messages.
pub fn parse_properties(input: impl std::io::Read, name: &str) -> Result<KafkaMap, ConfigError> {
    let mut out = KafkaMap::new();
    let lines = java_properties::PropertiesIter::new_with_encoding(input, encoding_rs::UTF_8);
    for line in lines {
        let line = line.map_err(|e| match e.line_number() {
            Some(n) => ConfigError(format!("{name}:{n}: {e}")),
            None => ConfigError(format!("{name}: {e}")),
        })?;
        let number = line.line_number();
        if let java_properties::LineContent::KVPair(key, value) = line.consume_content() {
            out.insert(
                key,
                KafkaValue {
                    value: value.trim().to_string(),
                    origin: Origin::File {
                        path: name.to_string(),
                        line: number,
                    },
                },
            );
        }
    }
    Ok(out)
}

/// The Kafka key an apache/kafka image variable stands for: `KAFKA_`
/// stripped, lower case, and runs of underscores read as `_` -> `.`,
/// `__` -> `_`, `___` -> `-`. `None` for a variable without the prefix or
/// with four underscores in a row (undefined in the image).
pub fn env_to_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("KAFKA_")?;
    let mut out = String::with_capacity(rest.len());
    let mut run = 0usize;
    let flush = |run: usize, out: &mut String| -> Option<()> {
        match run {
            0 => {}
            1 => out.push('.'),
            2 => out.push('_'),
            3 => out.push('-'),
            _ => return None,
        }
        Some(())
    };
    for c in rest.chars() {
        if c == '_' {
            run += 1;
            continue;
        }
        flush(run, &mut out)?;
        run = 0;
        out.push(c.to_ascii_lowercase());
    }
    flush(run, &mut out)?;
    (!out.is_empty()).then_some(out)
}

/// The Kafka keys of the environment (`KAFKA_*` and `CLUSTER_ID` aside),
/// with notices for the image's non-config variables.
fn env_keys(env: &BTreeMap<String, String>, notices: &mut Vec<String>) -> KafkaMap {
    let mut out = KafkaMap::new();
    for (var, value) in env {
        if !var.starts_with("KAFKA_") {
            continue;
        }
        if IGNORED_ENV.contains(&var.as_str()) {
            notices.push(format!(
                "env {var}: a JVM/log4j/JMX option of Kafka's image; ignored"
            ));
            continue;
        }
        // A variable that names no key is left to the unknown-key check.
        let key = env_to_key(var).unwrap_or_else(|| var.to_string());
        out.insert(
            key,
            KafkaValue {
                value: value.trim().to_string(),
                origin: Origin::KafkaEnv(var.clone()),
            },
        );
    }
    out
}

/// A flag value translated from Kafka's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// The flag's long name.
    pub flag: &'static str,
    pub value: String,
    /// The Kafka key it came from, for messages.
    pub key: String,
    pub origin: Origin,
}

/// Translates merged Kafka keys into flag values (first key in [`KEYS`]
/// wins per flag), plus one notice per ignored key.
pub fn translate(map: &KafkaMap, notices: &mut Vec<String>) -> Result<Vec<Fill>, ConfigError> {
    // Check every key first, so an unknown or refused one stops the start
    // whatever else is wrong.
    let mut rows: Vec<(&str, &KafkaValue, &'static Key)> = Vec::new();
    // In file order, then the variables, so that notices read like the file.
    let mut entries: Vec<(&String, &KafkaValue)> = map.iter().collect();
    entries.sort_by_key(|(_, kv)| match &kv.origin {
        Origin::File { line, .. } => (0, *line),
        _ => (1, 0),
    });
    for (key, kv) in entries {
        match lookup(key) {
            // A variable may belong to something else sharing the
            // environment (KAFKA_BOOTSTRAP_SERVERS for an application under
            // test, say): a notice, as Kafka warns of unknown keys. A file
            // line is meant for the broker: a typo stops the start.
            None if matches!(kv.origin, Origin::KafkaEnv(_)) => notices.push(format!(
                "{}: {key}: not a Kafka broker setting Wharf knows; ignored",
                kv.origin
            )),
            None => {
                return Err(ConfigError(format!(
                    "{}: {key}: unknown Kafka setting (see the README's table of Kafka keys)",
                    kv.origin
                )));
            }
            Some(Key {
                to: Use::Refused(why),
                ..
            }) => return Err(ConfigError::at(&kv.origin, key, &kv.value, why)),
            Some(Key {
                to: Use::Ignored(why),
                ..
            }) => notices.push(format!("{}: {key}: ignored, {why}", kv.origin)),
            Some(Key {
                to: Use::Security, ..
            }) => match crate::security::keys::check(key, &kv.value) {
                Err(why) => {
                    let shown = crate::security::keys::shown(key, &kv.value);
                    return Err(ConfigError::at(&kv.origin, key, shown, why));
                }
                Ok(Some(notice)) => notices.push(format!("{}: {notice}", kv.origin)),
                Ok(None) => {}
            },
            Some(row) => rows.push((key.as_str(), kv, row)),
        }
    }
    check_node_ids(map)?;
    check_roles(map, notices)?;
    let mut fills: Vec<Fill> = Vec::new();
    for row in KEYS {
        let Some((key, kv, _)) = rows.iter().find(|(k, _, _)| *k == row.key) else {
            continue;
        };
        let (flag, value) = match row.to {
            // Kafka reads booleans without regard to case; clap does not.
            Use::Flag(flag) if kv.value.eq_ignore_ascii_case("true") => (flag, "true".into()),
            Use::Flag(flag) if kv.value.eq_ignore_ascii_case("false") => (flag, "false".into()),
            Use::Flag(flag) => (flag, kv.value.clone()),
            Use::Convert(flag, conversion) => {
                match convert(conversion, &kv.value)
                    .map_err(|why| ConfigError::at(&kv.origin, key, &kv.value, why))?
                {
                    Some(value) => (flag, value),
                    None => {
                        notices.push(format!(
                            "{}: {key}={}: Wharf's default already does this",
                            kv.origin, kv.value
                        ));
                        continue;
                    }
                }
            }
            _ => continue,
        };
        if fills.iter().any(|f| f.flag == flag) {
            notices.push(format!(
                "{}: {key}: not used, an earlier key sets --{flag}",
                kv.origin
            ));
            continue;
        }
        fills.push(Fill {
            flag,
            value,
            key: key.to_string(),
            origin: kv.origin.clone(),
        });
    }
    fills.extend(listeners(map, notices)?);
    Ok(fills)
}

fn convert(conversion: Conversion, value: &str) -> Result<Option<String>, String> {
    match conversion {
        Conversion::MinutesToMs => {
            let minutes: i64 = value
                .parse()
                .map_err(|e| format!("not a number of minutes: {e}"))?;
            let ms = minutes
                .checked_mul(60_000)
                .ok_or_else(|| "too many minutes".to_string())?;
            Ok(Some(ms.to_string()))
        }
        Conversion::OneDir => {
            let dirs: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .collect();
            match dirs.as_slice() {
                [] => Err("no directory given".into()),
                [one] => Ok(Some((*one).to_string())),
                _ => Err(format!(
                    "Wharf keeps its data in one directory; {} given (keep one)",
                    dirs.len()
                )),
            }
        }
        Conversion::AlwaysTrue => match value {
            "true" => Ok(None),
            "false" => Err("Wharf always allows topic deletion".into()),
            _ => Err("not true or false".into()),
        },
        Conversion::MinusOneUnset => match value {
            "-1" => Ok(None),
            other => Ok(Some(other.to_string())),
        },
    }
}

/// node.id and broker.id, when both are given, must agree (as in Kafka).
fn check_node_ids(map: &KafkaMap) -> Result<(), ConfigError> {
    if let (Some(node), Some(broker)) = (map.get("node.id"), map.get("broker.id")) {
        if node.value != broker.value {
            return Err(ConfigError::at(
                &broker.origin,
                "broker.id",
                &broker.value,
                format!("differs from node.id={} ({})", node.value, node.origin),
            ));
        }
    }
    Ok(())
}

/// process.roles: every Wharf node is a broker and a voter of the metadata
/// quorum (Kafka's combined mode). A controller-only node is refused; a
/// broker-only node is run combined when it is one of the voters (or there
/// are none), and refused otherwise.
fn check_roles(map: &KafkaMap, notices: &mut Vec<String>) -> Result<(), ConfigError> {
    let Some(roles) = map.get("process.roles") else {
        return Ok(());
    };
    let mut broker = false;
    let mut controller = false;
    for role in roles.value.split(',').map(str::trim) {
        match role {
            "broker" => broker = true,
            "controller" => controller = true,
            other => {
                return Err(ConfigError::at(
                    &roles.origin,
                    "process.roles",
                    &roles.value,
                    format!("unknown role {other:?} (broker, controller)"),
                ))
            }
        }
    }
    let refuse = |why: &str| {
        Err(ConfigError::at(
            &roles.origin,
            "process.roles",
            &roles.value,
            why,
        ))
    };
    if !broker {
        return refuse(
            "a controller-only node is not supported: every Wharf node is a broker and a controller (use broker,controller)",
        );
    }
    if !controller {
        let node = map.get("node.id").or_else(|| map.get("broker.id"));
        let in_voters = match (map.get("controller.quorum.voters"), node) {
            (None, _) => true,
            (Some(voters), Some(node)) => voters
                .value
                .split(',')
                .any(|v| v.split_once('@').map(|(id, _)| id.trim()) == Some(node.value.trim())),
            (Some(_), None) => false,
        };
        if !in_voters {
            return refuse(
                "a broker-only node is not supported: every Wharf node is a broker and a voter of controller.quorum.voters (use broker,controller and list this node among the voters)",
            );
        }
        notices.push(format!(
            "{}: process.roles=broker: Wharf runs this node as broker and controller (combined mode)",
            roles.origin
        ));
    }
    Ok(())
}

/// One `NAME://host:port` of a listener list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    name: String,
    host: String,
    port: String,
}

impl Endpoint {
    /// host:port for Wharf's flags; an empty host is every interface.
    fn address(&self, wildcard: bool) -> String {
        let host = if self.host.is_empty() && wildcard {
            "0.0.0.0"
        } else {
            &self.host
        };
        format!("{host}:{}", self.port)
    }
}

fn parse_endpoints(kv: &KafkaValue, key: &str) -> Result<Vec<Endpoint>, ConfigError> {
    let mut out = Vec::new();
    for item in kv.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad =
            |why: &str| ConfigError::at(&kv.origin, key, &kv.value, format!("{item:?}: {why}"));
        let (name, address) = item
            .split_once("://")
            .ok_or_else(|| bad("not NAME://host:port"))?;
        let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        if port.parse::<u16>().is_err() {
            return Err(bad("bad port"));
        }
        if name.is_empty() {
            return Err(bad("no listener name"));
        }
        if out.iter().any(|e: &Endpoint| e.name == name) {
            return Err(bad("listener name given twice"));
        }
        out.push(Endpoint {
            name: name.to_string(),
            host: host.to_string(),
            port: port.to_string(),
        });
    }
    Ok(out)
}

/// listeners, advertised.listeners and the keys that name them, into
/// --listen, --advertised-listener and --controller-listen.
fn listeners(map: &KafkaMap, notices: &mut Vec<String>) -> Result<Vec<Fill>, ConfigError> {
    let controller_names: Vec<String> = map
        .get("controller.listener.names")
        .map(|kv| {
            kv.value
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let is_controller = |name: &str| controller_names.iter().any(|c| c == name);
    // Each listener's security protocol: the map, else the name itself.
    let mut protocols: BTreeMap<String, String> =
        ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
            .iter()
            .map(|p| (p.to_string(), p.to_string()))
            .collect();
    let mut protocol_fill = None;
    if let Some(kv) = map.get("listener.security.protocol.map") {
        protocols.clear();
        for pair in kv.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, protocol) = pair.split_once(':').ok_or_else(|| {
                ConfigError::at(
                    &kv.origin,
                    "listener.security.protocol.map",
                    &kv.value,
                    format!("{pair:?} is not NAME:PROTOCOL"),
                )
            })?;
            protocols.insert(name.trim().to_string(), protocol.trim().to_string());
        }
        // Controller listeners (not served by Wharf's broker side) aside,
        // the map goes to --listener-security-protocol-map.
        let brokers_only: Vec<String> = protocols
            .iter()
            .filter(|(name, _)| !is_controller(name))
            .map(|(name, protocol)| format!("{name}:{protocol}"))
            .collect();
        protocol_fill = Some((brokers_only.join(","), kv));
    }
    if let Some(kv) = map.get("security.inter.broker.protocol") {
        if kv.value != "PLAINTEXT" {
            return Err(ConfigError::at(
                &kv.origin,
                "security.inter.broker.protocol",
                &kv.value,
                "Wharf serves PLAINTEXT only",
            ));
        }
    }
    let advertised = match map.get("advertised.listeners") {
        Some(kv) => parse_endpoints(kv, "advertised.listeners")?,
        None => Vec::new(),
    };
    // Without listeners, listen where the advertised listeners say on every
    // interface, as the apache/kafka image does.
    let (listen_kv, endpoints) = match (map.get("listeners"), map.get("advertised.listeners")) {
        (Some(kv), _) => (kv, parse_endpoints(kv, "listeners")?),
        (None, Some(kv)) => {
            let derived = advertised
                .iter()
                .filter(|e| !is_controller(&e.name))
                .map(|e| Endpoint {
                    host: "0.0.0.0".into(),
                    ..e.clone()
                })
                .collect::<Vec<_>>();
            if !derived.is_empty() {
                notices.push(format!(
                    "{}: no listeners given: listening on 0.0.0.0 at the advertised listeners' ports",
                    kv.origin
                ));
            }
            (kv, derived)
        }
        (None, None) => return Ok(Vec::new()),
    };
    let (controllers, brokers): (Vec<&Endpoint>, Vec<&Endpoint>) =
        endpoints.iter().partition(|e| is_controller(&e.name));
    let refuse = |kv: &KafkaValue, key: &str, why: String| {
        Err(ConfigError::at(&kv.origin, key, &kv.value, why))
    };
    for e in &endpoints {
        match protocols.get(&e.name).map(String::as_str) {
            Some("PLAINTEXT") => {}
            Some("SSL" | "SASL_PLAINTEXT" | "SASL_SSL") if !is_controller(&e.name) => {}
            None if is_controller(&e.name)
                && map.get("listener.security.protocol.map").is_none() => {}
            None => {
                return refuse(
                    listen_kv,
                    "listeners",
                    format!(
                        "listener {} has no security protocol in listener.security.protocol.map",
                        e.name
                    ),
                )
            }
            Some(other) => {
                return refuse(
                    listen_kv,
                    "listeners",
                    if is_controller(&e.name) {
                        format!(
                            "controller listener {} is {other}: Wharf's controllers speak PLAINTEXT only",
                            e.name
                        )
                    } else {
                        format!(
                            "listener {} is {other}: not a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)",
                            e.name
                        )
                    },
                )
            }
        }
    }
    let mut fills = Vec::new();
    let fill = |flag: &'static str, value: String, key: &str, kv: &KafkaValue| Fill {
        flag,
        value,
        key: key.to_string(),
        origin: kv.origin.clone(),
    };
    if let Some((value, kv)) = protocol_fill {
        if !value.is_empty() {
            fills.push(fill(
                "listener-security-protocol-map",
                value,
                "listener.security.protocol.map",
                kv,
            ));
        }
    }
    // The listener brokers reach each other on: inter.broker.listener.name,
    // else the one named PLAINTEXT (Kafka's default, from
    // security.inter.broker.protocol), else the first.
    let primary = match map.get("inter.broker.listener.name") {
        Some(kv) => match brokers.iter().find(|e| e.name == kv.value) {
            Some(e) => Some(*e),
            None => {
                return refuse(
                    kv,
                    "inter.broker.listener.name",
                    "not one of the broker listeners in listeners".to_string(),
                )
            }
        },
        None => brokers
            .iter()
            .find(|e| e.name == "PLAINTEXT")
            .or_else(|| brokers.first())
            .copied(),
    };
    if let Some(kv) = map.get("advertised.listeners") {
        for e in &advertised {
            if !brokers.iter().any(|b| b.name == e.name) && !is_controller(&e.name) {
                return refuse(
                    kv,
                    "advertised.listeners",
                    format!("{} is not a listener in listeners", e.name),
                );
            }
        }
    }
    // What a listener advertises, when advertised.listeners names it with
    // a host (without one, Wharf advertises the listen address).
    let mut shown = |e: &Endpoint| -> Option<(String, &KafkaValue)> {
        let kv = map.get("advertised.listeners")?;
        let a = advertised.iter().find(|a| a.name == e.name)?;
        if a.host.is_empty() {
            notices.push(format!(
                "{}: advertised.listeners: {} has no host; Wharf advertises the listen host",
                kv.origin, a.name
            ));
            return None;
        }
        Some((a.address(false), kv))
    };
    if let Some(primary) = primary {
        fills.push(fill(
            "listen",
            primary.address(true),
            "listeners",
            listen_kv,
        ));
        fills.push(fill(
            "listener-name",
            primary.name.clone(),
            "listeners",
            listen_kv,
        ));
        if let Some((address, kv)) = shown(primary) {
            fills.push(fill(
                "advertised-listener",
                address,
                "advertised.listeners",
                kv,
            ));
        }
        let others: Vec<&Endpoint> = brokers
            .iter()
            .filter(|e| e.name != primary.name)
            .copied()
            .collect();
        if !others.is_empty() {
            let list: Vec<String> = others
                .iter()
                .map(|e| format!("{}://{}", e.name, e.address(false)))
                .collect();
            fills.push(fill(
                "extra-listeners",
                list.join(","),
                "listeners",
                listen_kv,
            ));
            let mut advertised_list = Vec::new();
            let mut advertised_kv = None;
            for e in &others {
                if let Some((address, kv)) = shown(e) {
                    advertised_list.push(format!("{}://{address}", e.name));
                    advertised_kv = Some(kv);
                }
            }
            if let Some(kv) = advertised_kv {
                fills.push(fill(
                    "extra-advertised-listeners",
                    advertised_list.join(","),
                    "advertised.listeners",
                    kv,
                ));
            }
        }
    }
    if let Some(controller) = controllers.first() {
        if map.contains_key("controller.quorum.voters") {
            fills.push(fill(
                "controller-listen",
                controller.address(true),
                "listeners",
                listen_kv,
            ));
        } else {
            notices.push(format!(
                "{}: listeners: {} not bound: without controller.quorum.voters this node is its own single-voter quorum",
                listen_kv.origin, controller.name
            ));
        }
    }
    Ok(fills)
}

/// One setting of the effective configuration, for `--print-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The flag's long name.
    pub flag: String,
    /// Its value (`None`: unset).
    pub value: Option<String>,
    pub origin: Origin,
    /// The Kafka key it was translated from, if any.
    pub key: Option<String>,
}

/// The configuration `wharf serve` runs with, and how it was made.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub settings: Vec<Setting>,
    /// One line per ignored key or variable, and per adjustment: logged at
    /// start.
    pub notices: Vec<String>,
}

impl Loaded {
    /// `--print-config`'s text: one line per setting.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for s in &self.settings {
            let value = s.value.as_deref().unwrap_or("(unset)");
            let origin = match &s.key {
                Some(key) => format!("{} ({key})", s.origin),
                None => s.origin.to_string(),
            };
            out.push_str(&format!("{:<44} {:<28} # {origin}\n", s.flag, value));
        }
        for notice in &self.notices {
            out.push_str(&format!("# {notice}\n"));
        }
        out
    }
}

/// Builds `wharf serve`'s configuration from its arguments (`args`' first
/// item is the program name, as for clap) and an environment: flags, then
/// `WHARF_*` variables, then `KAFKA_*` variables and `CLUSTER_ID`, then the
/// `--config` file, then defaults.
pub fn load<I, T>(args: I, env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let bin = args
        .first()
        .cloned()
        .unwrap_or_else(|| "wharf-serve".into());
    let with_env = ServeFlags::command();
    // (id, long, env) of every flag; the environment is read here from
    // `env`, not by clap from the process.
    let flags: Vec<(String, String, Option<String>)> = with_env
        .get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            Some((
                a.get_id().to_string(),
                long.to_string(),
                a.get_env().map(|e| e.to_string_lossy().into_owned()),
            ))
        })
        .collect();
    let cmd = with_env.mut_args(|a| a.env(None));
    let clap_error = |e: clap::Error| ConfigError(first_line(&e.to_string()));
    let given = cmd
        .clone()
        .try_get_matches_from(&args)
        .map_err(clap_error)?;
    let on_command_line = |id: &str| given.value_source(id) == Some(ValueSource::CommandLine);

    // Fills by flag long name: WHARF_* first, then Kafka's.
    let mut fills: BTreeMap<String, (String, Origin, Option<String>)> = BTreeMap::new();
    for (id, long, var) in &flags {
        if on_command_line(id) {
            continue;
        }
        if let Some((var, value)) = var.as_ref().and_then(|v| env.get(v).map(|x| (v, x))) {
            fills.insert(
                long.clone(),
                (value.clone(), Origin::WharfEnv(var.clone()), None),
            );
        }
    }
    let mut notices = Vec::new();
    let file = match (
        given.get_one::<std::path::PathBuf>("config_file"),
        fills.get("config"),
    ) {
        (Some(path), _) => Some(path.clone()),
        (None, Some((path, _, _))) => Some(path.into()),
        (None, None) => None,
    };
    let mut kafka = match &file {
        Some(path) => read_properties(path)?,
        None => KafkaMap::new(),
    };
    kafka.extend(env_keys(env, &mut notices));
    let mut kafka_fills = translate(&kafka, &mut notices)?;
    if let Some(id) = env.get("CLUSTER_ID") {
        kafka_fills.push(Fill {
            flag: "cluster-id",
            value: id.clone(),
            key: "CLUSTER_ID".into(),
            origin: Origin::KafkaEnv("CLUSTER_ID".into()),
        });
    }
    let memory = given.get_one::<bool>("memory") == Some(&true)
        || fills
            .get("memory")
            .is_some_and(|(value, _, _)| value == "true");
    for fill in kafka_fills {
        if memory && fill.flag == "data-dir" {
            notices.push(format!(
                "{} ({}) ignored: --memory keeps the logs in memory",
                fill.key, fill.origin
            ));
            continue;
        }
        let Some((id, _, _)) = flags.iter().find(|(_, long, _)| long == fill.flag) else {
            return Err(ConfigError(format!(
                "{}: {}: no flag --{} (a bug in Wharf's key table)",
                fill.origin, fill.key, fill.flag
            )));
        };
        if on_command_line(id) || fills.contains_key(fill.flag) {
            continue;
        }
        fills.insert(
            fill.flag.to_string(),
            (fill.value, fill.origin, Some(fill.key)),
        );
    }

    if memory && (on_command_line("data_dir") || fills.contains_key("data-dir")) {
        let from = match fills.get("data-dir") {
            Some((_, origin, _)) if !on_command_line("data_dir") => origin.to_string(),
            _ => Origin::Flag.to_string(),
        };
        return Err(ConfigError(format!(
            "--memory and --data-dir ({from}) exclude each other: a memory-mode broker makes its own data directory"
        )));
    }

    // Each filled value through its flag's parser alone, so that an error
    // names where the value came from.
    for (long, (value, origin, key)) in &fills {
        let single = [bin.clone(), format!("--{long}={value}").into()];
        if let Err(e) = cmd.clone().try_get_matches_from(single) {
            let name = key.clone().unwrap_or_else(|| format!("--{long}"));
            return Err(ConfigError::at(
                origin,
                &name,
                value,
                first_line(&e.to_string()),
            ));
        }
    }
    let mut full: Vec<OsString> = vec![bin];
    full.extend(
        fills
            .iter()
            .map(|(long, (value, _, _))| OsString::from(format!("--{long}={value}"))),
    );
    full.extend(args.iter().skip(1).cloned());
    let matches = cmd.clone().try_get_matches_from(full).map_err(clap_error)?;
    let mut config = ServeFlags::from_arg_matches(&matches)
        .map_err(clap_error)?
        .config;
    config.security_keys().map_err(ConfigError)?;
    let security_keys: Vec<(&String, &KafkaValue)> = kafka
        .iter()
        .filter(|(key, _)| {
            matches!(
                lookup(key),
                Some(Key {
                    to: Use::Security,
                    ..
                })
            )
        })
        .filter(|(key, _)| {
            crate::security::keys::classify(key) == crate::security::keys::KeyUse::Used
        })
        .collect();
    for (key, kv) in &security_keys {
        config
            .kafka_security_keys
            .0
            .insert((*key).clone(), kv.value.clone());
    }

    let settings = flags
        .iter()
        .filter(|(id, _, _)| id != "print_config")
        .map(|(id, long, _)| {
            let value = matches.get_raw(id).map(|raw| {
                raw.map(|v| {
                    let v = v.to_string_lossy().into_owned();
                    // A secret is never printed.
                    match v.split_once('=') {
                        Some((key, _)) if id == "security_config" => {
                            let shown = crate::security::keys::shown(key, "");
                            if shown.is_empty() {
                                v
                            } else {
                                format!("{key}={shown}")
                            }
                        }
                        _ => v,
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
            });
            let (origin, key) = match fills.get(long) {
                _ if on_command_line(id) => (Origin::Flag, None),
                Some((_, origin, key)) => (origin.clone(), key.clone()),
                None => (Origin::Default, None),
            };
            Setting {
                flag: long.clone(),
                value,
                origin,
                key,
            }
        })
        .collect::<Vec<Setting>>();
    let mut settings = settings;
    for (key, kv) in security_keys {
        settings.push(Setting {
            flag: format!("security-config {key}"),
            value: Some(crate::security::keys::shown(key, &kv.value).to_string()),
            origin: kv.origin.clone(),
            key: Some(key.clone()),
        });
    }
    Ok(Loaded {
        config,
        settings,
        notices,
    })
}

/// The first line of a clap error, without its `error: ` prefix.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
#[path = "kafka_tests.rs"]
mod tests;
