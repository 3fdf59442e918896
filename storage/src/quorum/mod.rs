//! The metadata quorum's files: the Raft log, the vote, and snapshots of
//! the metadata image, in a partition-like directory
//! `<data dir>/__cluster_metadata-0/`.
//!
//! Plain types only: this crate knows neither the Raft library nor the
//! metadata records. A log entry carries a term, the id of the leader that
//! wrote it and an index, and a payload that is blank (a new leader's first
//! entry), a membership (the voters and their addresses), or a list of
//! opaque byte strings (encoded metadata records). The broker adapts these
//! to its Raft library.
//!
//! # Files
//!
//! | file | what | written |
//! | --- | --- | --- |
//! | `<20-digit index>.raftlog` | log entries from that index on | appended, fsynced per append; rolled past a size |
//! | `raft-log-start` | the id of the last purged entry | replaced atomically before segments are removed |
//! | `raft-vote` | the vote (term, node, committed) | two slots overwritten in turn, fsynced (see `vote`) |
//! | `raft-committed` | the last committed log id (a hint for restart) | replaced atomically, not fsynced |
//! | `raft-snapshot` | the current snapshot: its last log id, membership and records | replaced atomically and durably |
//! | `quorum.properties` | cluster id, node id and voters of this directory | once, at first start |
//!
//! A log entry's frame is `length u32, CRC-32C u32, body` (see `codec`).
//! Recovery reads the segments in order; in the last one, a frame cut short
//! or failing its CRC ends the log there and the file is cut back (a torn
//! tail); damage in an earlier segment is reported as corruption. Sealed
//! files (vote slots, snapshot, log start, committed) carry a magic, a
//! version, a length and a CRC; a damaged one is an error, except a vote
//! slot while the other slot is valid, and the committed hint, which is then
//! ignored.
//!
//! Writes go through [`crate::io`], so the fail points cover them:
//! `quorum-log-write` and `quorum-log-sync` (its fsyncs and its
//! directory's) for the log, `segment-create`, `truncate` and `remove` for
//! its segments, `aux-write`, `aux-sync`, `rename` and `dir-sync` for the
//! sealed files.

mod codec;
mod files;
mod log;
#[cfg(test)]
mod log_tests;
mod vote;

pub use codec::{decode_record_list, encode_record_list};
pub use files::{
    read_committed, read_quorum_properties, read_snapshot, write_committed,
    write_quorum_properties, write_snapshot, QuorumProperties,
};
pub use log::{QuorumLog, DEFAULT_SEGMENT_BYTES};
pub use vote::VoteFile;

use std::path::Path;

use crate::error::{Result, StorageError};

/// The directory name of the metadata log, as Kafka names it.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// Identifies a log entry: the term and node id of the leader that wrote it,
/// and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct QuorumLogId {
    /// The leader's term (Kafka's epoch).
    pub term: u64,
    /// The leader's node id.
    pub node_id: u64,
    /// Position in the log, from 0.
    pub index: u64,
}

/// A vote: the term, the node voted for (or leading), and whether a quorum
/// granted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuorumVote {
    /// The term.
    pub term: u64,
    /// The candidate or leader.
    pub node_id: u64,
    /// Whether a quorum granted it (the node is leader of `term`).
    pub committed: bool,
}

/// A membership: the voter sets (two during a joint change) and every
/// node's address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumMembership {
    /// Voter sets, each a list of node ids.
    pub configs: Vec<Vec<u64>>,
    /// Node id and `host:port` of every node.
    pub nodes: Vec<(u64, String)>,
}

/// What a log entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumPayload {
    /// Nothing (a new leader's first entry).
    Blank,
    /// Encoded metadata records, applied in order.
    Records(Vec<Vec<u8>>),
    /// A membership change.
    Membership(QuorumMembership),
}

/// One Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumEntry {
    /// Its id.
    pub log_id: QuorumLogId,
    /// Its payload.
    pub payload: QuorumPayload,
}

/// A snapshot of the state machine as of `last_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSnapshot {
    /// The last entry the snapshot includes.
    pub last_log: Option<QuorumLogId>,
    /// The entry that set `membership`.
    pub membership_log: Option<QuorumLogId>,
    /// The membership in force at `last_log`.
    pub membership: QuorumMembership,
    /// An id naming this snapshot.
    pub id: String,
    /// The state, as [`encode_record_list`] encodes the image's records.
    pub data: Vec<u8>,
}

/// The quorum's directory, opened: its log and its vote file.
#[derive(Debug)]
pub struct QuorumDir {
    /// The Raft log, recovered.
    pub log: QuorumLog,
    /// The vote file, with the vote it holds.
    pub vote: VoteFile,
}

impl QuorumDir {
    /// Opens (creating) the quorum directory `dir`: recovers the log, reads
    /// the vote, and at first start (`first_start` given) writes
    /// `quorum.properties`. A fresh directory gets its first log segment
    /// and its vote file at once, and one directory fsync makes every file
    /// created durable, so that a first start costs few fsyncs.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        first_start: Option<&QuorumProperties>,
    ) -> Result<QuorumDir> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
        let (log, log_created) = QuorumLog::open_unsynced(dir, segment_bytes)?;
        let (vote, vote_created) = VoteFile::open_unsynced(dir)?;
        match first_start {
            // Its rename is followed by a directory fsync, which covers the
            // files created above too.
            Some(props) => write_quorum_properties(dir, props)?,
            None if log_created || vote_created => crate::io::sync_dir(dir)
                .map_err(|e| StorageError::io(format!("syncing {}", dir.display()), e))?,
            None => {}
        }
        Ok(QuorumDir { log, vote })
    }
}
