//! The records of Kafka's `__cluster_metadata` log that Wharf uses, in
//! Kafka's own layout (`metadata/src/main/resources/common/metadata/*.json`).
//!
//! A record value is a frame: the frame version (unsigned varint, always 1),
//! the record's api key (unsigned varint), its version (unsigned varint),
//! then the record's fields in the flexible-version encoding (compact
//! strings and arrays, a tagged-field section at the end). Decoding demands
//! the frame be consumed exactly, as Kafka's `AbstractApiMessageSerde` does.
//!
//! Wharf writes one version of each record (see [`MetadataRecord::version`]):
//! the newest of Kafka's versions at the time of writing. It reads every
//! version Kafka defines, filling fields a version lacks with the schema's
//! default. Tagged fields the version does not define are skipped, not kept.

use uuid::Uuid;

use super::wire::{Reader, Writer};

/// Why a metadata record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("metadata record ends early")]
    Truncated,
    #[error("unsigned varint longer than five bytes")]
    VarintTooLong,
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("field {0} is null but is not nullable")]
    UnexpectedNull(&'static str),
    #[error("tagged field {0} is longer than its value")]
    TaggedFieldSize(u32),
    #[error("unknown metadata frame version {0} (only 1 is defined)")]
    UnknownFrameVersion(u32),
    #[error("unknown metadata record api key {0}")]
    UnknownApiKey(u32),
    #[error("record with api key {api_key} has no version {version}")]
    UnsupportedVersion { api_key: u16, version: u32 },
    #[error("field {field} has the undefined value {value}")]
    InvalidValue { field: &'static str, value: i64 },
    #[error("{0} byte(s) left after the record")]
    TrailingBytes(usize),
}

/// Kafka's `LeaderRecoveryState`: whether the leader was elected uncleanly
/// and has not yet told the controller it recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LeaderRecoveryState {
    #[default]
    Recovered,
    Recovering,
}

impl LeaderRecoveryState {
    pub fn value(self) -> i8 {
        match self {
            LeaderRecoveryState::Recovered => 0,
            LeaderRecoveryState::Recovering => 1,
        }
    }

    pub fn from_value(value: i8) -> Result<Self, RecordError> {
        match value {
            0 => Ok(LeaderRecoveryState::Recovered),
            1 => Ok(LeaderRecoveryState::Recovering),
            v => Err(RecordError::InvalidValue {
                field: "LeaderRecoveryState",
                value: i64::from(v),
            }),
        }
    }
}

/// `BrokerRegistrationChangeRecord.Fenced`: -1 unfence, 0 no change, 1 fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FencingChange {
    Unfence,
    #[default]
    None,
    Fence,
}

impl FencingChange {
    pub(crate) fn value(self) -> i8 {
        match self {
            FencingChange::Unfence => -1,
            FencingChange::None => 0,
            FencingChange::Fence => 1,
        }
    }

    pub(crate) fn from_value(value: i8) -> Result<Self, RecordError> {
        match value {
            -1 => Ok(FencingChange::Unfence),
            0 => Ok(FencingChange::None),
            1 => Ok(FencingChange::Fence),
            v => Err(RecordError::InvalidValue {
                field: "Fenced",
                value: i64::from(v),
            }),
        }
    }
}

/// A listener of a broker (`RegisterBrokerRecord.EndPoints`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's `SecurityProtocol` id: 0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT,
    /// 3 SASL_SSL.
    pub security_protocol: i16,
}

/// A feature range a broker supports (`RegisterBrokerRecord.Features`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerFeature {
    pub name: String,
    pub min_supported_version: i16,
    pub max_supported_version: i16,
}

/// RegisterBrokerRecord (api key 0): a broker's registration, replacing any
/// earlier one for the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    pub broker_id: i32,
    /// v2+; always false for Wharf, kept so Kafka's records round-trip.
    pub is_migrating_zk_broker: bool,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub end_points: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    /// Schema default true: a new broker starts fenced.
    pub fenced: bool,
    /// v1+.
    pub in_controlled_shutdown: bool,
    /// v3+, tag 0.
    pub log_dirs: Vec<Uuid>,
}

/// UnregisterBrokerRecord (api key 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnregisterBrokerRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// BrokerRegistrationChangeRecord (api key 17): fencing, controlled
/// shutdown or log directories of a registered broker changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistrationChangeRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// Tag 0.
    pub fenced: FencingChange,
    /// v1+, tag 1: true when the broker entered controlled shutdown (the
    /// wire's 1; 0 means no change).
    pub in_controlled_shutdown: bool,
    /// v2+, tag 2: the broker's online log directories; empty means no
    /// change.
    pub log_dirs: Vec<Uuid>,
}

