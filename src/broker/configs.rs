//! The one table of topic configs Wharf knows: name, type, default, valid
//! values, the broker config that supplies the default (its synonym), and
//! documentation. Validation, DescribeConfigs, the Alter APIs and the
//! mapping to the log engine's `LogConfig` all read this table.
//!
//! A topic config's value comes, in order of precedence, from the topic's own
//! override (DYNAMIC_TOPIC_CONFIG), from a broker flag (STATIC_BROKER_CONFIG)
//! or from Kafka's default (DEFAULT_CONFIG).

use std::collections::BTreeMap;

use wharf_storage::LogConfig;

use super::BrokerError;

/// DescribeConfigs' config sources (Kafka's `ConfigSource` ids).
pub mod source {
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
}

/// DescribeConfigs' config types (v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// What values a config accepts beyond its type.
#[derive(Debug, Clone, Copy)]
pub enum Valid {
    Any,
    /// Inclusive integer range.
    Range(i64, i64),
    /// Inclusive integer range, or one special value outside it (such as
    /// -1 for "the codec's default").
    RangeOr(i64, i64, i64),
    /// Inclusive floating-point range.
    Between(f64, f64),
    /// One of these strings (case-sensitive, as Kafka).
    OneOf(&'static [&'static str]),
    /// A non-empty list of these strings.
    ListOf(&'static [&'static str]),
}

/// A broker config that supplies a topic config's default; the broker
/// value times `scale` is the topic value (log.retention.hours: 3600000).
#[derive(Debug, Clone, Copy)]
pub struct Synonym {
    pub name: &'static str,
    pub scale: i64,
}

/// One known topic config.
#[derive(Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    pub default: &'static str,
    pub valid: Valid,
    /// Broker configs giving the default, most specific first. The last one
    /// is the broker default shown with source DEFAULT_CONFIG.
    pub synonyms: &'static [Synonym],
    pub doc: &'static str,
}

const fn syn(name: &'static str) -> Synonym {
    Synonym { name, scale: 1 }
}

const I32_MAX: i64 = i32::MAX as i64;
const I64_MAX: i64 = i64::MAX;
const HOUR_MS: i64 = 3_600_000;

