//! Consumer groups of the next-generation protocol (KIP-848): membership by
//! ConsumerGroupHeartbeat, server-side assignment, incremental
//! reconciliation.
//!
//! A group lives in the same [`crate::group::Group`] as a classic one (the
//! group id names one group, whose committed offsets are shared); its
//! KIP-848 state is [`ConsumerGroup`], set while the group is a consumer
//! group.
//!
//! The model, as KIP-848 describes it:
//! - the **group epoch** bumps whenever membership, a subscription, the
//!   assignor or the metadata of a subscribed topic changes;
//! - a **target assignment** is computed for that epoch by the assignor
//!   (the **assignment epoch** records which epoch it belongs to);
//! - each member moves toward its target one heartbeat at a time
//!   ([`reconcile`]): it first revokes what it must give up (keeping its
//!   epoch), then takes the new epoch and the partitions that are free; a
//!   partition still held by another member is not handed out until that
//!   member has reported it released.

pub(crate) mod assignor;
mod heartbeat;
mod reconcile;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

pub(crate) use heartbeat::{check_commit, tick};
pub use heartbeat::{ConsumerHeartbeat, ConsumerHeartbeatAnswer};

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What the coordinator needs to know of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicMeta {
    pub id: Uuid,
    pub partitions: i32,
}

/// The cluster's topics by name, as the broker sees them at the heartbeat.
pub type Topics = BTreeMap<String, TopicMeta>;

/// Member epoch of a heartbeat that joins.
pub const JOIN_EPOCH: i32 = 0;
/// Member epoch of a heartbeat that leaves.
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member leaving for a while (it will be back).
pub const TEMPORARY_LEAVE_EPOCH: i32 = -2;

/// A member's progress toward its target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    /// At the assignment epoch with its whole target.
    Stable,
    /// Must give up `pending_revocation` before it moves on.
    UnrevokedPartitions,
    /// At the new epoch, waiting for partitions others still hold.
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    /// The epoch before the last bump: a heartbeat whose answer was lost
    /// still carries it.
    pub previous_epoch: i32,
    pub state: MemberState,
    pub rebalance_timeout_ms: i32,
    pub subscribed_names: Vec<String>,
    pub subscribed_regex: Option<String>,
    /// `subscribed_regex` compiled, anchored at both ends.
    pub regex: Option<regex::Regex>,
    pub server_assignor: Option<String>,
    /// The partitions it may consume.
    pub assigned: Assignment,
    /// Partitions it must give up before moving to the next epoch.
    pub pending_revocation: Assignment,
    /// The assignment last sent to it (an answer carries it only when it
    /// changed).
    pub sent: Option<Assignment>,
    pub last_seen: i64,
    /// Until when it may take to revoke (its rebalance timeout).
    pub revoke_deadline: Option<i64>,
}

impl ConsumerMember {
    fn new(id: String, now: i64) -> Self {
        ConsumerMember {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            rebalance_timeout_ms: 300_000,
            subscribed_names: Vec::new(),
            subscribed_regex: None,
            regex: None,
            server_assignor: None,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            sent: None,
            last_seen: now,
            revoke_deadline: None,
        }
    }

    /// Whether it subscribes to `topic`.
    pub fn subscribes(&self, topic: &str) -> bool {
        self.subscribed_names.iter().any(|n| n == topic)
            || self.regex.as_ref().is_some_and(|r| r.is_match(topic))
    }
}

/// The KIP-848 state of a consumer group.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    pub(crate) epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    /// Static instance id -> member id.
    pub(crate) instances: HashMap<String, String>,
    /// Target assignment per member, for `assignment_epoch`.
    pub(crate) target: BTreeMap<String, Assignment>,
    /// Subscribed topics (by name) with the metadata the target was
    /// computed from; a change bumps the group epoch.
    pub(crate) subscribed: Topics,
    /// The assignor that computed the target.
    pub(crate) assignor: String,
}

/// The group states of KIP-848, as ConsumerGroupDescribe and ListGroups
/// name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

impl ConsumerGroup {
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.epoch != self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// Removes a member: its partitions are free at once, and the group
    /// epoch bumps so that a new target is computed.
    pub(crate) fn remove_member(&mut self, id: &str) {
        if let Some(m) = self.members.remove(id) {
            if let Some(instance) = &m.instance_id {
                if self.instances.get(instance).is_some_and(|i| i == id) {
                    self.instances.remove(instance);
                }
            }
            self.target.remove(id);
            self.bump_epoch();
        }
    }

    pub(crate) fn bump_epoch(&mut self) {
        self.epoch = self.epoch.max(self.assignment_epoch).saturating_add(1);
    }

    /// Partitions held (assigned or still being revoked) by members other
    /// than `except`.
    pub(crate) fn held_by_others(&self, except: &str) -> BTreeSet<(Uuid, i32)> {
        let mut held = BTreeSet::new();
        for m in self.members.values().filter(|m| m.id != except) {
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, ps) in a {
                    held.extend(ps.iter().map(|p| (*t, *p)));
                }
            }
        }
        held
    }

    /// The topics the members subscribe to that exist, with their metadata.
    pub(crate) fn resolve_subscriptions(&self, topics: &Topics) -> Topics {
        topics
            .iter()
            .filter(|(name, _)| self.members.values().any(|m| m.subscribes(name)))
            .map(|(name, meta)| (name.clone(), *meta))
            .collect()
    }

    /// The summary ConsumerGroupDescribe answers with; `names` turns topic
    /// ids back into names.
    pub fn describe(&self, group_id: &str) -> ConsumerGroupSummary {
        let names: HashMap<Uuid, String> = self
            .subscribed
            .iter()
            .map(|(n, m)| (m.id, n.clone()))
            .collect();
        let named = |a: &Assignment| -> Vec<(Uuid, String, Vec<i32>)> {
            a.iter()
                .map(|(t, ps)| {
                    let name = names.get(t).cloned().unwrap_or_default();
                    (*t, name, ps.iter().copied().collect())
                })
                .collect()
        };
        let empty = Assignment::new();
        ConsumerGroupSummary {
            group_id: group_id.to_string(),
            state: self.state(),
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberSummary {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_names.clone(),
                    subscribed_topic_regex: m.subscribed_regex.clone(),
                    assignment: named(&m.assigned),
                    target_assignment: named(self.target.get(&m.id).unwrap_or(&empty)),
                })
                .collect(),
        }
    }
}

/// What ConsumerGroupDescribe shows of a group.
#[derive(Debug, Clone)]
pub struct ConsumerGroupSummary {
    pub group_id: String,
    pub state: ConsumerGroupState,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberSummary>,
}

/// (topic id, topic name, partitions).
pub type NamedPartitions = Vec<(Uuid, String, Vec<i32>)>;

#[derive(Debug, Clone)]
pub struct ConsumerMemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: NamedPartitions,
    pub target_assignment: NamedPartitions,
}
