//! Wharf's log engine: one directory per partition, holding segments of
//! Kafka v2 record batches exactly as they travel on the wire.
//!
//! It knows batches, offsets and files, and nothing of requests, sockets or
//! topic metadata. All I/O is synchronous `std::fs`; the broker decides which
//! threads call it.
//!
//! - [`log`]: the `Log` type, one partition's log: append, read, truncate, roll, recover.
//! - `log_config`: `LogConfig`, the settings of one log.
//! - [`format`]: every on-disk detail (file names, index entry layout).
//! - `segment`: one `.log` file with its sparse offset index; no segment owns
//!   a file handle: they live in two process-wide bounded pools, one of read
//!   handles (`set_max_open_segment_files`) and one of active segments' write
//!   handles (`set_max_open_active_segment_files`), so an idle partition
//!   holds no descriptor.
//! - [`leader_epoch`]: the leader epoch cache (`leader-epoch-checkpoint`):
//!   where each leader epoch began, for followers' truncation (KIP-101/279).
//! - [`producer_state`]: idempotent producers' epochs and last batches, for deduplication.
//! - `recovery`: opening a directory and repairing a torn tail.
//! - `retention`: deleting expired segments and moving the log start offset.
//! - `compaction`: keeping only each key's latest record in closed segments.
//! - [`io`]: the write-side file operations, with fail points tests arm.
//! - `snapshot`: producer-state snapshots (`.snapshot`), so opening scans only recent batches.
//! - `txn_index`: each segment's aborted-transaction index (`.txnindex`).
//! - [`checkpoint`]: Kafka's offset checkpoint files and their single writer.
//! - [`error`]: the one error type, `StorageError`.
//! - [`quorum`]: the metadata quorum's Raft log, vote and snapshots (`__cluster_metadata-0`).
#![forbid(unsafe_code)]

pub mod checkpoint;
mod compaction;
pub mod error;
pub mod format;
pub mod io;
pub mod leader_epoch;
pub mod log;
mod log_config;
pub mod producer_state;
pub mod quorum;
mod recovery;
mod retention;
mod segment;
mod snapshot;
mod txn_index;

pub use compaction::{CleanedSegments, CompactionOutcome, CompactionPlan, Throttle};
pub use error::StorageError;
pub use leader_epoch::{EpochEntry, LeaderEpochCache};
pub use log::{AppendInfo, Log, LogConfig, PendingSync};
pub use producer_state::{AbortedTxn, ProducerStates};
pub use retention::RetentionOutcome;
pub use segment::file_cache::{
    max_open_segment_files, open_segment_files, set_max_open_segment_files,
    DEFAULT_MAX_OPEN_SEGMENT_FILES,
};
pub use segment::write_pool::{
    max_open_active_segment_files, open_active_segment_files, set_max_open_active_segment_files,
    DEFAULT_MAX_OPEN_ACTIVE_SEGMENT_FILES,
};