const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Every topic config Wharf knows, sorted by name. Configs the engine does
/// not act on yet are accepted, stored and described, as listed in the
/// README's configs section.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef { name: "cleanup.policy", ty: ConfigType::List, default: "delete",
        valid: Valid::ListOf(&["compact", "delete"]), synonyms: &[syn("log.cleanup.policy")],
        doc: "delete: old segments are removed by retention; compact: only the latest record per key is kept." },
    ConfigDef { name: "compression.gzip.level", ty: ConfigType::Int, default: "-1",
        valid: Valid::RangeOr(1, 9, -1), synonyms: &[syn("compression.gzip.level")],
        doc: "Level of gzip compression when compression.type is gzip (-1: the codec's default)." },
    ConfigDef { name: "compression.lz4.level", ty: ConfigType::Int, default: "9",
        valid: Valid::Range(1, 17), synonyms: &[syn("compression.lz4.level")],
        doc: "Level of lz4 compression when compression.type is lz4." },
    ConfigDef { name: "compression.type", ty: ConfigType::String, default: "producer",
        valid: Valid::OneOf(COMPRESSION_TYPES), synonyms: &[syn("compression.type")],
        doc: "Compression of the stored batches; producer keeps the producer's codec." },
    ConfigDef { name: "compression.zstd.level", ty: ConfigType::Int, default: "3",
        valid: Valid::Range(-131_072, 22), synonyms: &[syn("compression.zstd.level")],
        doc: "Level of zstd compression when compression.type is zstd." },
    ConfigDef { name: "delete.retention.ms", ty: ConfigType::Long, default: "86400000",
        valid: Valid::Range(0, I64_MAX), synonyms: &[syn("log.cleaner.delete.retention.ms")],
        doc: "How long tombstones are kept on compacted topics." },
    ConfigDef { name: "file.delete.delay.ms", ty: ConfigType::Long, default: "60000",
        valid: Valid::Range(0, I64_MAX), synonyms: &[syn("log.segment.delete.delay.ms")],
        doc: "Time to wait before deleting a file from the filesystem." },
    ConfigDef { name: "flush.messages", ty: ConfigType::Long, default: "9223372036854775807",
        valid: Valid::Range(1, I64_MAX), synonyms: &[syn("log.flush.interval.messages")],
        doc: "fsync the log after this many messages." },
    ConfigDef { name: "flush.ms", ty: ConfigType::Long, default: "9223372036854775807",
        valid: Valid::Range(0, I64_MAX), synonyms: &[syn("log.flush.interval.ms")],
        doc: "fsync the log when this much time has passed since the last fsync." },
    ConfigDef { name: "index.interval.bytes", ty: ConfigType::Int, default: "4096",
        valid: Valid::Range(0, I32_MAX), synonyms: &[syn("log.index.interval.bytes")],
        doc: "Bytes of log between offset-index entries." },
    ConfigDef { name: "max.compaction.lag.ms", ty: ConfigType::Long, default: "9223372036854775807",
        valid: Valid::Range(1, I64_MAX), synonyms: &[syn("log.cleaner.max.compaction.lag.ms")],
        doc: "Longest time a record stays ineligible for compaction." },
    ConfigDef { name: "max.message.bytes", ty: ConfigType::Int, default: "1048588",
        valid: Valid::Range(0, I32_MAX), synonyms: &[syn("message.max.bytes")],
        doc: "Largest record batch the topic accepts; larger ones get MESSAGE_TOO_LARGE." },
    ConfigDef { name: "message.timestamp.after.max.ms", ty: ConfigType::Long, default: "3600000",
        valid: Valid::Range(0, I64_MAX), synonyms: &[syn("log.message.timestamp.after.max.ms")],
        doc: "Largest allowed lead of a record timestamp over the broker's clock." },
    ConfigDef { name: "message.timestamp.before.max.ms", ty: ConfigType::Long, default: "9223372036854775807",
        valid: Valid::Range(0, I64_MAX), synonyms: &[syn("log.message.timestamp.before.max.ms")],
        doc: "Largest allowed lag of a record timestamp behind the broker's clock." },
    ConfigDef { name: "message.timestamp.difference.max.ms", ty: ConfigType::Long, default: "9223372036854775807",
        valid: Valid::Range(0, I64_MAX), synonyms: &[syn("log.message.timestamp.difference.max.ms")],
        doc: "Largest allowed distance of a record timestamp from the broker's clock, either way (deprecated in Kafka 3.6 for the before/after pair; the tighter applies)." },
    ConfigDef { name: "message.timestamp.type", ty: ConfigType::String, default: "CreateTime",
        valid: Valid::OneOf(&["CreateTime", "LogAppendTime"]), synonyms: &[syn("log.message.timestamp.type")],
        doc: "Whether record timestamps are the producer's or the broker's append time." },
    ConfigDef { name: "min.cleanable.dirty.ratio", ty: ConfigType::Double, default: "0.5",
        valid: Valid::Between(0.0, 1.0), synonyms: &[syn("log.cleaner.min.cleanable.ratio")],
        doc: "Dirty share of the log above which the cleaner compacts it." },
    ConfigDef { name: "min.compaction.lag.ms", ty: ConfigType::Long, default: "0",
        valid: Valid::Range(0, I64_MAX), synonyms: &[syn("log.cleaner.min.compaction.lag.ms")],
        doc: "Shortest time a record stays uncompacted." },
    ConfigDef { name: "min.insync.replicas", ty: ConfigType::Int, default: "1",
        valid: Valid::Range(1, I32_MAX), synonyms: &[syn("min.insync.replicas")],
        doc: "Replicas that must acknowledge an acks=all write." },
    ConfigDef { name: "preallocate", ty: ConfigType::Boolean, default: "false",
        valid: Valid::Any, synonyms: &[syn("log.preallocate")],
        doc: "Preallocate segment files." },
    ConfigDef { name: "retention.bytes", ty: ConfigType::Long, default: "-1",
        valid: Valid::Range(-1, I64_MAX), synonyms: &[syn("log.retention.bytes")],
        doc: "Largest size a partition's log may grow to before old segments are deleted (-1: no limit)." },
    ConfigDef { name: "retention.ms", ty: ConfigType::Long, default: "604800000",
        valid: Valid::Range(-1, I64_MAX),
        synonyms: &[syn("log.retention.ms"), Synonym { name: "log.retention.hours", scale: HOUR_MS }],
        doc: "How long a segment is kept after its newest record (-1: forever)." },
    ConfigDef { name: "segment.bytes", ty: ConfigType::Int, default: "1073741824",
        valid: Valid::Range(14, I32_MAX), synonyms: &[syn("log.segment.bytes")],
        doc: "Size at which the active segment rolls." },
    ConfigDef { name: "segment.index.bytes", ty: ConfigType::Int, default: "10485760",
        valid: Valid::Range(4, I32_MAX), synonyms: &[syn("log.index.size.max.bytes")],
        doc: "Size of a segment's offset and time indexes; a full index rolls the segment." },
    ConfigDef { name: "segment.jitter.ms", ty: ConfigType::Long, default: "0",
        valid: Valid::Range(0, I64_MAX), synonyms: &[syn("log.roll.jitter.ms")],
        doc: "Random jitter subtracted from segment.ms." },
    ConfigDef { name: "segment.ms", ty: ConfigType::Long, default: "604800000",
        valid: Valid::Range(1, I64_MAX),
        synonyms: &[syn("log.roll.ms"), Synonym { name: "log.roll.hours", scale: HOUR_MS }],
        doc: "Age at which the active segment rolls even if not full." },
    ConfigDef { name: "unclean.leader.election.enable", ty: ConfigType::Boolean, default: "false",
        valid: Valid::Any, synonyms: &[syn("unclean.leader.election.enable")],
        doc: "Whether an out-of-sync replica may become leader." },
];

