//! Producer-state snapshots (`<offset>.snapshot`, layout in
//! [`crate::format::encode_producer_snapshot`]): the idempotent producers'
//! state as of an offset, so that opening a log scans only the batches
//! after the latest snapshot instead of every batch of every segment.
//!
//! A snapshot is written when a segment rolls (as of the new segment's base
//! offset) and when the log is closed (as of its end), atomically through
//! [`crate::io::replace_file`]; the newest [`SNAPSHOTS_KEPT`] are kept.
//! Snapshots above the log end are deleted when the log is truncated (or
//! recovered shorter after a crash): they describe batches no longer there.
//! A snapshot that cannot be read or decoded is ignored (an older one, or a
//! full scan, is used instead).

use std::fs;
use std::path::Path;

use tracing::warn;

use crate::error::{Result, StorageError};
use crate::format;
use crate::producer_state::{ProducerEntry, ProducerStates};

/// How many snapshots a log keeps.
pub(crate) const SNAPSHOTS_KEPT: usize = 3;

/// Offsets of the snapshots in `dir`, ascending.
pub(crate) fn list(dir: &Path) -> Result<Vec<i64>> {
    let listing_error = |e| StorageError::io(format!("listing {}", dir.display()), e);
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir).map_err(listing_error)? {
        let entry = entry.map_err(listing_error)?;
        if let Some(offset) = entry
            .file_name()
            .to_str()
            .and_then(format::parse_snapshot_name)
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes the snapshot of `states` as of `offset`, then deletes all but
/// the newest [`SNAPSHOTS_KEPT`].
pub(crate) fn write(dir: &Path, offset: i64, states: &ProducerStates) -> Result<()> {
    let mut producers: Vec<(i64, &ProducerEntry)> = states.iter().collect();
    producers.sort_unstable_by_key(|(id, _)| *id);
    let path = format::snapshot_path(dir, offset);
    crate::io::replace_file(&path, &format::encode_producer_snapshot(offset, &producers))
        .map_err(|e| StorageError::io(format!("writing {}", path.display()), e))?;
    let offsets = list(dir)?;
    let excess = offsets.len().saturating_sub(SNAPSHOTS_KEPT);
    for old in offsets.iter().take(excess) {
        remove(dir, *old)?;
    }
    Ok(())
}

/// Deletes the snapshots above `offset` (they describe batches that are
/// gone), durably: the directory is fsynced before anything can be
/// appended in those batches' place.
pub(crate) fn delete_above(dir: &Path, offset: i64) -> Result<()> {
    let mut any = false;
    for stale in list(dir)?.into_iter().filter(|o| *o > offset) {
        remove(dir, stale)?;
        any = true;
    }
    if any {
        crate::io::sync_dir(dir)
            .map_err(|e| StorageError::io(format!("syncing {}", dir.display()), e))?;
    }
    Ok(())
}

fn remove(dir: &Path, offset: i64) -> Result<()> {
    let path = format::snapshot_path(dir, offset);
    crate::io::remove_file(&path)
        .map_err(|e| StorageError::io(format!("removing {}", path.display()), e))
}

/// The producers of the snapshot at `offset`, or `None` (with a warning)
/// when it cannot be read or is corrupt.
pub(crate) fn load(dir: &Path, offset: i64) -> Option<Vec<(i64, ProducerEntry)>> {
    let path = format::snapshot_path(dir, offset);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            warn!(path = %path.display(), "ignoring an unreadable producer-state snapshot: {e}");
            return None;
        }
    };
    match format::decode_producer_snapshot(&bytes) {
        Some((named, producers)) if named == offset => Some(producers),
        _ => {
            warn!(path = %path.display(), "ignoring a corrupt producer-state snapshot");
            None
        }
    }
}

impl crate::log::Log {
    /// Writes a producer-state snapshot as of the log end. A failure only
    /// costs a longer scan on the next open, so it is logged, not returned.
    pub(crate) fn write_producer_snapshot(&self) {
        if self.snapshots_stopped {
            return;
        }
        // Nothing was appended since the snapshot at this offset was written
        // (a restart with no new data, or a roll and a close at the same
        // offset): rewriting it would cost fsyncs and change nothing.
        if format::snapshot_path(&self.dir, self.next_offset).exists() {
            return;
        }
        if let Err(e) = write(&self.dir, self.next_offset, &self.producers) {
            warn!(dir = %self.dir.display(), "producer-state snapshot not written: {e}");
        }
    }

    /// Deletes every snapshot and writes none until the log is reopened, so
    /// that the next open scans every segment: called when a `.txnindex`
    /// append failed (an open from a snapshot trusts the indexes of the
    /// segments it skips).
    pub(crate) fn stop_producer_snapshots(&mut self) {
        self.snapshots_stopped = true;
        if let Err(e) = delete_above(&self.dir, i64::MIN) {
            warn!(dir = %self.dir.display(), "producer-state snapshots not deleted: {e}");
        }
    }

    /// Flushes the log and writes a producer-state snapshot as of its end,
    /// so the next open need not scan its batches: for a clean shutdown.
    pub fn close(&mut self) -> Result<()> {
        self.flush()?;
        self.write_producer_snapshot();
        Ok(())
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
