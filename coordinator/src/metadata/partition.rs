//! One partition's state in the image (Kafka's `PartitionRegistration`), and
//! how a PartitionChangeRecord changes it.

use uuid::Uuid;

use super::records::{
    LeaderRecoveryState, PartitionChangeRecord, PartitionRecord, NO_LEADER, NO_LEADER_CHANGE,
};

/// A partition's replicas, ISR, leader and epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    /// In preference order: the first is the preferred leader.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_recovery_state: LeaderRecoveryState,
    /// Bumped by every leader change.
    pub leader_epoch: i32,
    /// Bumped by every change of any kind.
    pub partition_epoch: i32,
    /// The log directory of each replica, when known (empty otherwise).
    pub directories: Vec<Uuid>,
    /// KIP-966's eligible leader replicas; Wharf does not elect from them yet
    /// but keeps what the log says.
    pub elr: Vec<i32>,
    pub last_known_elr: Vec<i32>,
}

impl PartitionRegistration {
    pub fn from_record(r: &PartitionRecord) -> Self {
        PartitionRegistration {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            removing_replicas: r.removing_replicas.clone(),
            adding_replicas: r.adding_replicas.clone(),
            leader: r.leader,
            leader_recovery_state: r.leader_recovery_state,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            directories: r.directories.clone(),
            elr: r.eligible_leader_replicas.clone().unwrap_or_default(),
            last_known_elr: r.last_known_elr.clone().unwrap_or_default(),
        }
    }

    pub fn to_record(&self, topic_id: Uuid, partition_id: i32) -> PartitionRecord {
        PartitionRecord {
            partition_id,
            topic_id,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            removing_replicas: self.removing_replicas.clone(),
            adding_replicas: self.adding_replicas.clone(),
            leader: self.leader,
            leader_recovery_state: self.leader_recovery_state,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            directories: self.directories.clone(),
            eligible_leader_replicas: (!self.elr.is_empty()).then(|| self.elr.clone()),
            last_known_elr: (!self.last_known_elr.is_empty()).then(|| self.last_known_elr.clone()),
        }
    }

    /// The partition after `change`, as Kafka's `PartitionRegistration.merge`
    /// computes it: absent fields keep their value; a `leader` field (even
    /// naming the same leader) bumps the leader epoch; the partition epoch
    /// goes up by one whatever changed.
    pub fn merge(&self, change: &PartitionChangeRecord) -> Self {
        let pick =
            |new: &Option<Vec<i32>>, old: &Vec<i32>| new.clone().unwrap_or_else(|| old.clone());
        let replicas = pick(&change.replicas, &self.replicas);
        let directories = match &change.directories {
            Some(dirs) => dirs.clone(),
            // Directories follow replicas one to one; when the replicas
            // change without them, which directory holds which replica is
            // no longer known.
            None if self.directories.len() == replicas.len() => self.directories.clone(),
            None => Vec::new(),
        };
        let (leader, leader_epoch) = if change.leader == NO_LEADER_CHANGE {
            (self.leader, self.leader_epoch)
        } else {
            (change.leader, self.leader_epoch.saturating_add(1))
        };
        PartitionRegistration {
            isr: pick(&change.isr, &self.isr),
            removing_replicas: pick(&change.removing_replicas, &self.removing_replicas),
            adding_replicas: pick(&change.adding_replicas, &self.adding_replicas),
            leader,
            leader_recovery_state: change
                .leader_recovery_state
                .unwrap_or(self.leader_recovery_state),
            leader_epoch,
            partition_epoch: self.partition_epoch.saturating_add(1),
            directories,
            elr: pick(&change.eligible_leader_replicas, &self.elr),
            last_known_elr: pick(&change.last_known_elr, &self.last_known_elr),
            replicas,
        }
    }

    pub fn has_leader(&self) -> bool {
        self.leader != NO_LEADER
    }

    /// True when the first replica leads (Kafka's `hasPreferredLeader`).
    pub fn has_preferred_leader(&self) -> bool {
        self.has_leader() && self.replicas.first() == Some(&self.leader)
    }

    /// Replicas not in the ISR.
    pub fn out_of_sync_replicas(&self) -> impl Iterator<Item = i32> + '_ {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.isr.contains(r))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn partition() -> PartitionRegistration {
        PartitionRegistration {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader: 1,
            leader_recovery_state: LeaderRecoveryState::Recovered,
            leader_epoch: 4,
            partition_epoch: 9,
            directories: vec![],
            elr: vec![],
            last_known_elr: vec![],
        }
    }

    #[test]
    fn an_isr_change_bumps_only_the_partition_epoch() {
        let mut change = PartitionChangeRecord::new(Uuid::nil(), 0);
        change.isr = Some(vec![1, 2]);
        let merged = partition().merge(&change);
        assert_eq!(merged.isr, vec![1, 2]);
        assert_eq!((merged.leader, merged.leader_epoch), (1, 4));
        assert_eq!(merged.partition_epoch, 10);
    }

    #[test]
    fn a_leader_field_bumps_the_leader_epoch_even_when_the_leader_is_the_same() {
        let mut change = PartitionChangeRecord::new(Uuid::nil(), 0);
        change.leader = 1;
        let merged = partition().merge(&change);
        assert_eq!((merged.leader, merged.leader_epoch), (1, 5));
        assert_eq!(merged.partition_epoch, 10);
    }

    #[test]
    fn no_leader_is_a_leader_change() {
        let mut change = PartitionChangeRecord::new(Uuid::nil(), 0);
        change.leader = NO_LEADER;
        let merged = partition().merge(&change);
        assert!(!merged.has_leader());
        assert_eq!(merged.leader_epoch, 5);
    }

    #[test]
    fn record_round_trip_keeps_every_field() {
        let mut p = partition();
        p.elr = vec![2];
        p.leader_recovery_state = LeaderRecoveryState::Recovering;
        let id = Uuid::from_u128(7);
        assert_eq!(PartitionRegistration::from_record(&p.to_record(id, 3)), p);
    }
}
