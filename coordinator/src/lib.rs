//! Wharf's group coordinator: the classic consumer-group protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup) and committed offsets, persisted as
//! records in Kafka's own schemas (see [`records`]).
//!
//! # Shape: a tick-driven state machine with injected time
//!
//! The coordinator does no I/O and reads no clock. Every call takes `now`
//! (milliseconds since the epoch) from its caller, and time-based work
//! (session expiry, rebalance timeouts, the initial rebalance delay,
//! offset retention) happens in [`GroupCoordinator::tick`], which the broker
//! calls on a short interval and tests call with whatever time they like.
//! That keeps the unit tests free of real sleeps and of tokio's paused
//! clock, and makes every transition a plain function call that can be
//! asserted on.
//!
//! JoinGroup and SyncGroup answers are often delayed until a rebalance
//! completes. Those calls return either an answer at once or a
//! [`tokio::sync::oneshot::Receiver`] that a later call (or tick) fulfils;
//! the broker's handler awaits it, so a waiting member holds only its own
//! connection. Only tokio's `sync` primitives are used; no sockets, no
//! timers, no runtime.
//!
//! Whatever must be made durable comes back from a call as a list of
//! [`OffsetsRecord`]s. The caller appends them to `__consumer_offsets`
//! before answering the client; on start it replays that topic through
//! [`GroupCoordinator::replay`].

pub mod acl;
mod consumer;
mod coordinator;
mod group;
mod messages;
pub mod metadata;
mod offsets;
mod rebalance;
pub mod records;
#[cfg(test)]
mod tests;
pub mod txn;
mod txn_offsets;

pub use consumer::{
    ConsumerGroupState, ConsumerGroupSummary, ConsumerHeartbeat, ConsumerHeartbeatAnswer,
    ConsumerMemberSummary, TopicMeta, Topics,
};
pub use coordinator::{
    GroupCoordinator, HeartbeatRequest, JoinMember, JoinOutcome, JoinRequest, JoinResponse,
    LeaveMember, SyncOutcome, SyncRequest, SyncResponse,
};
pub use group::{GroupState, GroupSummary, MemberSummary};
pub use offsets::{CommitRequest, CommittedOffset, OffsetCommitEntry};

/// Name of the internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The protocol type of Kafka consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Settings of the coordinator, from the broker's flags.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Delay before the first rebalance of an empty group completes, extended
    /// by each new member up to the rebalance timeout
    /// (`group.initial.rebalance.delay.ms`).
    pub initial_rebalance_delay_ms: i64,
    /// Smallest and largest session timeouts accepted
    /// (`group.min.session.timeout.ms`, `group.max.session.timeout.ms`).
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// How long the offsets of an empty group are kept
    /// (`offsets.retention.minutes`, in ms).
    pub offsets_retention_ms: i64,
    /// Partitions of `__consumer_offsets` (`offsets.topic.num.partitions`).
    pub offsets_partitions: i32,
    /// Session timeout of consumer-protocol members
    /// (`group.consumer.session.timeout.ms`).
    pub consumer_session_timeout_ms: i32,
    /// Heartbeat interval told to consumer-protocol members
    /// (`group.consumer.heartbeat.interval.ms`).
    pub consumer_heartbeat_interval_ms: i32,
    /// Most members of a consumer-protocol group (`group.consumer.max.size`).
    pub consumer_max_size: i32,
    /// Server-side assignors, the first the default
    /// (`group.consumer.assignors`).
    pub consumer_assignors: Vec<String>,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 1_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_partitions: 50,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_max_size: i32::MAX,
            consumer_assignors: vec![
                consumer::assignor::UNIFORM.to_string(),
                consumer::assignor::RANGE.to_string(),
            ],
        }
    }
}

/// The errors Kafka's group coordinator returns; the broker maps each to
/// its wire code in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("the coordinator is still loading its state")]
    CoordinatorLoadInProgress,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    /// Another broker coordinates this group (leads its partition).
    #[error("this broker is not the group's coordinator")]
    NotCoordinator,
    #[error("invalid group id")]
    InvalidGroupId,
    /// A field longer than the group's stored records can hold.
    #[error("{0} is longer than {max} bytes", max = crate::records::MAX_STRING_LEN)]
    TooLong(&'static str),
    #[error("a new member must rejoin with the member id it was given")]
    MemberIdRequired,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the static member was replaced by a newer instance")]
    FencedInstanceId,
    #[error("the member's protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("session timeout outside the broker's allowed range")]
    InvalidSessionTimeout,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group still has members")]
    NonEmptyGroup,
    #[error("the group is consuming the topic")]
    GroupSubscribedToTopic,
    #[error("the member epoch is fenced")]
    FencedMemberEpoch,
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    #[error("the static member's instance id is still in use")]
    UnreleasedInstanceId,
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    #[error("the server assignor is not supported")]
    UnsupportedAssignor,
    #[error("invalid request")]
    InvalidRequest,
    #[error("invalid regular expression")]
    InvalidRegularExpression,
}

/// Something to append to `__consumer_offsets`: a key and a value (`None`
/// is a tombstone), for the partition that owns `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsRecord {
    pub group: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// The `__consumer_offsets` partition that owns `group`, as Kafka chooses
/// it: `abs(group.hashCode()) % partitions`, with Java's String.hashCode
/// over UTF-16 code units and Kafka's `Utils.abs` (which maps i32::MIN to 0).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in group.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    if partitions <= 0 {
        0
    } else {
        abs % partitions
    }
}