/// FenceBrokerRecord (api key 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceBrokerRecord {
    pub id: i32,
    pub epoch: i64,
}

/// UnfenceBrokerRecord (api key 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfenceBrokerRecord {
    pub id: i32,
    pub epoch: i64,
}

/// TopicRecord (api key 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
}

/// PartitionRecord (api key 3): a partition's complete state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    /// -1 when there is no leader.
    pub leader: i32,
    /// Tag 0.
    pub leader_recovery_state: LeaderRecoveryState,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// v1+: the log directory of each replica, in replica order.
    pub directories: Vec<Uuid>,
    /// v2+, tag 1 (KIP-966).
    pub eligible_leader_replicas: Option<Vec<i32>>,
    /// v2+, tag 2 (KIP-966).
    pub last_known_elr: Option<Vec<i32>>,
}

/// The `Leader` field of a PartitionChangeRecord.
pub const NO_LEADER_CHANGE: i32 = -2;
/// A partition without a leader.
pub const NO_LEADER: i32 = -1;

/// PartitionChangeRecord (api key 5): only what changed; every field but the
/// ids is tagged and absent when unchanged. Applying one always bumps the
/// partition epoch, and a `leader` other than [`NO_LEADER_CHANGE`] bumps the
/// leader epoch (Kafka's `PartitionRegistration.merge`): the epochs are not
/// in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    /// Tag 0.
    pub isr: Option<Vec<i32>>,
    /// Tag 1: [`NO_LEADER_CHANGE`] (-2, the default), [`NO_LEADER`] (-1), or
    /// the new leader.
    pub leader: i32,
    /// Tag 2.
    pub replicas: Option<Vec<i32>>,
    /// Tag 3.
    pub removing_replicas: Option<Vec<i32>>,
    /// Tag 4.
    pub adding_replicas: Option<Vec<i32>>,
    /// Tag 5; `None` is the wire's -1 (no change).
    pub leader_recovery_state: Option<LeaderRecoveryState>,
    /// v2+, tag 6.
    pub eligible_leader_replicas: Option<Vec<i32>>,
    /// v2+, tag 7.
    pub last_known_elr: Option<Vec<i32>>,
    /// v1+, tag 8.
    pub directories: Option<Vec<Uuid>>,
}

impl PartitionChangeRecord {
    /// A record for the partition that changes nothing yet.
    pub fn new(topic_id: Uuid, partition_id: i32) -> Self {
        PartitionChangeRecord {
            partition_id,
            topic_id,
            isr: None,
            leader: NO_LEADER_CHANGE,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
            leader_recovery_state: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
            directories: None,
        }
    }

    /// True when applying the record would change nothing but the epoch
    /// (Kafka's `changeRecordIsNoOp`); such records are not proposed.
    pub fn is_no_op(&self) -> bool {
        self.isr.is_none()
            && self.leader == NO_LEADER_CHANGE
            && self.replicas.is_none()
            && self.removing_replicas.is_none()
            && self.adding_replicas.is_none()
            && self.leader_recovery_state.is_none()
            && self.eligible_leader_replicas.is_none()
            && self.last_known_elr.is_none()
            && self.directories.is_none()
    }
}

/// RemoveTopicRecord (api key 9): the topic, its partitions and its configs
/// are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveTopicRecord {
    pub topic_id: Uuid,
}

/// Kafka's `ConfigResource.Type` ids used in ConfigRecord.
pub const CONFIG_RESOURCE_TOPIC: i8 = 2;
pub const CONFIG_RESOURCE_BROKER: i8 = 4;

/// ConfigRecord (api key 4): one config key set (or removed, `value: None`)
/// on a resource. A broker resource's name is the broker id, or "" for the
/// cluster-wide default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    pub resource_type: i8,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

/// FeatureLevelRecord (api key 12); level 0 removes the feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureLevelRecord {
    pub name: String,
    pub feature_level: i16,
}

/// ProducerIdsRecord (api key 15): producer ids below `next_producer_id`
/// are handed out (a broker took the block ending there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerIdsRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub next_producer_id: i64,
}

/// Kafka's `ScramMechanism` types in the SCRAM credential records.
pub const SCRAM_SHA_256: i8 = 1;
pub const SCRAM_SHA_512: i8 = 2;