pub fn topic_config(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// A config's value as described: where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
}

/// Broker-level configs: the log defaults set by `wharf serve` flags (keyed
/// by their Kafka broker names) and the broker's other static settings.
#[derive(Debug, Clone, Default)]
pub struct BrokerConfigs {
    /// Broker synonyms of topic configs set by flags, e.g. log.retention.ms.
    pub log_overrides: BTreeMap<String, String>,
    /// Other broker configs, always static (node.id, num.partitions, ...).
    pub other: BTreeMap<String, String>,
}

impl BrokerConfigs {
    /// Checks every flag-set log default against the table.
    pub fn validate(&self) -> Result<(), BrokerError> {
        for (name, value) in &self.log_overrides {
            let (def, scale) = TOPIC_CONFIGS
                .iter()
                .find_map(|d| {
                    d.synonyms
                        .iter()
                        .find(|s| s.name == name)
                        .map(|s| (d, s.scale))
                })
                .ok_or_else(|| {
                    BrokerError::InvalidConfig(format!("unknown broker config {name}"))
                })?;
            let topic_value =
                scaled(value, scale).ok_or_else(|| invalid(name, value, "must be an integer"))?;
            validate_value(def, &topic_value)
                .map_err(|e| BrokerError::InvalidConfig(format!("broker config {name}: {e}")))?;
        }
        Ok(())
    }

    /// The effective value of topic config `def` given the topic's overrides,
    /// followed by its lower-precedence synonyms, in Kafka's order.
    pub fn resolve(&self, def: &ConfigDef, overrides: &BTreeMap<String, String>) -> Vec<Resolved> {
        let mut chain = Vec::new();
        if let Some(v) = overrides.get(def.name) {
            chain.push(Resolved {
                name: def.name.to_string(),
                value: Some(v.clone()),
                source: source::DYNAMIC_TOPIC_CONFIG,
            });
        }
        for s in def.synonyms {
            if let Some(v) = self.log_overrides.get(s.name) {
                chain.push(Resolved {
                    name: s.name.to_string(),
                    value: Some(v.clone()),
                    source: source::STATIC_BROKER_CONFIG,
                });
            }
        }
        if let Some(last) = def.synonyms.last() {
            chain.push(Resolved {
                name: last.name.to_string(),
                value: Some(unscaled(def.default, last.scale)),
                source: source::DEFAULT_CONFIG,
            });
        }
        chain
    }

    /// The topic-level value of `def`: the override, else the broker's.
    pub fn effective(&self, def: &ConfigDef, overrides: &BTreeMap<String, String>) -> String {
        if let Some(v) = overrides.get(def.name) {
            return v.clone();
        }
        def.synonyms
            .iter()
            .find_map(|s| {
                self.log_overrides
                    .get(s.name)
                    .and_then(|v| scaled(v, s.scale))
            })
            .unwrap_or_else(|| def.default.to_string())
    }

    /// The effective value of a known config by name (the table's default
    /// when the name is unknown, which cannot happen for table names).
    pub fn effective_named(&self, name: &str, overrides: &BTreeMap<String, String>) -> String {
        topic_config(name)
            .map(|d| self.effective(d, overrides))
            .unwrap_or_default()
    }

