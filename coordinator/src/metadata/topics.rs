//! CreateTopics, CreatePartitions and DeleteTopics decisions, with the
//! behaviour of Kafka's `ReplicationControlManager.createTopics`,
//! `createPartitions` and `deleteTopics`.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::controller::{ControllerConfig, ControllerError};
use super::image::MetadataImage;
use super::placement::{place, RandomSource, UsableBroker};
use super::records::{
    ConfigRecord, LeaderRecoveryState, MetadataRecord, PartitionRecord, RemoveTopicRecord,
    TopicRecord, CONFIG_RESOURCE_TOPIC,
};
use super::topic_names::unify_collision_chars;
pub use super::topic_names::{
    random_topic_id, validate_topic_name, CLUSTER_METADATA_TOPIC, MAX_TOPIC_NAME_LENGTH,
};

fn error(code: ResponseError, message: impl Into<String>) -> ControllerError {
    ControllerError::new(code, message)
}

/// One topic of a CreateTopics request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// -1 for `num.partitions`; must be -1 with manual assignments.
    pub num_partitions: i32,
    /// -1 for `default.replication.factor`; must be -1 with manual
    /// assignments.
    pub replication_factor: i16,
    /// Manual assignments: partition index and its replicas.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides (a `None` value sets nothing).
    pub configs: Vec<(String, Option<String>)>,
}

/// A topic that will be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// The outcome of a CreateTopics request: the records to propose (none
/// when `validate_only`) and each topic's result, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicsOutcome {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<(String, Result<CreatedTopic, ControllerError>)>,
}

/// Brokers placement may use: registered and not in controlled shutdown.
fn usable_brokers(image: &MetadataImage) -> Vec<UsableBroker> {
    image
        .brokers()
        .filter(|b| !b.in_controlled_shutdown)
        .map(|b| UsableBroker {
            id: b.id,
            rack: b.rack.clone(),
            fenced: b.fenced,
        })
        .collect()
}

/// Kafka's `validateManualPartitionAssignment`.
pub(crate) fn validate_assignment(
    image: &MetadataImage,
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), ControllerError> {
    let invalid = |m: String| error(ResponseError::InvalidReplicaAssignment, m);
    if replicas.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for b in replicas {
        if image.broker(*b).is_none() {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {b}, but no such broker is registered."
            )));
        }
        if !seen.insert(*b) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {b} more than once."
            )));
        }
    }
    match replication_factor {
        Some(rf) if rf != replicas.len() => Err(invalid(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
            replicas.len()
        ))),
        _ => Ok(()),
    }
}

/// A new partition's record: the ISR is its active replicas, led by the
/// first of them, at epoch 0.
fn new_partition(topic_id: Uuid, index: i32, replicas: Vec<i32>, isr: Vec<i32>) -> PartitionRecord {
    PartitionRecord {
        partition_id: index,
        topic_id,
        leader: isr.first().copied().unwrap_or(-1),
        replicas,
        isr,
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader_recovery_state: LeaderRecoveryState::Recovered,
        leader_epoch: 0,
        partition_epoch: 0,
        directories: Vec::new(),
        eligible_leader_replicas: None,
        last_known_elr: None,
    }
}

fn active_of(image: &MetadataImage, replicas: &[i32]) -> Vec<i32> {
    replicas
        .iter()
        .copied()
        .filter(|b| image.is_active(*b))
        .collect()
}

/// A new topic's partitions by index: replicas and initial ISR.
type PlannedPartitions = BTreeMap<i32, (Vec<i32>, Vec<i32>)>;

