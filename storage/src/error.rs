//! The one error type of the log engine.

use std::io;
use std::path::PathBuf;

use wharf_protocol::batch::BatchError;

/// Everything that can go wrong in `wharf-storage`.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system call failed; `context` says which and on what.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. "writing 00000000000000000000.log".
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A batch handed to `append` is not a valid v2 batch.
    #[error("invalid record batch: {0}")]
    CorruptBatch(#[from] BatchError),
    /// An append carries a batch with no records, which cannot take offsets.
    #[error("record batch at byte {position} of the append holds no records")]
    EmptyBatch {
        /// Byte position of the batch in the appended buffer.
        position: usize,
    },
    /// An append holds no batches at all.
    #[error("append holds no record batches")]
    EmptyAppend,
    /// The requested offset is not in the log.
    #[error("offset {requested} is out of range: the log holds offsets {log_start}..{log_end}")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: i64,
        /// First offset in the log.
        log_start: i64,
        /// Offset the next append will get.
        log_end: i64,
    },
    /// A batch is larger than the log's batch limit (max.message.bytes), or
    /// a whole append larger than a segment may be.
    #[error("{size} bytes of records exceed the limit of {max} bytes")]
    BatchTooLarge {
        /// Bytes in the append.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A record without a key was appended to a log that requires keys
    /// (a compacted topic's).
    #[error("{} of a batch {} no key, which a compacted log requires", records_named(indexes), if indexes.len() == 1 { "has" } else { "have" })]
    KeylessRecords {
        /// Each keyless record's index within its batch (its offset delta).
        indexes: Vec<i32>,
    },
    /// Assigning offsets would overflow i64.
    #[error("offset overflow: cannot assign {count} offsets after {log_end}")]
    OffsetOverflow {
        /// The log end offset.
        log_end: i64,
        /// Records being appended.
        count: u64,
    },
    /// An idempotent producer's batch does not follow its previous one (a
    /// gap), or a new epoch does not start at sequence 0.
    #[error("out of order sequence {sequence} from producer {producer_id}: expected {expected}")]
    OutOfOrderSequence {
        /// The producer id of the batch.
        producer_id: i64,
        /// The batch's first sequence.
        sequence: i32,
        /// The sequence the log expected.
        expected: i32,
    },
    /// A batch carries an older epoch than the producer id's current one
    /// (a fenced, zombie producer).
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        /// The producer id of the batch.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The epoch the log knows.
        current: i16,
    },
    /// Bytes already on disk are not what the log wrote (found while reading,
    /// outside recovery, which repairs instead).
    #[error("corrupt segment {path} at byte {position}: {reason}")]
    CorruptSegment {
        /// The segment file.
        path: PathBuf,
        /// Byte position in the file.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// A compaction pass was stopped (the broker is shutting down).
    #[error("compaction cancelled")]
    Cancelled,
    /// The log refuses writes since an earlier write-side I/O failure; it
    /// accepts them again once reopened (see `Log::take_offline`).
    #[error(
        "log {dir} is offline after a failed write ({reason}); restart the broker to recover it"
    )]
    LogOffline {
        /// The log's directory.
        dir: PathBuf,
        /// The failure that took it offline.
        reason: String,
    },
    /// A replicated append starts below the log end: the follower holds
    /// those offsets already (it must truncate first).
    #[error("replicated batch at offset {base_offset} starts below the log end offset {log_end}")]
    ReplicaBelowLogEnd {
        /// The first batch's base offset.
        base_offset: i64,
        /// The log end offset.
        log_end: i64,
    },
    /// A batch of a replicated append does not start after the one before
    /// it, or its offsets are out of range.
    #[error("replicated batch at byte {position} has base offset {base_offset}, below {previous_end} or out of range")]
    ReplicaOffsetsNotIncreasing {
        /// Byte position of the batch in the appended buffer.
        position: usize,
        /// Its base offset.
        base_offset: i64,
        /// The offset it had to start at or after.
        previous_end: i64,
    },
    /// A write to a partition replica that does not lead it: a follower's
    /// log takes only its leader's batches.
    #[error("this replica does not lead the partition")]
    NotLeader,
    /// Raft log entries appended out of order: each must follow the last.
    #[error("Raft log append out of order: expected index {expected}, got {got}")]
    QuorumLogGap {
        /// The index the next entry must have.
        expected: u64,
        /// The index it had.
        got: u64,
    },
}

impl StorageError {
    /// Whether this is a failed write to a full disk (ENOSPC, or EDQUOT for
    /// a full quota), which may pass once space is freed.
    pub fn is_disk_full(&self) -> bool {
        // ENOSPC is 28 and EDQUOT 122 on Linux.
        matches!(self, StorageError::Io { source, .. } if matches!(source.raw_os_error(), Some(28 | 122)))
    }

    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> StorageError {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand for `Result<T, StorageError>`.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// "record 3" or "records 0, 2, 5".
fn records_named(indexes: &[i32]) -> String {
    let list: Vec<String> = indexes.iter().map(i32::to_string).collect();
    match list.len() {
        1 => format!("record {}", list.join("")),
        _ => format!("records {}", list.join(", ")),
    }
}
