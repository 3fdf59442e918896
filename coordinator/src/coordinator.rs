//! The membership half of the coordinator: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and the timers driven by [`GroupCoordinator::tick`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::group::{Group, GroupState, Member};
use crate::records::{self, GroupValue, MemberValue, RecordKey};
use crate::{GroupConfig, GroupError, OffsetsRecord};

/// A JoinGroup, already decoded.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ (KIP-394): a member without an id first gets
    /// MEMBER_ID_REQUIRED and an id to rejoin with.
    pub require_known_member_id: bool,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinMember>,
    /// A static leader rejoining a stable group must not reassign (v9+).
    pub skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// An answer now, or one that arrives when the rebalance completes.
#[derive(Debug)]
pub enum JoinOutcome {
    Done(JoinResponse),
    Wait(oneshot::Receiver<JoinResponse>),
}

#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment: member id -> bytes.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

#[derive(Debug)]
pub enum SyncOutcome {
    Done(SyncResponse),
    Wait(oneshot::Receiver<SyncResponse>),
}

#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One member named in a LeaveGroup.
#[derive(Debug, Clone, Default)]
pub struct LeaveMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

pub(crate) struct Inner {
    pub groups: HashMap<String, Group>,
    /// Group metadata to append to `__consumer_offsets`; drained by the
    /// caller with [`GroupCoordinator::take_records`].
    pub pending: Vec<OffsetsRecord>,
}

/// All groups of this broker. Cheap calls under one mutex, never held
/// across an await.
#[derive(Debug)]
pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    pub(crate) inner: Mutex<Inner>,
    /// False until `__consumer_offsets` has been replayed.
    loaded: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("groups", &self.groups.len())
            .finish()
    }
}

fn error_join(error: GroupError, member_id: &str) -> JoinOutcome {
    JoinOutcome::Done(JoinResponse {
        error: Some(error),
        generation_id: -1,
        member_id: member_id.to_string(),
        ..JoinResponse::default()
    })
}

