//! Partition reassignment (KIP-455): AlterPartitionReassignments starts,
//! replaces or cancels moving a partition's replicas, and
//! ListPartitionReassignments reports the moves in progress. The decisions
//! follow Kafka's `ReplicationControlManager` (`changePartitionReassignment`,
//! `cancelPartitionReassignment`) and its `PartitionReassignmentReplicas` /
//! `PartitionReassignmentRevert`.
//!
//! A reassignment to target replicas `T` of a partition with replicas `R`
//! writes replicas `T` followed by `R - T`, adding replicas `T - R` and
//! removing replicas `R - T`. Every broker in the new replicas hosts the
//! partition, so the adding ones start fetching from the leader; when all
//! of them are in the ISR, the change that puts the last one there also
//! completes the move (see [`super::elections`]): replicas become `T`, the
//! removing replicas leave the ISR, and a leader among them gives way.
//! When every target replica is in the ISR already (a reorder, or a
//! shrink), the move completes in its first record.

use kafka_protocol::ResponseError;

use super::controller::{ControllerConfig, ControllerError};
use super::elections::{ChangeBuilder, Election};
use super::image::MetadataImage;
use super::records::PartitionChangeRecord;
use super::topics::validate_assignment;

/// A partition's move in progress, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

fn unknown(topic: &str, partition: i32) -> ControllerError {
    ControllerError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("Unable to find partition {topic}:{partition}."),
    )
}

/// AlterPartitionReassignments for one partition: `target` replicas to move
/// to, or `None` to cancel the move in progress. Returns the record to
/// propose (none when the partition already has exactly `target`).
///
/// Errors: UNKNOWN_TOPIC_OR_PARTITION; INVALID_REPLICA_ASSIGNMENT (empty or
/// duplicate target, an unregistered broker, a revert that would need an
/// unclean election); NO_REASSIGNMENT_IN_PROGRESS (cancelling none);
/// INVALID_REPLICATION_FACTOR (a target of another size when
/// `allow_rf_change` is false, KIP-860).
pub fn alter_reassignment(
    image: &MetadataImage,
    config: &ControllerConfig,
    topic: &str,
    partition_id: i32,
    target: Option<&[i32]>,
    allow_rf_change: bool,
) -> Result<Option<PartitionChangeRecord>, ControllerError> {
    let topic_image = image
        .topic_by_name(topic)
        .ok_or_else(|| unknown(topic, partition_id))?;
    let partition = topic_image
        .partitions
        .get(&partition_id)
        .ok_or_else(|| unknown(topic, partition_id))?;
    let election = if config.unclean_election_enabled(image, topic) {
        Election::Unclean
    } else {
        Election::Online
    };
    let acceptable = |r: i32| image.is_active(r);
    let builder =
        ChangeBuilder::new(partition, topic_image.id, partition_id, &acceptable).election(election);
    let Some(target) = target else {
        if partition.adding_replicas.is_empty() && partition.removing_replicas.is_empty() {
            return Err(ControllerError::new(
                ResponseError::NoReassignmentInProgress,
                format!("No ongoing reassignment for partition {topic}:{partition_id}."),
            ));
        }
        // Back to the replicas before the move: the adding ones leave.
        let adding = &partition.adding_replicas;
        let replicas: Vec<i32> = partition
            .replicas
            .iter()
            .copied()
            .filter(|r| !adding.contains(r))
            .collect();
        let isr: Vec<i32> = partition
            .isr
            .iter()
            .copied()
            .filter(|r| !adding.contains(r))
            .collect();
        if isr.is_empty() && election != Election::Unclean {
            return Err(ControllerError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("Unable to revert partition assignment for {topic}:{partition_id} because it would require an unclean leader election."),
            ));
        }
        return Ok(builder
            .target_isr(isr)
            .target_reassignment(replicas, Vec::new(), Vec::new())
            .build());
    };
    validate_assignment(image, target, None)?;
    let current = &partition.replicas;
    let rf = current
        .len()
        .saturating_sub(partition.adding_replicas.len());
    if !allow_rf_change && target.len() != rf {
        return Err(ControllerError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "The replication factor is changed from {rf} to {}",
                target.len()
            ),
        ));
    }
    let removing: Vec<i32> = current
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !current.contains(r))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    Ok(builder
        .target_reassignment(replicas, adding, removing)
        .build())
}

/// ListPartitionReassignments: the moves in progress, of the named
/// partitions (unknown ones and those without a move are left out, as
/// Kafka's controller does) or of every partition.
pub fn list_reassignments(
    image: &MetadataImage,
    partitions: Option<&[(String, i32)]>,
) -> Vec<OngoingReassignment> {
    let ongoing = |topic: &str, partition_id: i32| {
        let p = image
            .topic_by_name(topic)
            .and_then(|t| t.partitions.get(&partition_id))?;
        (!p.adding_replicas.is_empty() || !p.removing_replicas.is_empty()).then(|| {
            OngoingReassignment {
                topic: topic.to_owned(),
                partition: partition_id,
                replicas: p.replicas.clone(),
                adding: p.adding_replicas.clone(),
                removing: p.removing_replicas.clone(),
            }
        })
    };
    match partitions {
        Some(asked) => asked.iter().filter_map(|(t, p)| ongoing(t, *p)).collect(),
        None => image
            .topics()
            .flat_map(|t| t.partitions.keys().map(move |p| (t.name.as_str(), *p)))
            .filter_map(|(t, p)| ongoing(t, p))
            .collect(),
    }
}

#[cfg(test)]
#[path = "reassignment_tests.rs"]
mod tests;
