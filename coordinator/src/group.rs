//! One classic group: its state, members, generation and offsets.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::coordinator::{JoinResponse, SyncResponse};
use crate::offsets::CommittedOffset;

/// The classic group states, as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    Stable,
    /// Deleted; being removed.
    Dead,
}

impl GroupState {
    /// The name Kafka puts in ListGroups and DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// When the member was last heard from (join, sync, heartbeat, commit).
    pub last_seen: i64,
    /// Its JoinGroup waiting for the rebalance to complete.
    pub join_waiter: Option<oneshot::Sender<JoinResponse>>,
    /// Its SyncGroup waiting for the leader's assignment.
    pub sync_waiter: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    pub fn expired(&self, now: i64) -> bool {
        self.join_waiter.is_none()
            && self.sync_waiter.is_none()
            && now.saturating_sub(self.last_seen) > i64::from(self.session_timeout_ms)
    }
}

#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    /// When `state` last changed; offsets of an empty group expire from here.
    pub state_since: i64,
    pub generation: i32,
    /// Empty until the first member joins; "consumer" for consumers.
    pub protocol_type: String,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Static instance id -> member id.
    pub instances: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their deadline.
    pub pending_ids: HashMap<String, i64>,
    /// When the current join phase ends even if members are missing.
    pub rebalance_deadline: i64,
    /// Earliest time the join phase may end (the initial rebalance delay).
    pub join_not_before: i64,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Set while the group uses the consumer protocol (KIP-848).
    pub consumer: Option<Box<crate::consumer::ConsumerGroup>>,
}

impl Group {
    pub fn new(id: &str, now: i64) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since: now,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            instances: HashMap::new(),
            pending_ids: HashMap::new(),
            rebalance_deadline: 0,
            join_not_before: 0,
            offsets: BTreeMap::new(),
            consumer: None,
        }
    }

    pub fn transition(&mut self, state: GroupState, now: i64) {
        tracing::debug!(group = %self.id, from = self.state.name(), to = state.name(), "group state");
        self.state = state;
        self.state_since = now;
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    /// Whether members of either protocol are in the group.
    pub fn has_members(&self) -> bool {
        !self.members.is_empty() || self.consumer.as_ref().is_some_and(|c| c.has_members())
    }

    /// Protocols every member supports, chosen by a vote in which each member
    /// backs its most preferred candidate; ties go to the name first in
    /// order.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, count)| *count == best)
            .map(|(name, _)| name.to_string())
    }

    /// Whether a joining member's protocols can live with the group's.
    pub fn accepts_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type != protocol_type {
            return false;
        }
        // Some protocol must be supported by everyone already here.
        protocols
            .iter()
            .any(|(name, _)| self.members.values().all(|m| m.supports(name)))
    }

    pub fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub fn all_joined(&self) -> bool {
        self.members.values().all(|m| m.join_waiter.is_some())
    }

    pub fn summary(&self) -> GroupSummary {
        let stable = self.is(GroupState::Stable);
        GroupSummary {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone(),
            protocol: if stable {
                self.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            },
            members: self
                .members
                .values()
                .map(|m| MemberSummary {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: match (&self.protocol, stable) {
                        (Some(p), true) => m.metadata_for(p),
                        _ => Bytes::new(),
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }
}

/// What DescribeGroups shows of a group.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol while Stable, else empty.
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}
