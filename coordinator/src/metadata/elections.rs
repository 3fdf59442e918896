//! Leader elections and ISR changes, with the behaviour of Kafka's
//! `PartitionChangeBuilder` and `ReplicationControlManager` (without KIP-966
//! eligible leader replicas).
//!
//! - A leader is kept while it is in the (target) ISR and acceptable (live:
//!   unfenced, not shutting down). Otherwise the first replica, in replica
//!   order, that is in the ISR and acceptable leads; failing that, with
//!   unclean election, the first acceptable replica leads, the ISR becomes
//!   just that replica and the leader recovery state becomes RECOVERING;
//!   failing that the partition has no leader (-1).
//! - A broker leaving (fenced, shutting down, unregistered) is removed from
//!   every ISR it is in, unless it is the last member: the ISR never
//!   becomes empty, so the last in-sync replica is remembered.
//! - A reassignment in progress (adding and removing replicas, KIP-455)
//!   completes in whichever change first has every adding replica in the
//!   target ISR: the removing replicas leave the replicas and the ISR, and
//!   a leader among them gives way to the first remaining ISR member.
//! - Every leader change bumps the leader epoch, every change the partition
//!   epoch (applied by [`PartitionRegistration::merge`]).

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::controller::{ControllerConfig, ControllerError};
use super::image::MetadataImage;
use super::partition::PartitionRegistration;
use super::records::{LeaderRecoveryState, PartitionChangeRecord, NO_LEADER};

/// How a leader may be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// The preferred (first) replica if it can lead, else as `Online`.
    Preferred,
    /// A leader from the ISR, keeping the current one if it can lead.
    Online,
    /// As `Online`, then any acceptable replica, even outside the ISR.
    Unclean,
}

/// Computes the PartitionChangeRecord that moves a partition towards a
/// target state (Kafka's `PartitionChangeBuilder`).
pub struct ChangeBuilder<'a> {
    partition: &'a PartitionRegistration,
    topic_id: Uuid,
    partition_id: i32,
    acceptable: &'a dyn Fn(i32) -> bool,
    election: Election,
    target_isr: Vec<i32>,
    target_replicas: Vec<i32>,
    target_adding: Vec<i32>,
    target_removing: Vec<i32>,
    target_leader_recovery_state: LeaderRecoveryState,
}

impl<'a> ChangeBuilder<'a> {
    pub fn new(
        partition: &'a PartitionRegistration,
        topic_id: Uuid,
        partition_id: i32,
        acceptable: &'a dyn Fn(i32) -> bool,
    ) -> Self {
        ChangeBuilder {
            partition,
            topic_id,
            partition_id,
            acceptable,
            election: Election::Online,
            target_isr: partition.isr.clone(),
            target_replicas: partition.replicas.clone(),
            target_adding: partition.adding_replicas.clone(),
            target_removing: partition.removing_replicas.clone(),
            target_leader_recovery_state: partition.leader_recovery_state,
        }
    }

    /// The replicas, adding and removing replicas the change moves to (a
    /// reassignment starting, or being reverted).
    pub fn target_reassignment(
        mut self,
        replicas: Vec<i32>,
        adding: Vec<i32>,
        removing: Vec<i32>,
    ) -> Self {
        self.target_replicas = replicas;
        self.target_adding = adding;
        self.target_removing = removing;
        self
    }

    /// Kafka's `completeReassignmentIfNeeded`: once every adding replica is
    /// in the target ISR, the removing replicas leave the replicas and the
    /// ISR (unless that would leave the ISR empty).
    fn complete_reassignment_if_needed(&mut self) {
        if self.target_adding.is_empty() && self.target_removing.is_empty() {
            return;
        }
        let removing = &self.target_removing;
        let isr: Vec<i32> = self
            .target_isr
            .iter()
            .copied()
            .filter(|r| !removing.contains(r))
            .collect();
        if isr.is_empty() || !self.target_adding.iter().all(|r| isr.contains(r)) {
            return;
        }
        self.target_replicas.retain(|r| !removing.contains(r));
        self.target_isr = isr;
        self.target_adding.clear();
        self.target_removing.clear();
    }

    pub fn election(mut self, election: Election) -> Self {
        self.election = election;
        self
    }

    pub fn target_isr(mut self, isr: Vec<i32>) -> Self {
        self.target_isr = isr;
        self
    }

    pub fn target_leader_recovery_state(mut self, state: LeaderRecoveryState) -> Self {
        self.target_leader_recovery_state = state;
        self
    }

    fn valid_new_leader(&self, replica: i32) -> bool {
        self.target_isr.contains(&replica) && (self.acceptable)(replica)
    }

    /// The elected leader and whether the election was unclean.
    fn elect(&self) -> (i32, bool) {
        let replicas = &self.target_replicas;
        if self.election == Election::Preferred {
            if let Some(&preferred) = replicas.first() {
                if self.valid_new_leader(preferred) {
                    return (preferred, false);
                }
            }
        }
        if replicas.contains(&self.partition.leader) && self.valid_new_leader(self.partition.leader)
        {
            return (self.partition.leader, false);
        }
        if let Some(&r) = replicas.iter().find(|r| self.valid_new_leader(**r)) {
            return (r, false);
        }
        if self.election == Election::Unclean {
            if let Some(&r) = replicas.iter().find(|r| (self.acceptable)(**r)) {
                return (r, true);
            }
        }
        (NO_LEADER, false)
    }