/// UserScramCredentialRecord (api key 11): user `name`'s SCRAM credential
/// for one mechanism (never the password: the salt, the keys derived from
/// the salted password, and the iteration count).
#[derive(Clone, PartialEq, Eq)]
pub struct UserScramCredentialRecord {
    pub name: String,
    pub mechanism: i8,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for UserScramCredentialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserScramCredentialRecord")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// RemoveUserScramCredentialRecord (api key 22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveUserScramCredentialRecord {
    pub name: String,
    pub mechanism: i8,
}

/// AccessControlEntryRecord (api key 18): one ACL, stored under its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControlEntryRecord {
    pub id: Uuid,
    pub acl: crate::acl::AclBinding,
}

/// RemoveAccessControlEntryRecord (api key 19): the ACL with this id is
/// gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveAccessControlEntryRecord {
    pub id: Uuid,
}

/// Every metadata record Wharf reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    UnregisterBroker(UnregisterBrokerRecord),
    BrokerRegistrationChange(BrokerRegistrationChangeRecord),
    FenceBroker(FenceBrokerRecord),
    UnfenceBroker(UnfenceBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    PartitionChange(PartitionChangeRecord),
    RemoveTopic(RemoveTopicRecord),
    Config(ConfigRecord),
    FeatureLevel(FeatureLevelRecord),
    ProducerIds(ProducerIdsRecord),
    UserScramCredential(UserScramCredentialRecord),
    RemoveUserScramCredential(RemoveUserScramCredentialRecord),
    AccessControlEntry(AccessControlEntryRecord),
    RemoveAccessControlEntry(RemoveAccessControlEntryRecord),
    /// NoOpRecord (api key 20): no fields; Kafka's controller appends one
    /// now and then to advance the log.
    NoOp,
}

/// The only frame version Kafka defines.
const FRAME_VERSION: u32 = 1;

impl MetadataRecord {
    /// The record's api key in Kafka's metadata schemas.
    pub fn api_key(&self) -> u16 {
        match self {
            MetadataRecord::RegisterBroker(_) => 0,
            MetadataRecord::UnregisterBroker(_) => 1,
            MetadataRecord::Topic(_) => 2,
            MetadataRecord::Partition(_) => 3,
            MetadataRecord::Config(_) => 4,
            MetadataRecord::PartitionChange(_) => 5,
            MetadataRecord::FenceBroker(_) => 7,
            MetadataRecord::UnfenceBroker(_) => 8,
            MetadataRecord::RemoveTopic(_) => 9,
            MetadataRecord::UserScramCredential(_) => 11,
            MetadataRecord::FeatureLevel(_) => 12,
            MetadataRecord::RemoveUserScramCredential(_) => 22,
            MetadataRecord::ProducerIds(_) => 15,
            MetadataRecord::NoOp => 20,
            MetadataRecord::BrokerRegistrationChange(_) => 17,
            MetadataRecord::AccessControlEntry(_) => 18,
            MetadataRecord::RemoveAccessControlEntry(_) => 19,
        }
    }

    /// The version Wharf writes: the newest Kafka defines for the record.
    pub fn version(&self) -> u32 {
        match self {
            MetadataRecord::RegisterBroker(_) => 3,
            MetadataRecord::BrokerRegistrationChange(_) => 2,
            MetadataRecord::Partition(_) | MetadataRecord::PartitionChange(_) => 2,
            _ => 0,
        }
    }

    /// The record value: frame version, api key, version, fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.uvarint(FRAME_VERSION);
        w.uvarint(u32::from(self.api_key()));
        w.uvarint(self.version());
        super::codec::write_body(&mut w, self);
        w.out
    }

    /// Decodes one record value. Any malformed input is an error.
    pub fn decode(buf: &[u8]) -> Result<MetadataRecord, RecordError> {
        let mut r = Reader::new(buf);
        let frame = r.uvarint()?;
        if frame != FRAME_VERSION {
            return Err(RecordError::UnknownFrameVersion(frame));
        }
        let api_key = r.uvarint()?;
        let version = r.uvarint()?;
        let max_version = match api_key {
            0 => 3,
            3 | 5 | 17 => 2,
            1 | 2 | 4 | 7 | 8 | 9 | 11 | 12 | 15 | 20 | 22 => 0,
            18 | 19 => 0,
            other => return Err(RecordError::UnknownApiKey(other)),
        };
        if version > max_version {
            return Err(RecordError::UnsupportedVersion {
                // Bounded by the match above.
                api_key: u16::try_from(api_key).unwrap_or(u16::MAX),
                version,
            });
        }
        let record = super::codec::read_body(&mut r, api_key, version)?;
        if r.remaining() != 0 {
            return Err(RecordError::TrailingBytes(r.remaining()));
        }
        Ok(record)
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
