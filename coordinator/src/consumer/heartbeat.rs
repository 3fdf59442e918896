//! ConsumerGroupHeartbeat: join (member epoch 0), heartbeat, leave (-1, or
//! -2 for a static member that will be back); and the consumer side of the
//! timers, of offset commits and fetches, and of listing.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::assignor::{self, AssignMember};
use super::reconcile;
use super::{
    Assignment, ConsumerGroup, ConsumerGroupSummary, ConsumerMember, MemberState, Topics,
    JOIN_EPOCH, LEAVE_EPOCH, TEMPORARY_LEAVE_EPOCH,
};
use crate::coordinator::GroupCoordinator;
use crate::group::{Group, GroupState};
use crate::{GroupConfig, GroupError};

/// One ConsumerGroupHeartbeat, as the handler decoded it. `None` fields
/// did not change since the member's last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    /// The request's version: from v1 the client chooses its member id.
    pub version: i16,
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns, by topic id.
    pub owned: Option<Vec<(Uuid, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
}

/// The answer to a ConsumerGroupHeartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerHeartbeatAnswer {
    pub error: Option<GroupError>,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed (or the request was full).
    pub assignment: Option<Vec<(Uuid, Vec<i32>)>>,
}

fn refuse(error: GroupError, message: impl Into<String>) -> ConsumerHeartbeatAnswer {
    ConsumerHeartbeatAnswer {
        error: Some(error),
        error_message: Some(message.into()),
        ..ConsumerHeartbeatAnswer::default()
    }
}

fn to_assignment(owned: &[(Uuid, Vec<i32>)]) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in owned {
        out.entry(*t).or_default().extend(ps.iter().copied());
    }
    out.retain(|_, ps| !ps.is_empty());
    out
}

fn from_assignment(a: &Assignment) -> Vec<(Uuid, Vec<i32>)> {
    a.iter()
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

/// `pattern` compiled for a whole-name match, as Kafka matches topic
/// regexes.
fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

/// Kafka's checks of a heartbeat before it looks at the group.
fn validate(req: &ConsumerHeartbeat, cfg: &GroupConfig) -> Result<(), ConsumerHeartbeatAnswer> {
    let invalid = |m: &str| Err(refuse(GroupError::InvalidRequest, m));
    if req.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if req.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if req.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    if req.member_epoch < TEMPORARY_LEAVE_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if req.member_id.is_empty() && (req.member_epoch != JOIN_EPOCH || req.version >= 1) {
        return invalid("MemberId can't be empty.");
    }
    if req.member_epoch == JOIN_EPOCH {
        if req.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if !req.owned.as_ref().is_some_and(Vec::is_empty) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
            return invalid(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            );
        }
    }
    if req.member_epoch == TEMPORARY_LEAVE_EPOCH && req.instance_id.is_none() {
        return invalid("InstanceId can't be null.");
    }
    if let Some(name) = &req.server_assignor {
        if !cfg.consumer_assignors.iter().any(|a| a == name) {
            return Err(refuse(
                GroupError::UnsupportedAssignor,
                format!(
                    "ServerAssignor {name} is not supported. Supported assignors: {}.",
                    cfg.consumer_assignors.join(", ")
                ),
            ));
        }
    }
    if let Some(pattern) = req
        .subscribed_topic_regex
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        if let Err(e) = compile(pattern) {
            return Err(refuse(
                GroupError::InvalidRegularExpression,
                format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {e}"),
            ));
        }
    }
    Ok(())
}

fn not_a_member(req: &ConsumerHeartbeat) -> ConsumerHeartbeatAnswer {
    refuse(
        GroupError::UnknownMemberId,
        format!(
            "Member {} is not a member of group {}.",
            req.member_id, req.group_id
        ),
    )
}

