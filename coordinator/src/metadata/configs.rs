//! Topic config changes (IncrementalAlterConfigs on topics), with the
//! behaviour of Kafka's `ConfigurationControlManager.incrementalAlterConfigs`
//! for the SET and DELETE operations.
//!
//! Departures from Kafka: config names and values are not validated against
//! the topic config definitions (any key is accepted), and APPEND/SUBTRACT
//! (list-valued configs) are not decided here.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;

use super::controller::ControllerError;
use super::image::{ConfigResource, MetadataImage};
use super::records::{ConfigRecord, MetadataRecord, CONFIG_RESOURCE_TOPIC};

/// One operation on a topic config key: set it to a value, or delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
}

/// Decides incremental changes to the config overrides of topic `name`: one
/// ConfigRecord per key whose value changes (a `None` value for a deleted
/// key), in key order. Setting a key to its current value or deleting an
/// absent key changes nothing; the last operation on a key wins. An
/// unknown topic is UNKNOWN_TOPIC_OR_PARTITION.
pub fn alter_topic_configs(
    image: &MetadataImage,
    name: &str,
    ops: &[ConfigOp],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if image.topic_id(name).is_none() {
        return Err(ControllerError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        ));
    }
    let empty = BTreeMap::new();
    let current = image
        .configs(&ConfigResource::Topic(name.to_owned()))
        .unwrap_or(&empty);
    let mut wanted: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for op in ops {
        match op {
            ConfigOp::Set(key, value) => wanted.insert(key, Some(value)),
            ConfigOp::Delete(key) => wanted.insert(key, None),
        };
    }
    Ok(wanted
        .into_iter()
        .filter(|(key, value)| current.get(*key).map(String::as_str) != *value)
        .map(|(key, value)| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: name.to_owned(),
                name: key.to_owned(),
                value: value.map(str::to_owned),
            })
        })
        .collect())
}

/// The operations that make topic `name`'s overrides exactly `configs`:
/// a SET for every key of `configs`, a DELETE for every key the image has
/// and `configs` lacks.
pub fn replace_ops(
    image: &MetadataImage,
    name: &str,
    configs: &BTreeMap<String, String>,
) -> Vec<ConfigOp> {
    let mut ops: Vec<ConfigOp> = configs
        .iter()
        .map(|(k, v)| ConfigOp::Set(k.clone(), v.clone()))
        .collect();
    if let Some(current) = image.configs(&ConfigResource::Topic(name.to_owned())) {
        ops.extend(
            current
                .keys()
                .filter(|k| !configs.contains_key(*k))
                .map(|k| ConfigOp::Delete(k.clone())),
        );
    }
    ops
}

/// Decides replacing topic `name`'s config overrides with exactly
/// `configs`: the records of [`alter_topic_configs`] for [`replace_ops`].
pub fn set_topic_configs(
    image: &MetadataImage,
    name: &str,
    configs: &BTreeMap<String, String>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    alter_topic_configs(image, name, &replace_ops(image, name, configs))
}

#[cfg(test)]
#[path = "configs_tests.rs"]
mod tests;