    /// The record to propose, or `None` when nothing would change.
    pub fn build(mut self) -> Option<PartitionChangeRecord> {
        self.complete_reassignment_if_needed();
        let mut record = PartitionChangeRecord::new(self.topic_id, self.partition_id);
        let (leader, unclean) = self.elect();
        if leader != self.partition.leader {
            record.leader = leader;
            if unclean {
                record.isr = Some(vec![leader]);
                if self.partition.leader_recovery_state != LeaderRecoveryState::Recovering {
                    record.leader_recovery_state = Some(LeaderRecoveryState::Recovering);
                }
            }
        }
        // Wharf keeps no eligible leader replicas: clear any the log holds.
        if !self.partition.elr.is_empty() {
            record.eligible_leader_replicas = Some(Vec::new());
        }
        if record.isr.is_none()
            && !self.target_isr.is_empty()
            && self.target_isr != self.partition.isr
        {
            record.isr = Some(self.target_isr.clone());
        }
        if self.target_leader_recovery_state != self.partition.leader_recovery_state {
            record.leader_recovery_state = Some(self.target_leader_recovery_state);
        }
        if self.target_replicas != self.partition.replicas {
            record.replicas = Some(self.target_replicas);
        }
        if self.target_adding != self.partition.adding_replicas {
            record.adding_replicas = Some(self.target_adding);
        }
        if self.target_removing != self.partition.removing_replicas {
            record.removing_replicas = Some(self.target_removing);
        }
        (!record.is_no_op()).then_some(record)
    }
}

/// Which broker a batch of ISR/leader updates is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BrokerChange {
    /// The broker is leaving (fenced, shutting down, unregistering): it may
    /// not lead and leaves every ISR it is in.
    Removing(i32),
    /// The broker is being unfenced: it may lead although the image still
    /// shows it fenced.
    Adding(i32),
}

/// Kafka's `generateLeaderAndIsrUpdates`: new leaders and ISRs for the
/// partitions touched by a broker leaving or arriving.
pub(crate) fn leader_and_isr_updates(
    image: &MetadataImage,
    config: &ControllerConfig,
    change: BrokerChange,
) -> Vec<PartitionChangeRecord> {
    let (removing, adding) = match change {
        BrokerChange::Removing(b) => (Some(b), None),
        BrokerChange::Adding(b) => (None, Some(b)),
    };
    let acceptable = |r: i32| Some(r) != removing && (Some(r) == adding || image.is_active(r));
    let mut out = Vec::new();
    for topic in image.topics() {
        let election = if config.unclean_election_enabled(image, &topic.name) {
            Election::Unclean
        } else {
            Election::Online
        };
        for (index, partition) in &topic.partitions {
            let touched = match change {
                BrokerChange::Removing(b) => partition.isr.contains(&b),
                BrokerChange::Adding(_) => !partition.has_leader(),
            };
            if !touched {
                continue;
            }
            let target_isr: Vec<i32> = partition
                .isr
                .iter()
                .copied()
                .filter(|r| Some(*r) != removing)
                .collect();
            let built = ChangeBuilder::new(partition, topic.id, *index, &acceptable)
                .election(election)
                .target_isr(target_isr)
                .build();
            out.extend(built);
        }
    }
    out
}

/// The kind of election an ElectLeaders request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

/// ElectLeaders for one partition (Kafka's `electLeader`): the record to
/// propose, or the partition's error. ELECTION_NOT_NEEDED when the
/// preferred replica already leads (preferred) or a leader exists (unclean).
pub fn elect_leader(
    image: &MetadataImage,
    topic: &str,
    partition_id: i32,
    election_type: ElectionType,
) -> Result<PartitionChangeRecord, ControllerError> {
    let unknown = || {
        ControllerError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("No such partition as {topic}-{partition_id}"),
        )
    };
    let topic_image = image.topic_by_name(topic).ok_or_else(unknown)?;
    let partition = topic_image
        .partitions
        .get(&partition_id)
        .ok_or_else(unknown)?;
    let not_needed = match election_type {
        ElectionType::Preferred => partition.has_preferred_leader(),
        ElectionType::Unclean => partition.has_leader(),
    };
    if not_needed {
        return Err(ControllerError::new(
            ResponseError::ElectionNotNeeded,
            "Leader election not needed for topic partition.",
        ));
    }
    let election = match election_type {
        ElectionType::Preferred => Election::Preferred,
        ElectionType::Unclean => Election::Unclean,
    };
    let acceptable = |r: i32| image.is_active(r);
    ChangeBuilder::new(partition, topic_image.id, partition_id, &acceptable)
        .election(election)
        .build()
        .ok_or_else(|| match election_type {
            ElectionType::Preferred => ControllerError::new(
                ResponseError::PreferredLeaderNotAvailable,
                "The preferred leader was not available.",
            ),
            ElectionType::Unclean => ControllerError::new(
                ResponseError::EligibleLeadersNotAvailable,
                "Eligible topic partition leaders are not available.",
            ),
        })
}

#[cfg(test)]
#[path = "elections_tests.rs"]
mod tests;
