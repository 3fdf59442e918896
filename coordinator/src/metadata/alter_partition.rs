//! AlterPartition (KIP-497): a partition leader asks the controller to
//! change its ISR (or to mark it recovered after an unclean election). The
//! checks and their order follow Kafka's
//! `ReplicationControlManager.validateAlterPartitionData`.

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::controller::{ControllerConfig, ControllerError};
use super::elections::{ChangeBuilder, Election};
use super::image::MetadataImage;
use super::partition::PartitionRegistration;
use super::records::{LeaderRecoveryState, PartitionChangeRecord, NO_LEADER_CHANGE};

/// One ISR member as the leader names it: its id and the broker epoch the
/// leader saw (-1 skips the epoch check, as requests before v3 do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsrMember {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// One partition of an AlterPartition request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionData {
    pub topic_id: Uuid,
    pub partition_index: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<IsrMember>,
    pub leader_recovery_state: LeaderRecoveryState,
}

/// An accepted AlterPartition: the record to propose (none when nothing
/// changes) and the partition as it will be, for the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionOutcome {
    pub record: Option<PartitionChangeRecord>,
    pub partition: PartitionRegistration,
    /// The change moved leadership away from the sender (Kafka does this
    /// when completing a reassignment): the record is still proposed, but
    /// the sender is answered NEW_LEADER_ELECTED so it refreshes metadata.
    pub new_leader_elected: bool,
}

fn err(code: ResponseError, message: impl Into<String>) -> ControllerError {
    ControllerError::new(code, message)
}

/// ISR members must be distinct, non-negative replicas.
fn isr_within_replicas(replicas: &[i32], isr: &[i32]) -> bool {
    let mut seen = Vec::with_capacity(isr.len());
    for r in isr {
        if *r < 0 || !replicas.contains(r) || seen.contains(r) {
            return false;
        }
        seen.push(*r);
    }
    true
}

/// Decides one partition of an AlterPartition request from broker
/// `broker_id` at `broker_epoch`.
///
/// Errors: STALE_BROKER_EPOCH (the sender's registration), UNKNOWN_TOPIC_ID,
/// UNKNOWN_TOPIC_OR_PARTITION, NOT_CONTROLLER (the request is ahead of this
/// image), FENCED_LEADER_EPOCH (stale leader epoch), INVALID_REQUEST (not
/// the leader; ISR not within replicas or missing the leader; a RECOVERING
/// state that is not allowed), INVALID_UPDATE_VERSION (stale partition
/// epoch), INELIGIBLE_REPLICA (an ISR member that is fenced, shutting down,
/// unregistered or of another broker epoch).
pub fn alter_partition(
    image: &MetadataImage,
    config: &ControllerConfig,
    broker_id: i32,
    broker_epoch: i64,
    data: &AlterPartitionData,
) -> Result<AlterPartitionOutcome, ControllerError> {
    match image.broker(broker_id) {
        Some(b) if b.epoch == broker_epoch => {}
        Some(b) => {
            return Err(err(
                ResponseError::StaleBrokerEpoch,
                format!(
                    "Expected broker epoch {}, but got broker epoch {broker_epoch}",
                    b.epoch
                ),
            ))
        }
        None => {
            return Err(err(
                ResponseError::StaleBrokerEpoch,
                format!("No broker registration found for broker id {broker_id}"),
            ))
        }
    }
    let topic = image
        .topic(data.topic_id)
        .ok_or_else(|| err(ResponseError::UnknownTopicId, "unknown topic id"))?;
    let partition = topic
        .partitions
        .get(&data.partition_index)
        .ok_or_else(|| err(ResponseError::UnknownTopicOrPartition, "unknown partition"))?;
    validate(image, broker_id, partition, data)?;

    let target_isr: Vec<i32> = data.new_isr.iter().map(|m| m.broker_id).collect();
    let election = if config.unclean_election_enabled(image, &topic.name) {
        Election::Unclean
    } else {
        Election::Online
    };
    let acceptable = |r: i32| image.is_active(r);
    let record = ChangeBuilder::new(partition, topic.id, data.partition_index, &acceptable)
        .election(election)
        .target_isr(target_isr)
        .target_leader_recovery_state(data.leader_recovery_state)
        .build();
    let after = record
        .as_ref()
        .map_or_else(|| partition.clone(), |r| partition.merge(r));
    let new_leader_elected = record
        .as_ref()
        .is_some_and(|r| r.leader != NO_LEADER_CHANGE && r.leader != broker_id);
    Ok(AlterPartitionOutcome {
        record,
        partition: after,
        new_leader_elected,
    })
}

fn validate(
    image: &MetadataImage,
    broker_id: i32,
    partition: &PartitionRegistration,
    data: &AlterPartitionData,
) -> Result<(), ControllerError> {
    if data.leader_epoch > partition.leader_epoch
        || data.partition_epoch > partition.partition_epoch
    {
        return Err(err(
            ResponseError::NotController,
            "the request's epochs are ahead of this controller's",
        ));
    }
    if data.leader_epoch < partition.leader_epoch {
        return Err(err(
            ResponseError::FencedLeaderEpoch,
            format!(
                "the current leader epoch is {}, not {}",
                partition.leader_epoch, data.leader_epoch
            ),
        ));
    }
    if broker_id != partition.leader {
        return Err(err(
            ResponseError::InvalidRequest,
            format!("the current leader is {}", partition.leader),
        ));
    }
    if data.partition_epoch < partition.partition_epoch {
        return Err(err(
            ResponseError::InvalidUpdateVersion,
            format!(
                "the current partition epoch is {}, not {}",
                partition.partition_epoch, data.partition_epoch
            ),
        ));
    }
    let new_isr: Vec<i32> = data.new_isr.iter().map(|m| m.broker_id).collect();
    if !isr_within_replicas(&partition.replicas, &new_isr) {
        return Err(err(
            ResponseError::InvalidRequest,
            format!("invalid ISR {new_isr:?}"),
        ));
    }
    if !new_isr.contains(&partition.leader) {
        return Err(err(
            ResponseError::InvalidRequest,
            "the ISR must include the leader",
        ));
    }
    if data.leader_recovery_state == LeaderRecoveryState::Recovering && new_isr.len() > 1 {
        return Err(err(
            ResponseError::InvalidRequest,
            "a recovering leader's ISR must be the leader alone",
        ));
    }
    if partition.leader_recovery_state == LeaderRecoveryState::Recovered
        && data.leader_recovery_state == LeaderRecoveryState::Recovering
    {
        return Err(err(
            ResponseError::InvalidRequest,
            "the leader recovery state cannot go from RECOVERED to RECOVERING",
        ));
    }
    for member in &data.new_isr {
        let reason = match image.broker(member.broker_id) {
            None => Some("not registered".to_owned()),
            Some(b) if b.in_controlled_shutdown => Some("shutting down".to_owned()),
            Some(b) if b.fenced => Some("fenced".to_owned()),
            Some(b) if member.broker_epoch != -1 && member.broker_epoch != b.epoch => Some(
                format!("broker epoch {} is not {}", member.broker_epoch, b.epoch),
            ),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            return Err(err(
                ResponseError::IneligibleReplica,
                format!("replica {} is {reason}", member.broker_id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "alter_partition_tests.rs"]
mod tests;
