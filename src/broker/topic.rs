//! A topic and the rules for its name and configs.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use uuid::Uuid;

use super::{BrokerError, Partition};

/// Kafka's limit on topic name length.
const MAX_NAME_LEN: usize = 249;

#[derive(Debug)]
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    /// The partitions this broker hosts (a replica of), by index.
    pub partitions: Vec<Arc<Partition>>,
    /// How many partitions the topic has in the cluster, hosted here or not.
    pub partition_count: i32,
    /// Configs set explicitly on this topic (its overrides, not defaults).
    pub configs: RwLock<BTreeMap<String, String>>,
}

impl Topic {
    /// Partition `index`, when this broker hosts it.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.partitions
            .binary_search_by_key(&index, |p| p.index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    /// A copy of the topic's config overrides.
    pub fn configs(&self) -> BTreeMap<String, String> {
        self.configs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_configs(&self, configs: BTreeMap<String, String>) {
        *self.configs.write().unwrap_or_else(PoisonError::into_inner) = configs;
    }

    /// The topic's partitions in the cluster (not only those hosted here).
    pub fn partition_count(&self) -> i32 {
        self.partition_count
    }
}

/// The metadata quorum's log (`__cluster_metadata-0` in the data
/// directory): no client topic may take its name.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// A topic name with every `.` read as `_`: two topics whose keys are equal
/// collide (Kafka's `Topic.hasCollision`).
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
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
    if name == CLUSTER_METADATA_TOPIC {
        return invalid("is the cluster metadata log's own");
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
}