fn error_sync(error: GroupError) -> SyncOutcome {
    SyncOutcome::Done(SyncResponse {
        error: Some(error),
        ..SyncResponse::default()
    })
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator {
            config,
            inner: Mutex::new(Inner {
                groups: HashMap::new(),
                pending: Vec::new(),
            }),
            loaded: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub(crate) fn check_loaded(&self) -> Result<(), GroupError> {
        if self.is_loaded() {
            Ok(())
        } else {
            Err(GroupError::CoordinatorLoadInProgress)
        }
    }

    /// Marks the replay of `__consumer_offsets` done: restored members get
    /// a fresh session from `now`, and requests are served.
    pub fn finish_loading(&self, now: i64) {
        let mut inner = self.lock();
        for group in inner.groups.values_mut() {
            for member in group.members.values_mut() {
                member.last_seen = now;
            }
        }
        drop(inner);
        self.loaded.store(true, Ordering::Release);
    }

    /// Group metadata records produced since the last call.
    pub fn take_records(&self) -> Vec<OffsetsRecord> {
        std::mem::take(&mut self.lock().pending)
    }

    pub fn join(&self, req: JoinRequest, now: i64) -> JoinOutcome {
        if let Err(e) = self.check_loaded() {
            return error_join(e, &req.member_id);
        }
        if req.group_id.is_empty() {
            return error_join(GroupError::InvalidGroupId, &req.member_id);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return error_join(GroupError::InvalidSessionTimeout, &req.member_id);
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        if !inner.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return error_join(GroupError::UnknownMemberId, &req.member_id);
            }
            inner
                .groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now));
        }
        let Some(group) = inner.groups.get_mut(&req.group_id) else {
            return error_join(GroupError::CoordinatorNotAvailable, &req.member_id);
        };
        if group.is(GroupState::Dead) {
            return error_join(GroupError::CoordinatorNotAvailable, &req.member_id);
        }
        if !group.accepts_protocols(&req.protocol_type, &req.protocols) {
            return error_join(GroupError::InconsistentGroupProtocol, &req.member_id);
        }
        let cfg = &self.config;
        let pending = &mut inner.pending;
        if req.member_id.is_empty() {
            let known = req
                .group_instance_id
                .as_ref()
                .and_then(|i| group.instances.get(i))
                .cloned();
            if let Some(old_id) = known {
                return static_rejoin(group, req, old_id, now, cfg, pending);
            }
            let prefix = req
                .group_instance_id
                .clone()
                .unwrap_or_else(|| req.client_id.clone());
            let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
            if req.require_known_member_id && req.group_instance_id.is_none() {
                group.pending_ids.insert(
                    new_id.clone(),
                    now.saturating_add(i64::from(req.session_timeout_ms)),
                );
                return error_join(GroupError::MemberIdRequired, &new_id);
            }
            return add_member(group, req, new_id, now, cfg, pending);
        }
        if let Some(instance) = &req.group_instance_id {
            match group.instances.get(instance) {
                Some(id) if *id != req.member_id => {
                    return error_join(GroupError::FencedInstanceId, &req.member_id)
                }
                None if !group.members.contains_key(&req.member_id)
                    && !group.pending_ids.contains_key(&req.member_id) =>
                {
                    return error_join(GroupError::UnknownMemberId, &req.member_id)
                }
                _ => {}
            }
        }
        if group.pending_ids.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return add_member(group, req, id, now, cfg, pending);
        }
        if !group.members.contains_key(&req.member_id) {
            return error_join(GroupError::UnknownMemberId, &req.member_id);
        }
        existing_rejoin(group, req, now, cfg, pending)
    }

    pub fn sync(&self, req: SyncRequest, now: i64) -> SyncOutcome {
        if let Err(e) = self.check_loaded() {
            return error_sync(e);
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(group) = inner.groups.get_mut(&req.group_id) else {
            return error_sync(GroupError::UnknownMemberId);
        };
        if group.is(GroupState::Dead) {
            return error_sync(GroupError::CoordinatorNotAvailable);
        }
        if let Err(e) = check_member(group, &req.member_id, req.group_instance_id.as_deref()) {
            return error_sync(e);
        }
        if req.generation_id != group.generation {
            return error_sync(GroupError::IllegalGeneration);
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| *t != group.protocol_type);
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != group.protocol.as_ref());
        if type_mismatch || name_mismatch {
            return error_sync(GroupError::InconsistentGroupProtocol);
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => error_sync(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => error_sync(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let Some(member) = group.members.get_mut(&req.member_id) else {
                    return error_sync(GroupError::UnknownMemberId);
                };
                member.last_seen = now;
                SyncOutcome::Done(sync_answer(group, &req.member_id))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = group.members.get_mut(&req.member_id) {
                    member.last_seen = now;
                    member.sync_waiter = Some(tx);
                }
                if group.leader.as_deref() == Some(req.member_id.as_str()) {
                    let assigned: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for (id, member) in &mut group.members {
                        member.assignment = assigned.get(id).cloned().unwrap_or_default();
                    }
                    group.transition(GroupState::Stable, now);
                    inner.pending.push(group_record(group, now));
                    let ids: Vec<String> = group.members.keys().cloned().collect();
                    for id in ids {
                        let answer = sync_answer(group, &id);
                        if let Some(waiter) = group
                            .members
                            .get_mut(&id)
                            .and_then(|m| m.sync_waiter.take())
                        {
                            let _ = waiter.send(answer);
                        }
                    }
                }
                SyncOutcome::Wait(rx)
            }
        }
    }

    pub fn heartbeat(&self, req: &HeartbeatRequest, now: i64) -> Result<(), GroupError> {
        self.check_loaded()?;
        let mut inner = self.lock();
        let group = inner
            .groups
            .get_mut(&req.group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        match group.state {
            GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(GroupError::UnknownMemberId),
            _ => {}
        }
        check_member(group, &req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if let Some(member) = group.members.get_mut(&req.member_id) {
            member.last_seen = now;
        }
        if group.is(GroupState::PreparingRebalance) {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Removes members; the outer error is for the whole group, the inner
    /// ones per member, in request order.
    pub fn leave(
        &self,
        group_id: &str,
        leaving: &[LeaveMember],
        now: i64,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check_loaded()?;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(group) = inner.groups.get_mut(group_id) else {
            return Ok(leaving
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect());
        };
        if group.is(GroupState::Dead) {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(leaving.len());
        let mut removed = false;
        for leave in leaving {
            let id = match (&leave.group_instance_id, leave.member_id.as_str()) {
                (Some(instance), member_id) => match group.instances.get(instance) {
                    Some(id) if member_id.is_empty() || id == member_id => Ok(id.clone()),
                    Some(_) => Err(GroupError::FencedInstanceId),
                    None => Err(GroupError::UnknownMemberId),
                },
                (None, member_id) => {
                    if group.pending_ids.remove(member_id).is_some() {
                        results.push(Ok(()));
                        continue;
                    }
                    if group.members.contains_key(member_id) {
                        Ok(member_id.to_string())
                    } else {
                        Err(GroupError::UnknownMemberId)
                    }
                }
            };
            match id {
                Ok(id) => {
                    tracing::info!(group = group_id, member = %id, "member left the group");
                    remove_member(group, &id, GroupError::UnknownMemberId);
                    removed = true;
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if removed {
            member_gone(group, now, &self.config, &mut inner.pending);
        }
        Ok(results)
    }

    /// Runs the timers: session expiry, rebalance and sync deadlines, the
    /// initial rebalance delay and offset retention.
    pub fn tick(&self, now: i64) {
        if !self.is_loaded() {
            return;
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut gone = Vec::new();
        for group in inner.groups.values_mut() {
            group.pending_ids.retain(|_, deadline| *deadline > now);
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| m.expired(now))
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                tracing::info!(group = %group.id, member = %id, "member session expired");
                remove_member(group, id, GroupError::UnknownMemberId);
            }
            if !expired.is_empty() {
                member_gone(group, now, &self.config, &mut inner.pending);
            }
            match group.state {
                GroupState::PreparingRebalance => {
                    if now >= group.rebalance_deadline {
                        complete_join(group, now, &mut inner.pending);
                    } else {
                        try_complete_join(group, now, &mut inner.pending);
                    }
                }
                GroupState::CompletingRebalance if now >= group.rebalance_deadline => {
                    let lagging: Vec<String> = group
                        .members
                        .values()
                        .filter(|m| m.sync_waiter.is_none())
                        .map(|m| m.id.clone())
                        .collect();
                    for id in &lagging {
                        tracing::info!(group = %group.id, member = %id, "member did not sync in time");
                        remove_member(group, id, GroupError::UnknownMemberId);
                    }
                    prepare_rebalance(group, now, &self.config);
                    try_complete_join(group, now, &mut inner.pending);
                }
                _ => {}
            }
            if crate::offsets::expire_offsets(group, now, &self.config, &mut inner.pending) {
                gone.push(group.id.clone());
            }
        }
        for id in gone {
            inner.groups.remove(&id);
        }
    }
}

/// Checks that `member_id` belongs to the group and is not a fenced static
/// instance.
pub(crate) fn check_member(
    group: &Group,
    member_id: &str,
    instance: Option<&str>,
) -> Result<(), GroupError> {
    if let Some(instance) = instance {
        if let Some(id) = group.instances.get(instance) {
            if id != member_id {
                return Err(GroupError::FencedInstanceId);
            }
        }
    }
    if group.members.contains_key(member_id) {
        Ok(())
    } else {
        Err(GroupError::UnknownMemberId)
    }
}

fn new_member(
    req: &JoinRequest,
    id: String,
    now: i64,
) -> (Member, oneshot::Receiver<JoinResponse>) {
    let (tx, rx) = oneshot::channel();
    let member = Member {
        id,
        instance_id: req.group_instance_id.clone(),
        client_id: req.client_id.clone(),
        client_host: req.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        protocols: req.protocols.clone(),
        assignment: Bytes::new(),
        last_seen: now,
        join_waiter: Some(tx),
        sync_waiter: None,
    };
    (member, rx)
}

fn add_member(
    group: &mut Group,
    req: JoinRequest,
    id: String,
    now: i64,
    cfg: &GroupConfig,
    pending: &mut Vec<OffsetsRecord>,
) -> JoinOutcome {
    let (member, rx) = new_member(&req, id.clone(), now);
    if group.members.is_empty() {
        group.protocol_type = req.protocol_type.clone();
    }
    // The first member to join leads, as in Kafka.
    if group
        .leader
        .as_ref()
        .is_none_or(|l| !group.members.contains_key(l))
    {
        group.leader = Some(id.clone());
    }
    if let Some(instance) = &req.group_instance_id {
        group.instances.insert(instance.clone(), id.clone());
    }
    group.members.insert(id, member);
    match group.state {
        GroupState::PreparingRebalance => {
            // Still inside the initial delay: give latecomers another delay,
            // within the rebalance timeout.
            if group.join_not_before > now {
                group.join_not_before = now
                    .saturating_add(cfg.initial_rebalance_delay_ms)
                    .min(group.rebalance_deadline);
            }
            group.rebalance_deadline = group
                .rebalance_deadline
                .max(now.saturating_add(i64::from(req.rebalance_timeout_ms)));
        }
        _ => prepare_rebalance(group, now, cfg),
    }
    try_complete_join(group, now, pending);
    JoinOutcome::Wait(rx)
}

fn existing_rejoin(
    group: &mut Group,
    req: JoinRequest,
    now: i64,
    cfg: &GroupConfig,
    pending: &mut Vec<OffsetsRecord>,
) -> JoinOutcome {
    let id = req.member_id.clone();
    let Some(member) = group.members.get_mut(&id) else {
        return error_join(GroupError::UnknownMemberId, &id);
    };
    let unchanged = member.protocols == req.protocols;
    let is_leader = group.leader.as_deref() == Some(id.as_str());
    member.last_seen = now;
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.protocols = req.protocols;
    match group.state {
        GroupState::CompletingRebalance | GroupState::Stable
            if unchanged && !(group.is(GroupState::Stable) && is_leader) =>
        {
            // A retried join: answer with the current generation.
            JoinOutcome::Done(join_answer(group, &id, false))
        }
        _ => {
            let (tx, rx) = oneshot::channel();
            if let Some(member) = group.members.get_mut(&id) {
                if let Some(old) = member.join_waiter.replace(tx) {
                    let _ = old.send(JoinResponse {
                        error: Some(GroupError::UnknownMemberId),
                        generation_id: -1,
                        member_id: id.clone(),
                        ..JoinResponse::default()
                    });
                }
            }
            if !group.is(GroupState::PreparingRebalance) {
                prepare_rebalance(group, now, cfg);
            }
            try_complete_join(group, now, pending);
            JoinOutcome::Wait(rx)
        }
    }
}

/// A static member (KIP-345) rejoining without its member id: it takes a
/// new id and keeps its place and assignment; the old id is fenced.
fn static_rejoin(
    group: &mut Group,
    req: JoinRequest,
    old_id: String,
    now: i64,
    cfg: &GroupConfig,
    pending: &mut Vec<OffsetsRecord>,
) -> JoinOutcome {
    let Some(mut member) = group.members.remove(&old_id) else {
        return error_join(GroupError::UnknownMemberId, &req.member_id);
    };
    let prefix = req.group_instance_id.clone().unwrap_or_default();
    let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
    tracing::info!(group = %group.id, old = %old_id, new = %new_id, "static member rejoined");
    if let Some(w) = member.join_waiter.take() {
        let _ = w.send(JoinResponse {
            error: Some(GroupError::FencedInstanceId),
            generation_id: -1,
            member_id: old_id.clone(),
            ..JoinResponse::default()
        });
    }
    if let Some(w) = member.sync_waiter.take() {
        let _ = w.send(SyncResponse {
            error: Some(GroupError::FencedInstanceId),
            ..SyncResponse::default()
        });
    }
    let unchanged = member.protocols == req.protocols;
    member.id = new_id.clone();
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.protocols = req.protocols.clone();
    member.last_seen = now;
    if let Some(instance) = &req.group_instance_id {
        group.instances.insert(instance.clone(), new_id.clone());
    }
    if group.leader.as_deref() == Some(old_id.as_str()) {
        group.leader = Some(new_id.clone());
    }
    group.members.insert(new_id.clone(), member);
    if group.is(GroupState::Stable) && unchanged {
        pending.push(group_record(group, now));
        let is_leader = group.leader.as_deref() == Some(new_id.as_str());
        return JoinOutcome::Done(join_answer(group, &new_id, is_leader));
    }
    let (tx, rx) = oneshot::channel();
    if let Some(m) = group.members.get_mut(&new_id) {
        m.join_waiter = Some(tx);
    }
    if !group.is(GroupState::PreparingRebalance) {
        prepare_rebalance(group, now, cfg);
    }
    try_complete_join(group, now, pending);
    JoinOutcome::Wait(rx)
}

/// Removes a member, answering its waiting requests with `error`.
pub(crate) fn remove_member(group: &mut Group, id: &str, error: GroupError) {
    if let Some(mut member) = group.members.remove(id) {
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResponse {
                error: Some(error),
                generation_id: -1,
                member_id: id.to_string(),
                ..JoinResponse::default()
            });
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResponse {
                error: Some(error),
                ..SyncResponse::default()
            });
        }
        if let Some(instance) = &member.instance_id {
            if group.instances.get(instance).map(String::as_str) == Some(id) {
                group.instances.remove(instance);
            }
        }
    }
}

/// After members left or expired: rebalance the rest.
fn member_gone(group: &mut Group, now: i64, cfg: &GroupConfig, pending: &mut Vec<OffsetsRecord>) {
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(group, now, cfg);
            try_complete_join(group, now, pending);
        }
        GroupState::PreparingRebalance => try_complete_join(group, now, pending),
        GroupState::Empty | GroupState::Dead => {}
    }
}

pub(crate) fn prepare_rebalance(group: &mut Group, now: i64, cfg: &GroupConfig) {
    if group.is(GroupState::CompletingRebalance) {
        for member in group.members.values_mut() {
            if let Some(w) = member.sync_waiter.take() {
                let _ = w.send(SyncResponse {
                    error: Some(GroupError::RebalanceInProgress),
                    ..SyncResponse::default()
                });
            }
        }
    }
    let was_empty = group.is(GroupState::Empty);
    group.transition(GroupState::PreparingRebalance, now);
    group.rebalance_deadline = now.saturating_add(group.max_rebalance_timeout());
    group.join_not_before = if was_empty {
        now.saturating_add(cfg.initial_rebalance_delay_ms)
            .min(group.rebalance_deadline)
    } else {
        now
    };
}

fn try_complete_join(group: &mut Group, now: i64, pending: &mut Vec<OffsetsRecord>) {
    if group.is(GroupState::PreparingRebalance)
        && group.all_joined()
        && now >= group.join_not_before
    {
        complete_join(group, now, pending);
    }
}

/// Ends the join phase: members that did not rejoin are dropped, the
/// generation advances and every waiting member gets its answer.
fn complete_join(group: &mut Group, now: i64, pending: &mut Vec<OffsetsRecord>) {
    let missing: Vec<String> = group
        .members
        .values()
        .filter(|m| m.join_waiter.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in &missing {
        tracing::info!(group = %group.id, member = %id, "member did not rejoin in time");
        remove_member(group, id, GroupError::UnknownMemberId);
    }
    group.generation = group.generation.wrapping_add(1);
    if group.members.is_empty() {
        group.protocol = None;
        group.leader = None;
        group.transition(GroupState::Empty, now);
        pending.push(group_record(group, now));
        return;
    }
    group.protocol = group.select_protocol();
    if group
        .leader
        .as_ref()
        .is_none_or(|l| !group.members.contains_key(l))
    {
        group.leader = group.members.keys().next().cloned();
    }
    group.transition(GroupState::CompletingRebalance, now);
    group.rebalance_deadline = now.saturating_add(group.max_rebalance_timeout());
    tracing::info!(group = %group.id, generation = group.generation, members = group.members.len(),
        protocol = group.protocol.as_deref().unwrap_or(""), "rebalance completed its join phase");
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let is_leader = group.leader.as_deref() == Some(id.as_str());
        let answer = join_answer(group, &id, is_leader);
        if let Some(member) = group.members.get_mut(&id) {
            member.last_seen = now;
            if let Some(w) = member.join_waiter.take() {
                let _ = w.send(answer);
            }
        }
    }
}

/// The JoinGroup answer for `id` in the current generation. The leader gets
/// every member's metadata; `skip` marks a static leader that must not
/// reassign.
fn join_answer(group: &Group, id: &str, leader_view: bool) -> JoinResponse {
    let protocol = group.protocol.clone();
    let members = if group.leader.as_deref() == Some(id) {
        group
            .members
            .values()
            .map(|m| JoinMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(protocol.as_deref().unwrap_or_default()),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResponse {
        error: None,
        generation_id: group.generation,
        protocol_type: Some(group.protocol_type.clone()),
        protocol_name: protocol,
        leader: group.leader.clone().unwrap_or_default(),
        member_id: id.to_string(),
        members,
        skip_assignment: leader_view && group.is(GroupState::Stable),
    }
}

fn sync_answer(group: &Group, id: &str) -> SyncResponse {
    SyncResponse {
        error: None,
        protocol_type: Some(group.protocol_type.clone()),
        protocol_name: group.protocol.clone(),
        assignment: group
            .members
            .get(id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default(),
    }
}

/// The group metadata record for the group as it is now.
pub(crate) fn group_record(group: &Group, now: i64) -> OffsetsRecord {
    let value = GroupValue {
        protocol_type: group.protocol_type.clone(),
        generation: group.generation,
        protocol: group.protocol.clone(),
        leader: group.leader.clone(),
        current_state_timestamp: now,
        members: group
            .members
            .values()
            .map(|m| MemberValue {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout: m.rebalance_timeout_ms,
                session_timeout: m.session_timeout_ms,
                subscription: group
                    .protocol
                    .as_deref()
                    .map(|p| m.metadata_for(p))
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect(),
    };
    OffsetsRecord {
        group: group.id.clone(),
        key: records::encode_key(&RecordKey::Group {
            group: group.id.clone(),
        }),
        value: Some(records::encode_group_value(&value)),
    }
}
