//! The broker's errors and the one place they become Kafka error codes.

use std::path::{Path, PathBuf};

use kafka_protocol::ResponseError;
use wharf_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("number of partitions must be at least 1, got {0}")]
    InvalidPartitions(i32),
    #[error("replication factor must be at least 1 (or -1 for the default), got {0}")]
    InvalidReplicationFactor(i32),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// A creation past `--max-partitions`; the message says by how much.
    #[error("{0}")]
    PartitionLimit(String),
    #[error("data directory {0} is in use by another broker")]
    DataDirInUse(PathBuf),
    #[error("{0}")]
    InconsistentDataDir(String),
    #[error("{context} ({path}): {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Storage {
        context: String,
        source: StorageError,
    },
    /// The controller refused or could not make a metadata change.
    #[error("{1}")]
    Controller(ResponseError, String),
    /// Another broker could not be reached or refused a request.
    #[error("{0}")]
    Peer(String),
}

impl BrokerError {
    pub fn io(context: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The Kafka error a client should see for this error.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            Self::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            Self::InvalidTopic(_) => ResponseError::InvalidTopicException,
            Self::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            Self::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            Self::InvalidConfig(_) => ResponseError::InvalidConfig,
            Self::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            Self::PartitionLimit(_) => ResponseError::PolicyViolation,
            Self::Controller(code, _) => *code,
            Self::Peer(_) => ResponseError::CoordinatorNotAvailable,
            Self::Storage { source, .. } => storage_error_code(source),
            Self::DataDirInUse(_) | Self::InconsistentDataDir(_) | Self::Io { .. } => {
                ResponseError::KafkaStorageError
            }
        }
    }
}

/// The Kafka error for a failed log operation.
pub fn storage_error_code(err: &StorageError) -> ResponseError {
    match err {
        StorageError::CorruptBatch(_)
        | StorageError::EmptyBatch { .. }
        | StorageError::EmptyAppend => ResponseError::CorruptMessage,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::KeylessRecords { .. } => ResponseError::InvalidRecord,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::NotLeader => ResponseError::NotLeaderOrFollower,
        _ => ResponseError::KafkaStorageError,
    }
}
