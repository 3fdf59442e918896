//! A topic and the rules for its name and configs.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::{BrokerError, Partition};

/// Kafka's limit on topic name length.
const MAX_NAME_LEN: usize = 249;

#[derive(Debug)]
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    /// Configs set explicitly on this topic (not defaults). Stored and
    /// replayed now; DescribeConfigs and the log settings read them as they
    /// arrive.
    #[allow(dead_code)]
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }
}

/// Kafka's topic name rules: 1..=249 characters from [a-zA-Z0-9._-], and
/// not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), BrokerError> {
    let invalid = |why: &str| {
        Err(BrokerError::InvalidTopic(format!(
            "topic name {name:?} {why}"
        )))
    };
    if name.is_empty() {
        return invalid("is empty");
    }
    if name == "." || name == ".." {
        return invalid("cannot be '.' or '..'");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("has characters other than ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

/// Topic configs whose values Wharf checks now; others are stored as given.
pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), BrokerError> {
    for (key, value) in configs {
        super::compression::validate_config(key, value)?;
        let numeric_min = match key.as_str() {
            "segment.bytes" => Some(14),
            "retention.ms" | "retention.bytes" => Some(-1),
            "max.message.bytes" => Some(0),
            _ => None,
        };
        if let Some(min) = numeric_min {
            match value.parse::<i64>() {
                Ok(v) if v >= min => {}
                _ => {
                    return Err(BrokerError::InvalidConfig(format!(
                        "invalid value {value:?} for {key}: must be an integer >= {min}"
                    )))
                }
            }
        }
        if key == "cleanup.policy"
            && !value
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact"))
        {
            return Err(BrokerError::InvalidConfig(format!(
                "invalid value {value:?} for cleanup.policy: expected delete, compact or both"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_style_names_and_rejects_others() {
        for ok in ["orders", "a.b_c-d", "X9", &"x".repeat(249)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "has space", "slash/x", "ü", &"x".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_values_for_checked_configs() {
        let cfg = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(validate_configs(&cfg("retention.ms", "1000")).is_ok());
        assert!(validate_configs(&cfg("retention.ms", "soon")).is_err());
        assert!(validate_configs(&cfg("segment.bytes", "10")).is_err());
        assert!(validate_configs(&cfg("cleanup.policy", "compact,delete")).is_ok());
        assert!(validate_configs(&cfg("cleanup.policy", "shred")).is_err());
        assert!(validate_configs(&cfg("some.unknown", "x")).is_ok());
    }
}