    /// The log engine's settings for a topic with `overrides`.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let num = |name: &str| self.effective_named(name, overrides).parse::<i64>().ok();
        let base = LogConfig::default();
        let policy = self.effective_named("cleanup.policy", overrides);
        LogConfig {
            segment_bytes: num("segment.bytes")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(base.segment_bytes),
            index_interval_bytes: num("index.interval.bytes")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(base.index_interval_bytes),
            max_batch_bytes: num("max.message.bytes")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(base.max_batch_bytes),
            index_max_bytes: num("segment.index.bytes")
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(base.index_max_bytes),
            segment_ms: num("segment.ms").unwrap_or(base.segment_ms),
            segment_jitter_ms: num("segment.jitter.ms").unwrap_or(base.segment_jitter_ms),
            retention_ms: num("retention.ms").unwrap_or(base.retention_ms),
            retention_bytes: num("retention.bytes").unwrap_or(base.retention_bytes),
            flush_messages: num("flush.messages")
                .and_then(|v| u64::try_from(v).ok())
                .filter(|v| *v < i64::MAX as u64)
                .unwrap_or(base.flush_messages),
            flush_ms: num("flush.ms").unwrap_or(base.flush_ms),
            delete_retention_enabled: policy.split(',').any(|p| p.trim() == "delete"),
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            min_compaction_lag_ms: num("min.compaction.lag.ms")
                .unwrap_or(base.min_compaction_lag_ms),
            delete_retention_ms: num("delete.retention.ms").unwrap_or(base.delete_retention_ms),
            min_cleanable_dirty_ratio: self
                .effective_named("min.cleanable.dirty.ratio", overrides)
                .parse::<f64>()
                .unwrap_or(base.min_cleanable_dirty_ratio),
            max_compaction_lag_ms: num("max.compaction.lag.ms")
                .unwrap_or(base.max_compaction_lag_ms),
            ..base
        }
    }
}

/// The broker value times `scale`, as a topic value.
fn scaled(value: &str, scale: i64) -> Option<String> {
    if scale == 1 {
        return Some(value.to_string());
    }
    value
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|v| v.checked_mul(scale))
        .map(|v| v.to_string())
}

fn unscaled(value: &str, scale: i64) -> String {
    if scale == 1 {
        return value.to_string();
    }
    value
        .parse::<i64>()
        .map(|v| (v / scale).to_string())
        .unwrap_or_else(|_| value.to_string())
}

fn invalid(name: &str, value: &str, why: &str) -> BrokerError {
    BrokerError::InvalidConfig(format!(
        "Invalid value {value} for configuration {name}: {why}"
    ))
}

