//! A member of a classic consumer group (Kafka's "consumer" protocol type
//! with the `range` assignor): JoinGroup, SyncGroup (the leader assigns),
//! Heartbeat, OffsetCommit and LeaveGroup, all sent to the group's
//! coordinator.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::{ClientError, ClusterClient};

/// The assignor this member offers (and, as leader, runs).
pub const RANGE: &str = "range";

const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_MEMBER_ID: i16 = 25;
const ILLEGAL_GENERATION: i16 = 22;
const REBALANCE_IN_PROGRESS: i16 = 27;

/// Timeouts of a member, as a consumer's configs name them.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// `session.timeout.ms`
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`: how long a rebalance waits for this member.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`
    pub heartbeat_interval: Duration,
}

impl Default for MemberConfig {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(3),
        }
    }
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Still a member of the current generation.
    Ok,
    /// The group is rebalancing (or forgot this member): join again.
    Rejoin,
}

/// See the module documentation.
#[derive(Debug)]
pub struct GroupMember {
    group: String,
    topics: Vec<String>,
    config: MemberConfig,
    member_id: String,
    generation: i32,
}

fn group_id(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl GroupMember {
    pub fn new(group: &str, topics: Vec<String>, config: MemberConfig) -> Self {
        Self {
            group: group.to_string(),
            topics,
            config,
            member_id: String::new(),
            generation: -1,
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.config.heartbeat_interval
    }

    /// Joins the group (again) and returns this member's partitions, by topic.
    pub async fn join(
        &mut self,
        client: &mut ClusterClient,
    ) -> Result<BTreeMap<String, Vec<i32>>, ClientError> {
        let mut rounds = 0;
        loop {
            rounds += 1;
            match self.join_once(client).await {
                Ok(Some(assignment)) => return Ok(assignment),
                // The group moved on while we joined: join again.
                Ok(None) if rounds < 20 => continue,
                Ok(None) => {
                    return Err(ClientError::Invalid(format!(
                        "could not join group '{}': it kept rebalancing",
                        self.group
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One JoinGroup and SyncGroup; `None` when the group asks to join again.
    async fn join_once(
        &mut self,
        client: &mut ClusterClient,
    ) -> Result<Option<BTreeMap<String, Vec<i32>>>, ClientError> {
        let mut subscription = ConsumerProtocolSubscription::default();
        subscription.topics = self.topics.iter().map(|t| text(t)).collect();
        let metadata = versioned(&subscription, 0)?;
        let group = self.group.clone();
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        let (session, rebalance) = (
            ms(self.config.session_timeout),
            ms(self.config.rebalance_timeout),
        );
        // JoinGroup; a first join without a member id is answered with
        // MEMBER_ID_REQUIRED and the id to use (KIP-394).
        let (coordinator, joined) = loop {
            let mut protocol = JoinGroupRequestProtocol::default();
            protocol.name = text(RANGE);
            protocol.metadata = metadata.clone();
            let mut request = JoinGroupRequest::default();
            request.group_id = group_id(&group);
            request.session_timeout_ms = session;
            request.rebalance_timeout_ms = rebalance;
            request.member_id = text(&self.member_id);
            request.protocol_type = text("consumer");
            request.protocols = vec![protocol];
            let (coordinator, response) = client
                .with_retries(async |c| {
                    let coordinator = c.coordinator(&group).await?;
                    let response = c.call_node(coordinator, &request).await?;
                    if crate::is_retriable_code(response.error_code) {
                        ClientError::check(response.error_code, None, || {
                            format!("could not join group '{group}'")
                        })?;
                    }
                    Ok((coordinator, response))
                })
                .await?;
            match response.error_code {
                0 => break (coordinator, response),
                MEMBER_ID_REQUIRED => self.member_id = response.member_id.to_string(),
                UNKNOWN_MEMBER_ID => self.member_id.clear(),
                code => {
                    ClientError::check(code, None, || format!("could not join group '{group}'"))?
                }
            }
        };
        self.member_id = joined.member_id.to_string();
        self.generation = joined.generation_id;

        let mut sync = SyncGroupRequest::default();
        sync.group_id = group_id(&group);
        sync.generation_id = self.generation;
        sync.member_id = text(&self.member_id);
        sync.protocol_type = Some(text("consumer"));
        sync.protocol_name = Some(text(RANGE));
        if joined.leader.as_str() == self.member_id {
            let mut subscriptions = BTreeMap::new();
            for m in &joined.members {
                let topics = decode_subscription(&m.metadata);
                subscriptions.insert(m.member_id.to_string(), topics);
            }
            let wanted: Vec<String> = {
                let mut all: Vec<String> = subscriptions.values().flatten().cloned().collect();
                all.sort();
                all.dedup();
                all
            };
            let described = client.describe_topics(Some(&wanted)).await?;
            let counts: BTreeMap<String, i32> = described
                .iter()
                .map(|(name, t)| (name.clone(), i32::try_from(t.partitions.len()).unwrap_or(0)))
                .collect();
            let plan = range_assign(&subscriptions, &counts);
            for (member, partitions) in plan {
                let mut assignment = ConsumerProtocolAssignment::default();
                assignment.assigned_partitions = partitions
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let mut tp = TopicPartition::default();
                        tp.topic = TopicName(text(&topic));
                        tp.partitions = partitions;
                        tp
                    })
                    .collect();
                let mut a = SyncGroupRequestAssignment::default();
                a.member_id = text(&member);
                a.assignment = versioned(&assignment, 0)?;
                sync.assignments.push(a);
            }
        }
        let response = client.call_node(coordinator, &sync).await?;
        match response.error_code {
            0 => {}
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => return Ok(None),
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                return Ok(None);
            }
            code => ClientError::check(code, None, || {
                format!("could not sync with group '{group}'")
            })?,
        }
        let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in crate::admin::decode_assignment(&response.assignment) {
            out.entry(topic).or_default().push(partition);
        }
        for partitions in out.values_mut() {
            partitions.sort_unstable();
        }
        Ok(Some(out))
    }

    /// One heartbeat.
    pub async fn heartbeat(
        &mut self,
        client: &mut ClusterClient,
    ) -> Result<Heartbeat, ClientError> {
        let mut request = HeartbeatRequest::default();
        request.group_id = group_id(&self.group);
        request.generation_id = self.generation;
        request.member_id = text(&self.member_id);
        let group = self.group.clone();
        let response = client
            .with_retries(async |c| {
                let coordinator = c.coordinator(&group).await?;
                let response = c.call_node(coordinator, &request).await?;
                if crate::is_retriable_code(response.error_code) {
                    ClientError::check(response.error_code, None, || {
                        format!("heartbeat to group '{group}' failed")
                    })?;
                }
                Ok(response)
            })
            .await?;
        match response.error_code {
            0 => Ok(Heartbeat::Ok),
            REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => Ok(Heartbeat::Rejoin),
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                Ok(Heartbeat::Rejoin)
            }
            code => {
                ClientError::check(code, None, || {
                    format!("heartbeat to group '{group}' failed")
                })?;
                Ok(Heartbeat::Ok)
            }
        }
    }

    /// Commits `offsets` (the next offset to read, per partition of `topic`)
    /// for this member's generation.
    pub async fn commit(
        &mut self,
        client: &mut ClusterClient,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(text(topic));
        t.partitions = offsets
            .iter()
            .map(|(&p, &o)| {
                let mut op = OffsetCommitRequestPartition::default();
                op.partition_index = p;
                op.committed_offset = o;
                op.committed_leader_epoch = -1;
                op
            })
            .collect();
        let mut request = OffsetCommitRequest::default();
        request.group_id = group_id(&self.group);
        request.generation_id_or_member_epoch = self.generation;
        request.member_id = text(&self.member_id);
        request.topics = vec![t];
        client.send_offset_commit(&self.group, &request).await
    }

    /// Leaves the group, so that the others get this member's partitions at once.
    pub async fn leave(&mut self, client: &mut ClusterClient) -> Result<(), ClientError> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let coordinator = client.coordinator(&self.group).await?;
        let version = client
            .node_connection(coordinator)
            .await?
            .version_of::<LeaveGroupRequest>()
            .unwrap_or(0);
        let mut request = LeaveGroupRequest::default();
        request.group_id = group_id(&self.group);
        if version >= 3 {
            let mut member = MemberIdentity::default();
            member.member_id = text(&self.member_id);
            request.members = vec![member];
        } else {
            request.member_id = text(&self.member_id);
        }
        let response = client.call_node(coordinator, &request).await?;
        self.member_id.clear();
        self.generation = -1;
        ClientError::check(response.error_code, None, || {
            format!("could not leave group '{}'", self.group)
        })
    }
}

/// A message with the i16 version in front, as the consumer protocol's
/// subscriptions and assignments are carried.
fn versioned<M: Encodable>(message: &M, version: i16) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| ClientError::Invalid(format!("could not encode group metadata: {e}")))?;
    Ok(buf.freeze())
}

/// The topics of a member's subscription (empty if it does not decode).
fn decode_subscription(bytes: &Bytes) -> Vec<String> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    ConsumerProtocolSubscription::decode(&mut buf, version)
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// Kafka's RangeAssignor: per topic, the members subscribed to it in
/// member-id order each get a contiguous range of partitions, the first
/// `partitions % members` one more than the rest.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut plan: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        let Ok(n) = i32::try_from(members.len()) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        let (each, extra) = (count / n, count % n);
        for (i, member) in (0..n).zip(members) {
            let start = i * each + i.min(extra);
            let len = each + i32::from(i < extra);
            if len > 0 {
                if let Some(topics) = plan.get_mut(member) {
                    topics.insert(topic.clone(), (start..start + len).collect());
                }
            }
        }
    }
    plan
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_range_assignor_gives_the_first_members_the_extra_partitions() {
        let subs: BTreeMap<String, Vec<String>> = [
            ("b".to_string(), vec!["t".to_string(), "u".to_string()]),
            ("a".to_string(), vec!["t".to_string()]),
            ("c".to_string(), vec!["t".to_string()]),
        ]
        .into_iter()
        .collect();
        let counts: BTreeMap<String, i32> = [("t".to_string(), 7), ("u".to_string(), 2)]
            .into_iter()
            .collect();
        let plan = range_assign(&subs, &counts);
        assert_eq!(plan["a"]["t"], vec![0, 1, 2]);
        assert_eq!(plan["b"]["t"], vec![3, 4]);
        assert_eq!(plan["c"]["t"], vec![5, 6]);
        assert_eq!(plan["b"]["u"], vec![0, 1]);
        assert!(!plan["a"].contains_key("u"));
    }

    #[test]
    fn subscriptions_and_assignments_round_trip_with_their_version() {
        let mut s = ConsumerProtocolSubscription::default();
        s.topics = vec![text("orders")];
        let bytes = versioned(&s, 0).unwrap();
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(decode_subscription(&bytes), vec!["orders".to_string()]);
        let mut a = ConsumerProtocolAssignment::default();
        let mut tp = TopicPartition::default();
        tp.topic = TopicName(text("orders"));
        tp.partitions = vec![1, 3];
        a.assigned_partitions = vec![tp];
        let bytes = versioned(&a, 0).unwrap();
        assert_eq!(
            crate::admin::decode_assignment(&bytes),
            vec![("orders".to_string(), 1), ("orders".to_string(), 3)]
        );
    }
}