/// The replica lists of a new topic's partitions, by index.
fn plan_partitions(
    image: &MetadataImage,
    config: &ControllerConfig,
    random: &mut dyn RandomSource,
    topic: &NewTopic,
) -> Result<PlannedPartitions, ControllerError> {
    let mut parts = BTreeMap::new();
    if !topic.assignments.is_empty() {
        if topic.replication_factor != -1 {
            return Err(error(
                ResponseError::InvalidRequest,
                "A manual partition assignment was specified, but replication factor was not set to -1.",
            ));
        }
        if topic.num_partitions != -1 {
            return Err(error(
                ResponseError::InvalidRequest,
                "A manual partition assignment was specified, but numPartitions was not set to -1.",
            ));
        }
        let mut rf = None;
        for (index, replicas) in &topic.assignments {
            if parts.contains_key(index) {
                return Err(error(
                    ResponseError::InvalidReplicaAssignment,
                    format!("Found multiple manual partition assignments for partition {index}"),
                ));
            }
            validate_assignment(image, replicas, rf)?;
            rf = Some(replicas.len());
            let isr = active_of(image, replicas);
            if isr.is_empty() {
                return Err(error(
                    ResponseError::InvalidReplicaAssignment,
                    format!("All brokers specified in the manual partition assignment for partition {index} are fenced or in controlled shutdown."),
                ));
            }
            parts.insert(*index, (replicas.clone(), isr));
        }
        if parts.keys().copied().ne(0..parts.len() as i32) {
            return Err(error(
                ResponseError::InvalidReplicaAssignment,
                "partitions should be a consecutive 0-based integer sequence",
            ));
        }
        return Ok(parts);
    }
    if topic.replication_factor < -1 || topic.replication_factor == 0 {
        return Err(error(
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        ));
    }
    if topic.num_partitions < -1 || topic.num_partitions == 0 {
        return Err(error(
            ResponseError::InvalidPartitions,
            "Number of partitions was set to an invalid non-positive value.",
        ));
    }
    let count = if topic.num_partitions == -1 {
        config.default_num_partitions
    } else {
        topic.num_partitions
    };
    let rf = if topic.replication_factor == -1 {
        config.default_replication_factor
    } else {
        topic.replication_factor
    };
    let placed = place(
        random,
        &usable_brokers(image),
        usize::try_from(count).unwrap_or(0),
        i32::from(rf),
    )
    .map_err(|e| {
        error(
            ResponseError::InvalidReplicationFactor,
            format!("Unable to replicate the partition {rf} time(s): {e}"),
        )
    })?;
    for (index, replicas) in (0..).zip(placed) {
        let isr = active_of(image, &replicas);
        if isr.is_empty() {
            return Err(error(
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {rf} time(s): All brokers are currently fenced or in controlled shutdown."),
            ));
        }
        parts.insert(index, (replicas, isr));
    }
    Ok(parts)
}

/// Decides a CreateTopics request. Each topic succeeds or fails alone; the
/// records of all successes are proposed together: per topic its
/// TopicRecord, then its ConfigRecords, then its PartitionRecords.
pub fn create_topics(
    image: &MetadataImage,
    config: &ControllerConfig,
    random: &mut dyn RandomSource,
    topics: &[NewTopic],
    validate_only: bool,
) -> CreateTopicsOutcome {
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(topics.len());
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for t in topics {
        *names.entry(t.name.as_str()).or_default() += 1;
    }
    let mut existing: BTreeMap<String, String> = image
        .topics()
        .map(|t| (unify_collision_chars(&t.name), t.name.clone()))
        .collect();
    let mut taken = BTreeSet::new();
    for topic in topics {
        let result = create_topic(image, config, random, topic, &names, &existing, &taken).map(
            |(created, topic_records)| {
                existing.insert(unify_collision_chars(&topic.name), topic.name.clone());
                taken.insert(created.topic_id);
                records.extend(topic_records);
                created
            },
        );
        results.push((topic.name.clone(), result));
    }
    if validate_only {
        records.clear();
    }
    CreateTopicsOutcome { records, results }
}

fn create_topic(
    image: &MetadataImage,
    config: &ControllerConfig,
    random: &mut dyn RandomSource,
    topic: &NewTopic,
    names_in_request: &BTreeMap<&str, usize>,
    existing: &BTreeMap<String, String>,
    taken: &BTreeSet<Uuid>,
) -> Result<(CreatedTopic, Vec<MetadataRecord>), ControllerError> {
    if names_in_request
        .get(topic.name.as_str())
        .copied()
        .unwrap_or(0)
        > 1
    {
        return Err(error(
            ResponseError::InvalidRequest,
            "Duplicate topic name.",
        ));
    }
    if topic.name == CLUSTER_METADATA_TOPIC {
        return Err(error(
            ResponseError::InvalidRequest,
            format!("Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."),
        ));
    }
    validate_topic_name(&topic.name)?;
    if image.topic_id(&topic.name).is_some() {
        return Err(error(
            ResponseError::TopicAlreadyExists,
            format!("Topic '{}' already exists.", topic.name),
        ));
    }
    if let Some(other) = existing.get(&unify_collision_chars(&topic.name)) {
        return Err(error(
            ResponseError::InvalidTopicException,
            format!(
                "Topic '{}' collides with existing topic: {other}",
                topic.name
            ),
        ));
    }
    let parts = plan_partitions(image, config, random, topic)?;
    // Ids are random; a test's seeded source can repeat one, so skip taken
    // ids (a topic created earlier in this request is in `existing` by name
    // only, so ids of this request are checked through `taken`).
    let mut topic_id = random_topic_id(random);
    while image.topic(topic_id).is_some() || taken.contains(&topic_id) {
        topic_id = random_topic_id(random);
    }
    let mut records = vec![MetadataRecord::Topic(TopicRecord {
        name: topic.name.clone(),
        topic_id,
    })];
    for (key, value) in &topic.configs {
        if let Some(value) = value {
            records.push(MetadataRecord::Config(ConfigRecord {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: topic.name.clone(),
                name: key.clone(),
                value: Some(value.clone()),
            }));
        }
    }
    let replication_factor = parts
        .values()
        .next()
        .map_or(0, |(r, _)| i16::try_from(r.len()).unwrap_or(i16::MAX));
    let num_partitions = i32::try_from(parts.len()).unwrap_or(i32::MAX);
    for (index, (replicas, isr)) in parts {
        records.push(MetadataRecord::Partition(new_partition(
            topic_id, index, replicas, isr,
        )));
    }
    Ok((
        CreatedTopic {
            topic_id,
            num_partitions,
            replication_factor,
        },
        records,
    ))
}