impl GroupCoordinator {
    /// Serves one ConsumerGroupHeartbeat against the cluster's `topics`.
    pub fn consumer_heartbeat(
        &self,
        req: ConsumerHeartbeat,
        topics: &Topics,
        now: i64,
    ) -> ConsumerHeartbeatAnswer {
        if let Err(e) = self.check_loaded() {
            return refuse(e, "the coordinator is loading");
        }
        if let Err(answer) = validate(&req, &self.config) {
            return answer;
        }
        let mut inner = self.lock();
        let joining = req.member_epoch == JOIN_EPOCH;
        if !inner.groups.contains_key(&req.group_id) {
            if !joining {
                return not_a_member(&req);
            }
            inner
                .groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now));
        }
        let Some(group) = inner.groups.get_mut(&req.group_id) else {
            return refuse(GroupError::CoordinatorNotAvailable, "the group is gone");
        };
        if group.is(GroupState::Dead) {
            return refuse(
                GroupError::CoordinatorNotAvailable,
                "the group is being deleted",
            );
        }
        if !group.members.is_empty() {
            return refuse(
                GroupError::GroupIdNotFound,
                format!("Group {} is not a consumer group.", req.group_id),
            );
        }
        if group.consumer.is_none() {
            if !joining {
                return not_a_member(&req);
            }
            tracing::info!(group = %req.group_id, "group uses the consumer protocol");
            group.consumer = Some(Box::default());
        }
        let Some(cg) = group.consumer.as_deref_mut() else {
            return refuse(GroupError::CoordinatorNotAvailable, "the group is gone");
        };
        match heartbeat(cg, req, topics, now, &self.config) {
            Ok(answer) => answer,
            Err((error, message)) => refuse(error, message),
        }
    }

    /// ConsumerGroupDescribe of one group: GROUP_ID_NOT_FOUND for an
    /// unknown group or a classic one.
    pub fn consumer_describe(&self, group_id: &str) -> Result<ConsumerGroupSummary, GroupError> {
        self.check_loaded()?;
        let inner = self.lock();
        inner
            .groups
            .get(group_id)
            .filter(|g| !g.is(GroupState::Dead))
            .and_then(|g| g.consumer.as_deref())
            .map(|cg| cg.describe(group_id))
            .ok_or(GroupError::GroupIdNotFound)
    }

    /// The groups that use the consumer protocol, with their state names.
    pub fn consumer_group_states(&self) -> HashMap<String, &'static str> {
        self.lock()
            .groups
            .values()
            .filter_map(|g| {
                g.consumer
                    .as_deref()
                    .map(|c| (g.id.clone(), c.state().name()))
            })
            .collect()
    }

    /// OffsetFetch v9 of a member: its epoch must be its current one.
    /// Admin fetches (epoch below 0), classic and unknown groups are not
    /// checked.
    pub fn check_consumer_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        if member_epoch < 0 {
            return Ok(());
        }
        let inner = self.lock();
        match inner
            .groups
            .get(group_id)
            .and_then(|g| g.consumer.as_deref())
        {
            Some(cg) => check_member_epoch(cg, member_id, member_epoch),
            None => Ok(()),
        }
    }
}

/// A commit or fetch of a member at `epoch`: the member must exist and be
/// at that epoch (STALE_MEMBER_EPOCH otherwise).
fn check_member_epoch(cg: &ConsumerGroup, member_id: &str, epoch: i32) -> Result<(), GroupError> {
    let member = cg
        .members
        .get(member_id)
        .ok_or(GroupError::UnknownMemberId)?;
    if member.epoch != epoch {
        return Err(GroupError::StaleMemberEpoch);
    }
    Ok(())
}

/// The consumer-protocol check of an OffsetCommit: a commit from outside
/// the group (epoch below 0) only while the group has no members.
pub(crate) fn check_commit(
    cg: &mut ConsumerGroup,
    member_id: &str,
    epoch: i32,
    now: i64,
) -> Result<(), GroupError> {
    if epoch < 0 && cg.members.is_empty() {
        return Ok(());
    }
    check_member_epoch(cg, member_id, epoch)?;
    if let Some(m) = cg.members.get_mut(member_id) {
        m.last_seen = now;
    }
    Ok(())
}

type Refusal = (GroupError, String);

