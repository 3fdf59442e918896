//! What the config APIs (DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs, and CreateTopics' config listing) share: the
//! resources they name and the described form of every config.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;

use crate::broker::configs::{source, ConfigType, Resolved, TOPIC_CONFIGS};
use crate::broker::Broker;

/// Kafka's resource type ids.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// A config resource a request names.
#[derive(Debug)]
pub enum Target {
    /// A topic of the cluster's metadata image: its name and overrides.
    Topic(String, BTreeMap<String, String>),
    /// This broker (named by its node id).
    Broker,
    /// The cluster-wide dynamic broker defaults (an empty broker name);
    /// Wharf has none.
    BrokerDefaults,
}

/// A request's per-resource failure: the Kafka error and a message.
pub type Failure = (ResponseError, String);

pub fn target(broker: &Broker, resource_type: i8, name: &str) -> Result<Target, Failure> {
    match resource_type {
        RESOURCE_TOPIC => {
            let image = broker.image();
            match image.topic_by_name(name) {
                Some(_) => Ok(Target::Topic(
                    name.to_string(),
                    crate::broker::apply::topic_configs(&image, name),
                )),
                None => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic {name} does not exist"),
                )),
            }
        }
        RESOURCE_BROKER if name.is_empty() => Ok(Target::BrokerDefaults),
        RESOURCE_BROKER => {
            let node = broker.settings.node_id;
            if name.parse::<i32>().ok() == Some(node) {
                Ok(Target::Broker)
            } else {
                Err((
                    ResponseError::InvalidRequest,
                    format!("Unexpected broker id, expected {node} but received {name}"),
                ))
            }
        }
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// One config as DescribeConfigs describes it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub ty: ConfigType,
    pub doc: &'static str,
    /// The value's origin first, then lower-precedence sources.
    pub synonyms: Vec<Resolved>,
}

/// Every known config of `topic` with its effective value and source.
pub fn topic_entries(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<Entry> {
    let configs = &broker.settings.configs;
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let synonyms = configs.resolve(def, overrides);
            let source = synonyms
                .first()
                .map_or(source::DEFAULT_CONFIG, |r| r.source);
            Entry {
                name: def.name.to_string(),
                value: Some(configs.effective(def, overrides)),
                source,
                read_only: false,
                ty: def.ty,
                doc: def.doc,
                synonyms,
            }
        })
        .collect()
}

/// Every config of this broker: the log defaults (static when a flag set
/// them) and its other settings. None can change while the broker runs.
pub fn broker_entries(broker: &Broker) -> Vec<Entry> {
    let configs = &broker.settings.configs;
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    for def in TOPIC_CONFIGS {
        let last = def.synonyms.len().saturating_sub(1);
        for (i, syn) in def.synonyms.iter().enumerate() {
            let (value, src) = match configs.log_overrides.get(syn.name) {
                Some(v) => (Some(v.clone()), source::STATIC_BROKER_CONFIG),
                None if i == last => (
                    configs
                        .resolve(def, &BTreeMap::new())
                        .last()
                        .and_then(|r| r.value.clone()),
                    source::DEFAULT_CONFIG,
                ),
                None => (None, source::DEFAULT_CONFIG),
            };
            let ty = if syn.scale == 1 {
                def.ty
            } else {
                ConfigType::Int
            };
            out.insert(
                syn.name.to_string(),
                broker_entry(syn.name, value, src, ty, def.doc),
            );
        }
    }
    for (name, value) in &configs.other {
        let ty = match name.as_str() {
            "auto.create.topics.enable" => ConfigType::Boolean,
            "log.dirs" => ConfigType::String,
            "log.retention.check.interval.ms" => ConfigType::Long,
            _ => ConfigType::Int,
        };
        out.insert(
            name.clone(),
            broker_entry(
                name,
                Some(value.clone()),
                source::STATIC_BROKER_CONFIG,
                ty,
                "",
            ),
        );
    }
    out.into_values().collect()
}

fn broker_entry(
    name: &str,
    value: Option<String>,
    src: i8,
    ty: ConfigType,
    doc: &'static str,
) -> Entry {
    Entry {
        name: name.to_string(),
        value: value.clone(),
        source: src,
        read_only: true,
        ty,
        doc,
        synonyms: vec![Resolved {
            name: name.to_string(),
            value,
            source: src,
        }],
    }
}
