//! The Raft log: segment files of entry frames, with every live entry also
//! held in memory.
//!
//! The metadata log is small (snapshots purge it), so reads are served from
//! memory and the files exist for durability and recovery. An append writes
//! its frames to the active segment and fsyncs before returning; a segment
//! past `segment_bytes` is closed and the next append opens a new one, named
//! after its first index, so that a purge removes whole files.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};

use super::codec::{
    decode_entry, encode_entry, seal, unseal, Frame, Reader, Writer, ENTRY_HEADER, MAX_ENTRY_BYTES,
};
use super::files::{corrupt, read_optional};
use super::{QuorumEntry, QuorumLogId};
use crate::error::{Result, StorageError};
use crate::io::{self as fio, FailPoint};

/// Segment size past which the next append opens a new segment.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 << 20;

const SEGMENT_SUFFIX: &str = ".raftlog";
const LOG_START_FILE: &str = "raft-log-start";
const LOG_START_MAGIC: &[u8; 4] = b"WQLS";

/// One segment file.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Open for positioned writes at `len`.
    file: File,
    /// Bytes of valid frames in the file.
    len: u64,
}

/// An entry in memory and where its frame starts on disk.
#[derive(Debug)]
struct Stored {
    entry: QuorumEntry,
    /// Base index of the segment holding it.
    segment: u64,
    /// Byte position of its frame in that segment.
    position: u64,
}

/// The Raft log of one node.
#[derive(Debug)]
pub struct QuorumLog {
    dir: PathBuf,
    segment_bytes: u64,
    /// Segments by base index (the index of their first entry).
    segments: BTreeMap<u64, Segment>,
    /// Live entries (after the purge point) by index.
    entries: BTreeMap<u64, Stored>,
    /// The last purged entry: everything up to it is gone (or in a snapshot).
    purged: Option<QuorumLogId>,
}

fn segment_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StorageError {
    StorageError::io(format!("{what} {}", path.display()), e)
}