fn heartbeat(
    cg: &mut ConsumerGroup,
    req: ConsumerHeartbeat,
    topics: &Topics,
    now: i64,
    cfg: &GroupConfig,
) -> Result<ConsumerHeartbeatAnswer, Refusal> {
    let unknown = || {
        (
            GroupError::UnknownMemberId,
            format!("Member {} is not a member of the group.", req.member_id),
        )
    };
    match req.member_epoch {
        LEAVE_EPOCH => {
            if !cg.members.contains_key(&req.member_id) {
                return Err(unknown());
            }
            tracing::info!(group = %req.group_id, member = %req.member_id, "member left the group");
            cg.remove_member(&req.member_id);
            return Ok(ConsumerHeartbeatAnswer {
                member_id: Some(req.member_id),
                member_epoch: LEAVE_EPOCH,
                ..ConsumerHeartbeatAnswer::default()
            });
        }
        TEMPORARY_LEAVE_EPOCH => {
            let m = cg.members.get_mut(&req.member_id).ok_or_else(unknown)?;
            tracing::info!(group = %req.group_id, member = %req.member_id, "static member left for now");
            if m.epoch != TEMPORARY_LEAVE_EPOCH {
                m.previous_epoch = m.epoch;
                m.epoch = TEMPORARY_LEAVE_EPOCH;
            }
            m.last_seen = now;
            return Ok(ConsumerHeartbeatAnswer {
                member_id: Some(req.member_id),
                member_epoch: TEMPORARY_LEAVE_EPOCH,
                ..ConsumerHeartbeatAnswer::default()
            });
        }
        _ => {}
    }
    let owned = req.owned.as_deref().map(to_assignment);
    let id = if req.member_epoch == JOIN_EPOCH {
        join(cg, &req, now, cfg)?
    } else {
        let m = cg.members.get(&req.member_id).ok_or_else(unknown)?;
        if let Some(instance) = &req.instance_id {
            if cg
                .instances
                .get(instance)
                .is_some_and(|i| *i != req.member_id)
            {
                return Err((
                    GroupError::FencedInstanceId,
                    format!("Static member {instance} was replaced by another member."),
                ));
            }
        }
        let lost_answer = req.member_epoch == m.previous_epoch
            && owned.as_ref().is_some_and(|o| {
                o.iter().all(|(t, ps)| {
                    m.assigned
                        .get(t)
                        .is_some_and(|mine| ps.iter().all(|p| mine.contains(p)))
                })
            });
        if req.member_epoch > m.epoch || (req.member_epoch < m.epoch && !lost_answer) {
            return Err((
                GroupError::FencedMemberEpoch,
                format!(
                    "The member epoch {} is not the current one ({}).",
                    req.member_epoch, m.epoch
                ),
            ));
        }
        req.member_id.clone()
    };
    let changed = update_member(cg, &id, &req, now);
    if changed {
        cg.bump_epoch();
    }
    let subscribed = cg.resolve_subscriptions(topics);
    if subscribed != cg.subscribed {
        cg.subscribed = subscribed;
        cg.bump_epoch();
    }
    if cg.epoch != cg.assignment_epoch {
        compute_target(cg, cfg);
    }
    let held = cg.held_by_others(&id);
    let target = cg.target.get(&id).cloned().unwrap_or_default();
    let epoch = cg.assignment_epoch;
    let m = cg.members.get_mut(&id).ok_or_else(unknown)?;
    reconcile::step(m, epoch, &target, owned.as_ref(), &held, now);
    let full = req.member_epoch == JOIN_EPOCH
        || (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
            && owned.is_some();
    let send = full || m.sent.as_ref() != Some(&m.assigned);
    if send {
        m.sent = Some(m.assigned.clone());
    }
    Ok(ConsumerHeartbeatAnswer {
        error: None,
        error_message: None,
        member_id: Some(id),
        member_epoch: m.epoch,
        heartbeat_interval_ms: cfg.consumer_heartbeat_interval_ms,
        assignment: send.then(|| from_assignment(&m.assigned)),
    })
}

/// A heartbeat at epoch 0: a new member, a member rejoining (it lost its
/// partitions), or a static member taking back its place. Returns the
/// member id.
fn join(
    cg: &mut ConsumerGroup,
    req: &ConsumerHeartbeat,
    now: i64,
    cfg: &GroupConfig,
) -> Result<String, Refusal> {
    let id = if req.member_id.is_empty() {
        Uuid::new_v4().simple().to_string()
    } else {
        req.member_id.clone()
    };
    if let Some(instance) = &req.instance_id {
        if let Some(old_id) = cg.instances.get(instance).cloned().filter(|o| *o != id) {
            let Some(mut old) = cg.members.remove(&old_id) else {
                cg.instances.remove(instance);
                return join(cg, req, now, cfg);
            };
            if old.epoch != TEMPORARY_LEAVE_EPOCH {
                let epoch = old.epoch;
                cg.members.insert(old_id, old);
                return Err((
                    GroupError::UnreleasedInstanceId,
                    format!("Static member {instance} with epoch {epoch} is not released."),
                ));
            }
            tracing::info!(member = %id, replaces = %old_id, instance = %instance, "static member is back");
            old.id = id.clone();
            old.epoch = old.previous_epoch;
            old.sent = None;
            old.last_seen = now;
            if let Some(target) = cg.target.remove(&old_id) {
                cg.target.insert(id.clone(), target);
            }
            cg.members.insert(id.clone(), old);
            cg.instances.insert(instance.clone(), id.clone());
            return Ok(id);
        }
    }
    match cg.members.get_mut(&id) {
        Some(m) => {
            // It rejoins: whatever it held, it has given up.
            m.assigned.clear();
            m.pending_revocation.clear();
            m.epoch = 0;
            m.previous_epoch = 0;
            m.state = MemberState::Stable;
            m.sent = None;
            m.revoke_deadline = None;
        }
        None => {
            let max = usize::try_from(cfg.consumer_max_size).unwrap_or(usize::MAX);
            if cg.members.len() >= max {
                return Err((
                    GroupError::GroupMaxSizeReached,
                    format!("The group has reached its maximum size ({max})."),
                ));
            }
            tracing::info!(group = %req.group_id, member = %id, "member joined the group");
            cg.members
                .insert(id.clone(), ConsumerMember::new(id.clone(), now));
            cg.bump_epoch();
        }
    }
    if let Some(instance) = &req.instance_id {
        cg.instances.insert(instance.clone(), id.clone());
    }
    Ok(id)
}

/// Applies the heartbeat's fields to the member; true when its
/// subscription or assignor changed (the group epoch must bump).
fn update_member(cg: &mut ConsumerGroup, id: &str, req: &ConsumerHeartbeat, now: i64) -> bool {
    let Some(m) = cg.members.get_mut(id) else {
        return false;
    };
    m.last_seen = now;
    m.client_id.clone_from(&req.client_id);
    m.client_host.clone_from(&req.client_host);
    if req.rebalance_timeout_ms >= 0 {
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    if req.rack_id.is_some() {
        m.rack_id.clone_from(&req.rack_id);
    }
    if req.instance_id.is_some() {
        m.instance_id.clone_from(&req.instance_id);
    }
    let mut changed = false;
    if let Some(names) = &req.subscribed_topic_names {
        let mut names = names.clone();
        names.sort();
        names.dedup();
        if names != m.subscribed_names {
            m.subscribed_names = names;
            changed = true;
        }
    }
    if let Some(pattern) = &req.subscribed_topic_regex {
        let pattern = Some(pattern.clone()).filter(|p| !p.is_empty());
        if pattern != m.subscribed_regex {
            m.regex = pattern.as_deref().and_then(|p| compile(p).ok());
            m.subscribed_regex = pattern;
            changed = true;
        }
    }
    if req.server_assignor.is_some() && req.server_assignor != m.server_assignor {
        m.server_assignor.clone_from(&req.server_assignor);
        changed = true;
    }
    changed
}

/// The assignor most members asked for (ties: the earlier in the
/// broker's list), else the broker's first.
fn preferred_assignor(cg: &ConsumerGroup, cfg: &GroupConfig) -> String {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in cg.members.values() {
        if let Some(a) = &m.server_assignor {
            *votes.entry(a.as_str()).or_default() += 1;
        }
    }
    let best = votes.values().copied().max().unwrap_or(0);
    cfg.consumer_assignors
        .iter()
        .find(|a| best > 0 && votes.get(a.as_str()) == Some(&best))
        .or_else(|| cfg.consumer_assignors.first())
        .cloned()
        .unwrap_or_else(|| assignor::UNIFORM.to_string())
}

/// Computes the target assignment for the current group epoch.
fn compute_target(cg: &mut ConsumerGroup, cfg: &GroupConfig) {
    let name = preferred_assignor(cg, cfg);
    let partitions: BTreeMap<Uuid, i32> = cg
        .subscribed
        .values()
        .map(|meta| (meta.id, meta.partitions))
        .collect();
    let empty = Assignment::new();
    let members: Vec<AssignMember<'_>> = cg
        .members
        .values()
        .map(|m| AssignMember {
            id: &m.id,
            topics: cg
                .subscribed
                .iter()
                .filter(|(name, _)| m.subscribes(name))
                .map(|(_, meta)| meta.id)
                .collect(),
            previous: cg.target.get(&m.id).unwrap_or(&empty),
        })
        .collect();
    let target = assignor::assign(&name, &members, &partitions);
    tracing::debug!(epoch = cg.epoch, assignor = %name, members = target.len(), "computed a target assignment");
    cg.target = target;
    cg.assignment_epoch = cg.epoch;
    cg.assignor = name;
}

/// The consumer side of [`GroupCoordinator::tick`]: members whose session
/// ran out, or that did not revoke within their rebalance timeout, are
/// removed.
pub(crate) fn tick(group: &mut Group, now: i64, session_timeout_ms: i32) {
    let Some(cg) = group.consumer.as_deref_mut() else {
        return;
    };
    let session = i64::from(session_timeout_ms);
    let gone: Vec<(String, &'static str)> = cg
        .members
        .values()
        .filter_map(|m| {
            if now.saturating_sub(m.last_seen) > session {
                Some((m.id.clone(), "session expired"))
            } else if m.state == MemberState::UnrevokedPartitions
                && m.revoke_deadline.is_some_and(|d| now > d)
            {
                Some((m.id.clone(), "did not revoke its partitions in time"))
            } else {
                None
            }
        })
        .collect();
    for (id, why) in gone {
        tracing::info!(group = %group.id, member = %id, "consumer group member removed: {why}");
        cg.remove_member(&id);
    }
}
