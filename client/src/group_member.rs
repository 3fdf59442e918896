//! A member of a classic consumer group (Kafka's "consumer" protocol type):
//! JoinGroup, SyncGroup (the leader assigns, with the `range` or the
//! `cooperative-sticky` assignor), Heartbeat, OffsetCommit and LeaveGroup,
//! all sent to the group's coordinator.
//!
//! The member offers its assignors in order of preference; the group picks
//! one every member supports. Its subscription (ConsumerProtocolSubscription
//! v2) carries the partitions it owns and the generation it got them in, so
//! that a cooperative-sticky leader keeps them where they are.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedPartition;
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

pub use crate::assignor::{range_assign, Assignor, Subscription, TopicPartitions};
use crate::{ClientError, ClusterClient};

/// The subscription version sent: v2 has the owned partitions and their
/// generation.
const SUBSCRIPTION_VERSION: i16 = 2;

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
    /// The assignors offered, most preferred first.
    assignors: Vec<Assignor>,
    /// The one the group chose at the last join.
    protocol: Option<Assignor>,
    /// The partitions this member holds (its last assignment).
    owned: TopicPartitions,
    /// Whether it lost its partitions (and membership) since the last
    /// `take_lost`: others may hold them now.
    lost: bool,
}

fn group_id(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl GroupMember {
    /// A member offering `assignors` (most preferred first; `range` when empty).
    pub fn new(
        group: &str,
        topics: Vec<String>,
        config: MemberConfig,
        assignors: Vec<Assignor>,
    ) -> Self {
        let assignors = if assignors.is_empty() {
            vec![Assignor::Range]
        } else {
            assignors
        };
        Self {
            group: group.to_string(),
            topics,
            config,
            member_id: String::new(),
            generation: -1,
            assignors,
            protocol: None,
            owned: BTreeMap::new(),
            lost: false,
        }
    }

    /// The assignor the group chose at the last join.
    pub fn protocol(&self) -> Option<Assignor> {
        self.protocol
    }

    /// The partitions this member holds.
    pub fn owned(&self) -> &TopicPartitions {
        &self.owned
    }

    /// Forgets the partitions held (they were lost with the membership).
    fn lose_partitions(&mut self) {
        self.owned.clear();
        self.lost = true;
    }

    /// Whether the member lost its partitions since the last call: what it
    /// read of them must not be committed, others may have gone further.
    pub fn take_lost(&mut self) -> bool {
        std::mem::take(&mut self.lost)
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
        let mut offered = Vec::with_capacity(self.assignors.len());
        for &assignor in &self.assignors {
            offered.push((assignor, self.subscription(assignor)?));
        }
        let group = self.group.clone();
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        let (session, rebalance) = (
            ms(self.config.session_timeout),
            ms(self.config.rebalance_timeout),
        );
        // JoinGroup; a first join without a member id is answered with
        // MEMBER_ID_REQUIRED and the id to use (KIP-394).
        let (coordinator, joined) = loop {
            let protocols = offered
                .iter()
                .map(|(assignor, metadata)| {
                    let mut protocol = JoinGroupRequestProtocol::default();
                    protocol.name = text(assignor.name());
                    protocol.metadata = metadata.clone();
                    protocol
                })
                .collect();
            let mut request = JoinGroupRequest::default();
            request.group_id = group_id(&group);
            request.session_timeout_ms = session;
            request.rebalance_timeout_ms = rebalance;
            request.member_id = text(&self.member_id);
            request.protocol_type = text("consumer");
            request.protocols = protocols;
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
                UNKNOWN_MEMBER_ID => {
                    self.member_id.clear();
                    self.lose_partitions();
                }
                code => {
                    ClientError::check(code, None, || format!("could not join group '{group}'"))?
                }
            }
        };
        self.member_id = joined.member_id.to_string();
        self.generation = joined.generation_id;
        let chosen = joined
            .protocol_name
            .as_ref()
            .and_then(|name| Assignor::from_name(name))
            .or_else(|| self.assignors.first().copied())
            .unwrap_or(Assignor::Range);
        self.protocol = Some(chosen);

        let mut sync = SyncGroupRequest::default();
        sync.group_id = group_id(&group);
        sync.generation_id = self.generation;
        sync.member_id = text(&self.member_id);
        sync.protocol_type = Some(text("consumer"));
        sync.protocol_name = Some(text(chosen.name()));
        if joined.leader.as_str() == self.member_id {
            let mut subscriptions = BTreeMap::new();
            for m in &joined.members {
                subscriptions.insert(m.member_id.to_string(), decode_subscription(&m.metadata));
            }
            let wanted: Vec<String> = {
                let mut all: Vec<String> = subscriptions
                    .values()
                    .flat_map(|s| s.topics.iter().cloned())
                    .collect();
                all.sort();
                all.dedup();
                all
            };
            let described = client.describe_topics(Some(&wanted)).await?;
            let counts: BTreeMap<String, i32> = described
                .iter()
                .map(|(name, t)| (name.clone(), i32::try_from(t.partitions.len()).unwrap_or(0)))
                .collect();
            let plan = chosen.assign(&subscriptions, &counts);
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
                a.assignment = versioned(&assignment, i16::from(chosen.is_cooperative()))?;
                sync.assignments.push(a);
            }
        }
        let response = client.call_node(coordinator, &sync).await?;
        match response.error_code {
            0 => {}
            REBALANCE_IN_PROGRESS => return Ok(None),
            ILLEGAL_GENERATION => {
                self.lose_partitions();
                return Ok(None);
            }
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.lose_partitions();
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
        self.owned = out.clone();
        Ok(Some(out))
    }

    /// This member's subscription metadata for `assignor`: its topics, the
    /// partitions it owns and their generation; cooperative-sticky also
    /// carries the generation in its user data, as older leaders read it.
    fn subscription(&self, assignor: Assignor) -> Result<Bytes, ClientError> {
        let mut s = ConsumerProtocolSubscription::default();
        s.topics = self.topics.iter().map(|t| text(t)).collect();
        s.owned_partitions = self
            .owned
            .iter()
            .map(|(topic, partitions)| {
                let mut tp = OwnedPartition::default();
                tp.topic = TopicName(text(topic));
                tp.partitions = partitions.clone();
                tp
            })
            .collect();
        s.generation_id = self.generation;
        if assignor.is_cooperative() {
            s.user_data = Some(Bytes::copy_from_slice(&self.generation.to_be_bytes()));
        }
        versioned(&s, SUBSCRIPTION_VERSION)
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
            REBALANCE_IN_PROGRESS => Ok(Heartbeat::Rejoin),
            ILLEGAL_GENERATION => {
                self.lose_partitions();
                Ok(Heartbeat::Rejoin)
            }
            UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.lose_partitions();
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
        self.lose_partitions();
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

/// A member's subscription (empty if it does not decode). The generation
/// of its owned partitions comes from v2's field, else from
/// cooperative-sticky's user data.
fn decode_subscription(bytes: &Bytes) -> Subscription {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return Subscription::default();
    }
    let version = buf.get_i16().clamp(0, 3);
    let Ok(s) = ConsumerProtocolSubscription::decode(&mut buf, version) else {
        return Subscription::default();
    };
    let from_user_data = s
        .user_data
        .as_ref()
        .and_then(|d| <[u8; 4]>::try_from(d.as_ref()).ok())
        .map(i32::from_be_bytes);
    let generation = if version >= 2 {
        s.generation_id
    } else {
        from_user_data.unwrap_or(-1)
    };
    let mut owned: TopicPartitions = BTreeMap::new();
    for tp in &s.owned_partitions {
        owned
            .entry(tp.topic.to_string())
            .or_default()
            .extend(tp.partitions.iter().copied());
    }
    Subscription {
        topics: s.topics.iter().map(|t| t.to_string()).collect(),
        owned,
        generation,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_and_assignments_round_trip_with_their_version() {
        let mut s = ConsumerProtocolSubscription::default();
        s.topics = vec![text("orders")];
        let bytes = versioned(&s, 0).unwrap();
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(
            decode_subscription(&bytes).topics,
            vec!["orders".to_string()]
        );
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

    #[test]
    fn a_subscription_carries_the_owned_partitions_and_their_generation() {
        let mut m = GroupMember::new(
            "g",
            vec!["orders".to_string()],
            MemberConfig::default(),
            vec![Assignor::CooperativeSticky, Assignor::Range],
        );
        m.generation = 7;
        m.owned.insert("orders".to_string(), vec![1, 4]);
        let bytes = m.subscription(Assignor::CooperativeSticky).unwrap();
        assert_eq!(&bytes[..2], &[0, 2]);
        let s = decode_subscription(&bytes);
        assert_eq!(s.topics, ["orders"]);
        assert_eq!(s.owned["orders"], [1, 4]);
        assert_eq!(s.generation, 7);
        // A v1 subscription: the generation comes from the user data.
        let mut v1 = ConsumerProtocolSubscription::default();
        v1.topics = vec![text("orders")];
        v1.user_data = Some(Bytes::copy_from_slice(&5i32.to_be_bytes()));
        assert_eq!(
            decode_subscription(&versioned(&v1, 1).unwrap()).generation,
            5
        );
        // Losing the membership loses the partitions, once.
        assert!(!m.take_lost());
        m.lose_partitions();
        assert!(m.owned().is_empty());
        assert!(m.take_lost());
        assert!(!m.take_lost());
        assert!(
            decode_subscription(&m.subscription(Assignor::Range).unwrap())
                .owned
                .is_empty()
        );
    }
}