/// Decides a CreatePartitions request for one topic: the new partitions'
/// records. `assignments`, when given, holds one replica list per new
/// partition.
pub fn create_partitions(
    image: &MetadataImage,
    random: &mut dyn RandomSource,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image.topic_by_name(name).ok_or_else(|| {
        error(
            ResponseError::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    })?;
    let current = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if count == current {
        return Err(error(
            ResponseError::InvalidPartitions,
            format!("Topic already has {current} partition(s)."),
        ));
    }
    if count < current {
        return Err(error(
            ResponseError::InvalidPartitions,
            format!("The topic {name} currently has {current} partition(s); {count} would not be an increase."),
        ));
    }
    let additional = usize::try_from(count - current).unwrap_or(0);
    if let Some(a) = assignments {
        if a.len() != additional {
            return Err(error(
                ResponseError::InvalidReplicaAssignment,
                format!("Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.", a.len()),
            ));
        }
    }
    let rf = topic
        .partitions
        .values()
        .next()
        .map(|p| p.replicas.len())
        .ok_or_else(|| {
            error(
                ResponseError::UnknownServerError,
                format!("Invalid state: topic {name} appears to have no partitions."),
            )
        })?;
    let planned: Vec<Vec<i32>> = match assignments {
        Some(a) => {
            for (i, replicas) in a.iter().enumerate() {
                validate_assignment(image, replicas, Some(rf))?;
                if active_of(image, replicas).is_empty() {
                    return Err(error(
                        ResponseError::InvalidReplicaAssignment,
                        format!("All brokers specified in the manual partition assignment for partition {} are fenced or in controlled shutdown.", current as usize + i),
                    ));
                }
            }
            a.to_vec()
        }
        None => place(
            random,
            &usable_brokers(image),
            additional,
            i32::try_from(rf).unwrap_or(i32::MAX),
        )
        .map_err(|e| error(ResponseError::InvalidReplicationFactor, e.0))?,
    };
    let mut records = Vec::with_capacity(planned.len());
    for (index, replicas) in (current..).zip(planned) {
        let isr = active_of(image, &replicas);
        if isr.is_empty() {
            return Err(error(
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {rf} time(s): All brokers are currently fenced or in controlled shutdown."),
            ));
        }
        records.push(MetadataRecord::Partition(new_partition(
            topic.id, index, replicas, isr,
        )));
    }
    Ok(records)
}

/// Decides the deletion of a topic by id: its RemoveTopicRecord.
pub fn delete_topic(
    image: &MetadataImage,
    topic_id: Uuid,
) -> Result<MetadataRecord, ControllerError> {
    if image.topic(topic_id).is_none() {
        return Err(error(
            ResponseError::UnknownTopicId,
            "This server does not host this topic ID.",
        ));
    }
    Ok(MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id }))
}

/// Decides the deletion of a topic by name: its RemoveTopicRecord, or
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn delete_topic_by_name(
    image: &MetadataImage,
    name: &str,
) -> Result<MetadataRecord, ControllerError> {
    let id = image.topic_id(name).ok_or_else(|| {
        error(
            ResponseError::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    })?;
    delete_topic(image, id)
}

#[cfg(test)]
#[path = "topics_tests.rs"]
mod tests;
