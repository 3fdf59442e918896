//! The rebalance protocol's steps on one group: adding and removing
//! members, static rejoins, entering and completing the join phase, and the
//! answers and records each step produces.

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::coordinator::error_join;
use crate::group::{Group, GroupState, Member};
use crate::messages::{JoinMember, JoinOutcome, JoinRequest, JoinResponse, SyncResponse};
use crate::records::{self, GroupValue, MemberValue, RecordKey};
use crate::{GroupConfig, GroupError, OffsetsRecord};

/// A member id: `prefix` (the client id or group instance id) and a UUID, as
/// Kafka makes them, with the prefix shortened where needed so the id fits
/// the stored group records.
pub(crate) fn new_member_id(prefix: &str) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    let room = records::MAX_STRING_LEN.saturating_sub(uuid.len() + 1);
    let mut cut = prefix.len().min(room);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{uuid}", prefix.get(..cut).unwrap_or_default())
}

pub(crate) fn new_member(
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

pub(crate) fn add_member(
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

pub(crate) fn existing_rejoin(
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
pub(crate) fn static_rejoin(
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
    let new_id = new_member_id(&prefix);
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
pub(crate) fn member_gone(
    group: &mut Group,
    now: i64,
    cfg: &GroupConfig,
    pending: &mut Vec<OffsetsRecord>,
) {
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

pub(crate) fn try_complete_join(group: &mut Group, now: i64, pending: &mut Vec<OffsetsRecord>) {
    if group.is(GroupState::PreparingRebalance)
        && group.all_joined()
        && now >= group.join_not_before
    {
        complete_join(group, now, pending);
    }
}

/// Ends the join phase: members that did not rejoin are dropped, the
/// generation advances and every waiting member gets its answer.
pub(crate) fn complete_join(group: &mut Group, now: i64, pending: &mut Vec<OffsetsRecord>) {
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
pub(crate) fn join_answer(group: &Group, id: &str, leader_view: bool) -> JoinResponse {
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

pub(crate) fn sync_answer(group: &Group, id: &str) -> SyncResponse {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_from_long_client_ids_fit_the_stored_records() {
        let long = "é".repeat(20_000);
        let id = new_member_id(&long);
        assert!(records::fits(&id), "{} bytes", id.len());
        assert!(id.starts_with("éé"));
        let short = new_member_id("rdkafka");
        assert!(short.starts_with("rdkafka-"));
        assert_eq!(short.len(), "rdkafka-".len() + 36);
    }
}