/// Checks one value against its definition.
pub fn validate_value(def: &ConfigDef, value: &str) -> Result<(), BrokerError> {
    let bad = |why: String| Err(invalid(def.name, value, &why));
    let trimmed = value.trim();
    match def.ty {
        ConfigType::Boolean => {
            if !trimmed.eq_ignore_ascii_case("true") && !trimmed.eq_ignore_ascii_case("false") {
                return bad("Expected value to be either true or false".into());
            }
        }
        ConfigType::Int | ConfigType::Long => {
            let parsed = if def.ty == ConfigType::Int {
                trimmed.parse::<i32>().map(i64::from).ok()
            } else {
                trimmed.parse::<i64>().ok()
            };
            let Some(v) = parsed else {
                let ty = if def.ty == ConfigType::Int {
                    "32-bit"
                } else {
                    "64-bit"
                };
                return bad(format!("Not a number of type {ty} integer"));
            };
            if let Valid::RangeOr(min, max, special) = def.valid {
                if v != special && !(min..=max).contains(&v) {
                    return bad(format!(
                        "Value must be {special} or between {min} and {max}"
                    ));
                }
            }
            if let Valid::Range(min, max) = def.valid {
                if v < min {
                    return bad(format!("Value must be at least {min}"));
                }
                if v > max {
                    return bad(format!("Value must be no more than {max}"));
                }
            }
        }
        ConfigType::Double => {
            let Ok(v) = trimmed.parse::<f64>() else {
                return bad("Not a number of type DOUBLE".into());
            };
            if let Valid::Between(min, max) = def.valid {
                if !(min..=max).contains(&v) {
                    return bad(format!("Value must be between {min} and {max}"));
                }
            }
        }
        ConfigType::String => {
            if let Valid::OneOf(allowed) = def.valid {
                if !allowed.contains(&trimmed) {
                    return bad(format!("String must be one of: {}", allowed.join(", ")));
                }
            }
        }
        ConfigType::List => {
            if let Valid::ListOf(allowed) = def.valid {
                let items: Vec<&str> = split_list(trimmed);
                if items.is_empty() {
                    return bad("Empty list".into());
                }
                if let Some(bad_item) = items.iter().find(|i| !allowed.contains(i)) {
                    return bad(format!(
                        "{bad_item} is not one of: [{}]",
                        allowed.join(", ")
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The items of a list config's value.
pub fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Checks a full set of topic overrides: every name known, every value valid.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), BrokerError> {
    for (name, value) in configs {
        let def = topic_config(name).ok_or_else(|| {
            BrokerError::InvalidConfig(format!("Unknown topic config name: {name}"))
        })?;
        validate_value(def, value)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn table_is_sorted_and_defaults_are_valid() {
        let names: Vec<_> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for def in TOPIC_CONFIGS {
            validate_value(def, def.default).unwrap();
            assert!(!def.synonyms.is_empty(), "{}", def.name);
        }
    }

    #[test]
    fn rejects_unknown_names_and_bad_values_with_messages() {
        let err = validate_topic_configs(&map(&[("no.such", "1")])).unwrap_err();
        assert_eq!(err.to_string(), "Unknown topic config name: no.such");
        for (k, v) in [
            ("retention.ms", "soon"),
            ("retention.ms", "-2"),
            ("segment.bytes", "10"),
            ("segment.bytes", "3000000000"),
            ("cleanup.policy", "shred"),
            ("cleanup.policy", ""),
            ("compression.type", "brotli"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("preallocate", "yes"),
        ] {
            assert!(validate_topic_configs(&map(&[(k, v)])).is_err(), "{k}={v}");
        }
        for (k, v) in [
            ("retention.ms", "-1"),
            ("cleanup.policy", "compact,delete"),
            ("compression.type", "zstd"),
            ("min.cleanable.dirty.ratio", "0.1"),
            ("preallocate", "TRUE"),
        ] {
            validate_topic_configs(&map(&[(k, v)])).unwrap();
        }
    }

    #[test]
    fn resolves_override_then_static_broker_then_default() {
        let def = topic_config("retention.ms").unwrap();
        let mut broker = BrokerConfigs::default();
        let none = BTreeMap::new();
        assert_eq!(broker.effective(def, &none), "604800000");
        let chain = broker.resolve(def, &none);
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0].name, "log.retention.hours");
        assert_eq!(chain[0].value.as_deref(), Some("168"));
        assert_eq!(chain[0].source, source::DEFAULT_CONFIG);

        broker
            .log_overrides
            .insert("log.retention.hours".into(), "2".into());
        assert_eq!(broker.effective(def, &none), "7200000");
        broker
            .log_overrides
            .insert("log.retention.ms".into(), "5000".into());
        assert_eq!(broker.effective(def, &none), "5000");

        let topic = map(&[("retention.ms", "1000")]);
        assert_eq!(broker.effective(def, &topic), "1000");
        let sources: Vec<_> = broker
            .resolve(def, &topic)
            .iter()
            .map(|r| r.source)
            .collect();
        assert_eq!(
            sources,
            [
                source::DYNAMIC_TOPIC_CONFIG,
                source::STATIC_BROKER_CONFIG,
                source::STATIC_BROKER_CONFIG,
                source::DEFAULT_CONFIG
            ]
        );
        assert_eq!(broker.log_config(&topic).retention_ms, 1000);
        assert_eq!(broker.log_config(&none).retention_ms, 5000);
    }

    #[test]
    fn maps_cleanup_policy_and_sizes_to_the_log_config() {
        let broker = BrokerConfigs::default();
        let cfg = broker.log_config(&map(&[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1000"),
            ("max.message.bytes", "500"),
            ("retention.bytes", "4096"),
        ]));
        assert!(!cfg.delete_retention_enabled);
        assert!(cfg.compact);
        assert_eq!(cfg.segment_bytes, 1000);
        assert_eq!(cfg.max_batch_bytes, 500);
        assert_eq!(cfg.retention_bytes, 4096);
        let default = broker.log_config(&BTreeMap::new());
        assert!(default.delete_retention_enabled && !default.compact);
    }
}