impl QuorumLog {
    /// Opens (creating) the log in `dir`, recovering it: frames cut short or
    /// failing their CRC at the end of the last segment are cut off.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<QuorumLog> {
        let (log, created) = QuorumLog::open_unsynced(dir, segment_bytes)?;
        if created {
            fio::sync_quorum_dir(dir).map_err(|e| io_err("syncing", dir, e))?;
        }
        Ok(log)
    }

    /// [`Self::open`], but a fresh log's first segment is created without
    /// a directory fsync; returns whether it was, and the caller must fsync
    /// the directory (see `QuorumDir::open`).
    pub(crate) fn open_unsynced(dir: &Path, segment_bytes: u64) -> Result<(QuorumLog, bool)> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
        let purged = read_log_start(dir)?;
        let mut bases = Vec::new();
        let listing = std::fs::read_dir(dir).map_err(|e| io_err("listing", dir, e))?;
        for item in listing {
            let item = item.map_err(|e| io_err("listing", dir, e))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = name.strip_suffix(SEGMENT_SUFFIX) {
                match base.parse::<u64>() {
                    Ok(base) => bases.push(base),
                    Err(_) => tracing::warn!(
                        file = name,
                        "ignoring a file that is not a Raft log segment"
                    ),
                }
            }
        }
        bases.sort_unstable();
        let mut log = QuorumLog {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(1),
            segments: BTreeMap::new(),
            entries: BTreeMap::new(),
            purged,
        };
        let last_base = bases.last().copied();
        let mut prev: Option<u64> = None;
        for base in bases {
            log.recover_segment(base, Some(base) == last_base, &mut prev)?;
        }
        let fresh = log.segments.is_empty() && log.purged.is_none();
        if fresh {
            let path = log.dir.join(segment_name(0));
            let file = fio::open_rw(&path, true).map_err(|e| io_err("creating", &path, e))?;
            log.segments.insert(0, Segment { path, file, len: 0 });
        }
        Ok((log, fresh))
    }

    fn recover_segment(&mut self, base: u64, is_last: bool, prev: &mut Option<u64>) -> Result<()> {
        let path = self.dir.join(segment_name(base));
        let bytes = std::fs::read(&path).map_err(|e| io_err("reading", &path, e))?;
        let mut position = 0usize;
        let purged_index = self.purged.map(|p| p.index);
        while let Some(rest) = bytes.get(position..).filter(|r| !r.is_empty()) {
            let (entry, len) = match decode_entry(rest) {
                Frame::Entry(entry, len) => (entry, len),
                Frame::Short | Frame::Invalid(_) if is_last => {
                    let reason = match decode_entry(rest) {
                        Frame::Invalid(r) => r,
                        _ => "frame cut short",
                    };
                    tracing::warn!(
                        path = %path.display(), position, reason,
                        "cutting a torn tail off the Raft log"
                    );
                    break;
                }
                Frame::Short => return Err(corrupt_at(&path, position, "frame cut short")),
                Frame::Invalid(r) => return Err(corrupt_at(&path, position, r)),
            };
            let index = entry.log_id.index;
            let expected = match *prev {
                Some(p) => Some(p.saturating_add(1)),
                None if position == 0 => Some(base),
                None => None,
            };
            if expected.is_some_and(|e| e != index) {
                return Err(corrupt_at(
                    &path,
                    position,
                    &format!("entry index {index} does not follow the previous entry"),
                ));
            }
            *prev = Some(index);
            if purged_index.is_none_or(|p| index > p) {
                self.entries.insert(
                    index,
                    Stored {
                        entry,
                        segment: base,
                        position: position as u64,
                    },
                );
            }
            position += len;
        }
        let file = fio::open_rw(&path, false).map_err(|e| io_err("opening", &path, e))?;
        if position < bytes.len() {
            fio::set_len(&file, &path, position as u64)
                .and_then(|_| fio::sync_quorum_log(&file, &path))
                .map_err(|e| io_err("cutting the torn tail of", &path, e))?;
        }
        self.segments.insert(
            base,
            Segment {
                path,
                file,
                len: position as u64,
            },
        );
        Ok(())
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last purged entry's id.
    pub fn last_purged(&self) -> Option<QuorumLogId> {
        self.purged
    }

    /// The last entry's id, or the purge point if the log holds none.
    pub fn last_log_id(&self) -> Option<QuorumLogId> {
        self.entries
            .last_key_value()
            .map(|(_, s)| s.entry.log_id)
            .or(self.purged)
    }

    /// The entries with an index in `range`, in order.
    pub fn entries(&self, range: impl RangeBounds<u64>) -> Vec<QuorumEntry> {
        self.entries
            .range(range)
            .map(|(_, s)| s.entry.clone())
            .collect()
    }

    /// Bytes in the segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.len).sum()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Appends `entries` (consecutive indexes, following the last entry) and
    /// fsyncs. On failure nothing is appended: the bytes written are cut
    /// off again (as far as the disk allows) and the error returned.
    pub fn append(&mut self, entries: &[QuorumEntry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut expected = first.log_id.index;
        if let Some((last, _)) = self.entries.last_key_value() {
            if expected != last.saturating_add(1) {
                return Err(StorageError::QuorumLogGap {
                    expected: last.saturating_add(1),
                    got: expected,
                });
            }
        }
        for e in entries {
            if e.log_id.index != expected {
                return Err(StorageError::QuorumLogGap {
                    expected,
                    got: e.log_id.index,
                });
            }
            expected = expected.saturating_add(1);
        }
        let base = self.active_segment_for(first.log_id.index)?;
        let Some(segment) = self.segments.get_mut(&base) else {
            return Err(corrupt(&self.dir, "active segment missing"));
        };
        let mut buf = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for e in entries {
            let start = buf.len();
            positions.push(segment.len + start as u64);
            encode_entry(e, &mut buf);
            // Recovery treats a longer frame as garbage: refuse to write one.
            let size = (buf.len() - start - ENTRY_HEADER) as u64;
            if size > u64::from(MAX_ENTRY_BYTES) {
                return Err(StorageError::BatchTooLarge {
                    size,
                    max: u64::from(MAX_ENTRY_BYTES),
                });
            }
        }
        let written = fio::write_all_at(
            FailPoint::QuorumLogWrite,
            &segment.file,
            &segment.path,
            &buf,
            segment.len,
        )
        .and_then(|_| fio::sync_quorum_log(&segment.file, &segment.path));
        if let Err(e) = written {
            if let Err(undo) = fio::set_len(&segment.file, &segment.path, segment.len) {
                tracing::error!(path = %segment.path.display(), error = %undo,
                    "could not cut back a failed Raft log append; recovery will cut it");
            }
            return Err(io_err("appending to", &segment.path, e));
        }
        segment.len += buf.len() as u64;
        for (e, position) in entries.iter().zip(positions) {
            self.entries.insert(
                e.log_id.index,
                Stored {
                    entry: e.clone(),
                    segment: base,
                    position,
                },
            );
        }
        Ok(())
    }

    /// The base of the segment the next append (starting at `index`) goes to,
    /// opening a new segment when there is none or the active one is full.
    fn active_segment_for(&mut self, index: u64) -> Result<u64> {
        if let Some((&base, segment)) = self.segments.last_key_value() {
            if segment.len == 0 && base != index {
                // An empty segment named for another index (left by a truncation
                // or purge): replace it with one named for this append.
                let path = segment.path.clone();
                self.segments.remove(&base);
                fio::remove_file(&path).map_err(|e| io_err("removing", &path, e))?;
            } else if segment.len < self.segment_bytes || segment.len == 0 {
                return Ok(base);
            }
        }
        let path = self.dir.join(segment_name(index));
        let file = fio::open_rw(&path, true).map_err(|e| io_err("creating", &path, e))?;
        fio::sync_quorum_dir(&self.dir).map_err(|e| io_err("syncing", &self.dir, e))?;
        self.segments.insert(index, Segment { path, file, len: 0 });
        Ok(index)
    }

    /// Removes every entry with an index at or after `from` (a conflicting
    /// suffix). Later segments go first, so a crash part way leaves a prefix.
    pub fn truncate(&mut self, from: u64) -> Result<()> {
        let Some(stored) = self.entries.range(from..).next().map(|(_, s)| s) else {
            return Ok(());
        };
        let (cut_segment, cut_position) = (stored.segment, stored.position);
        let later: Vec<u64> = self
            .segments
            .range(cut_segment.saturating_add(1)..)
            .map(|(b, _)| *b)
            .rev()
            .collect();
        for base in later {
            if let Some(segment) = self.segments.remove(&base) {
                fio::remove_file(&segment.path)
                    .map_err(|e| io_err("removing", &segment.path, e))?;
            }
        }
        if let Some(segment) = self.segments.get_mut(&cut_segment) {
            fio::set_len(&segment.file, &segment.path, cut_position)
                .and_then(|_| fio::sync_quorum_log(&segment.file, &segment.path))
                .map_err(|e| io_err("truncating", &segment.path, e))?;
            segment.len = cut_position;
        }
        self.entries.split_off(&from);
        Ok(())
    }

    /// Drops every entry up to and including `upto` (covered by a snapshot).
    /// The purge point is made durable first; then the segments holding only
    /// purged entries are removed.
    pub fn purge(&mut self, upto: QuorumLogId) -> Result<()> {
        if self.purged.is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        write_log_start(&self.dir, &upto)?;
        self.purged = Some(upto);
        self.entries = self.entries.split_off(&upto.index.saturating_add(1));
        let keep_from = upto.index.saturating_add(1);
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        for (i, base) in bases.iter().enumerate() {
            let fully_purged = match bases.get(i + 1) {
                Some(next) => *next <= keep_from,
                None => !self.entries.values().any(|s| s.segment == *base),
            };
            if fully_purged {
                if let Some(segment) = self.segments.remove(base) {
                    fio::remove_file(&segment.path)
                        .map_err(|e| io_err("removing", &segment.path, e))?;
                }
            }
        }
        Ok(())
    }
}

fn corrupt_at(path: &Path, position: usize, reason: &str) -> StorageError {
    StorageError::CorruptSegment {
        path: path.to_path_buf(),
        position: position as u64,
        reason: reason.to_string(),
    }
}

fn write_log_start(dir: &Path, purged: &QuorumLogId) -> Result<()> {
    let mut w = Writer::default();
    w.log_id(purged);
    let path = dir.join(LOG_START_FILE);
    fio::replace_file(&path, &seal(LOG_START_MAGIC, &w.buf))
        .map_err(|e| io_err("writing", &path, e))
}

fn read_log_start(dir: &Path) -> Result<Option<QuorumLogId>> {
    let path = dir.join(LOG_START_FILE);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    let body = unseal(LOG_START_MAGIC, &bytes).map_err(|r| corrupt(&path, r))?;
    Reader::new(body)
        .log_id()
        .map(Some)
        .ok_or_else(|| corrupt(&path, "malformed log start"))
}
