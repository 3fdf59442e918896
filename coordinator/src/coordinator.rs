//! The membership half of the coordinator: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and the timers driven by [`GroupCoordinator::tick`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::group::{Group, GroupState};
pub use crate::messages::*;
use crate::rebalance::*;
use crate::records;
use crate::{GroupConfig, GroupError, OffsetsRecord};

pub(crate) struct Inner {
    pub groups: HashMap<String, Group>,
    /// Group metadata to append to `__consumer_offsets`; drained by the
    /// caller with [`GroupCoordinator::take_records`].
    pub pending: Vec<OffsetsRecord>,
    /// Offsets committed inside transactions (TxnOffsetCommit), per
    /// producer id, until the transaction's marker decides their fate.
    pub pending_txn: HashMap<i64, Vec<crate::txn_offsets::PendingOffset>>,
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

pub(crate) fn error_join(error: GroupError, member_id: &str) -> JoinOutcome {
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
                pending_txn: HashMap::new(),
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

    /// Forgets the groups `moved` selects (their partition is led by
    /// another broker now); returns how many.
    pub fn unload(&self, moved: impl Fn(&str) -> bool) -> usize {
        let mut inner = self.lock();
        let before = inner.groups.len();
        inner.groups.retain(|id, _| !moved(id));
        inner.pending.retain(|r| !moved(&r.group));
        before - inner.groups.len()
    }

    /// Group metadata records produced since the last call.
    pub fn take_records(&self) -> Vec<OffsetsRecord> {
        std::mem::take(&mut self.lock().pending)
    }

    pub fn join(&self, req: JoinRequest, now: i64) -> JoinOutcome {
        if let Err(e) = self.check_loaded() {
            return error_join(e, &req.member_id);
        }
        if let Err(e) = check_join_fields(&req) {
            return error_join(e, &req.member_id);
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
        // A consumer-protocol group with members takes no classic members;
        // an empty one turns classic again.
        if group.consumer.as_ref().is_some_and(|c| c.has_members()) {
            return error_join(GroupError::InconsistentGroupProtocol, &req.member_id);
        }
        group.consumer = None;
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
            let new_id = crate::rebalance::new_member_id(&prefix);
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
            crate::consumer::tick(group, now, self.config.consumer_session_timeout_ms);
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

/// Kafka's group id rule (not empty), and every field a JoinGroup stores
/// short enough for the group's records.
fn check_join_fields(req: &JoinRequest) -> Result<(), GroupError> {
    check_group_id(&req.group_id)?;
    if !req.group_instance_id.as_deref().is_none_or(records::fits) {
        return Err(GroupError::TooLong("group instance id"));
    }
    if !records::fits(&req.protocol_type) {
        return Err(GroupError::TooLong("protocol type"));
    }
    if !req.protocols.iter().all(|(name, _)| records::fits(name)) {
        return Err(GroupError::TooLong("protocol name"));
    }
    Ok(())
}

/// A group id must be non-empty (Kafka) and fit the stored records.
pub(crate) fn check_group_id(group_id: &str) -> Result<(), GroupError> {
    if group_id.is_empty() || !records::fits(group_id) {
        return Err(GroupError::InvalidGroupId);
    }
    Ok(())
}
