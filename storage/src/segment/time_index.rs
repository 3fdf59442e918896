//! The sparse time index of one segment: in memory as a sorted vector, on
//! disk as [`TimeEntry`] records appended to the `.timeindex` file. Lookups
//! by timestamp start scanning at the batch it names instead of the
//! segment's start.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::index::open_rw;
use crate::error::{Result, StorageError};
use crate::format::{TimeEntry, TIME_ENTRY_LEN};

/// An open time index.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    /// Where the index lives, for error messages.
    path: PathBuf,
    /// The open file; entries are appended with positioned writes.
    file: File,
    /// Every entry, timestamps and relative offsets strictly increasing.
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Reads the time index at `path`. `Ok(None)` when the file is missing,
    /// or is not a plausible index for a segment whose batches were scanned
    /// to produce `expected` (the caller rebuilds it from those).
    pub(crate) fn load(path: &Path, expected: &[TimeEntry]) -> Result<Option<TimeIndex>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StorageError::io(
                    format!("reading time index {}", path.display()),
                    e,
                ))
            }
        };
        let Some(entries) = TimeEntry::decode_all(&bytes) else {
            return Ok(None);
        };
        // Entries follow from the batches alone, so a sound index equals the
        // one a scan produces; anything else is stale or corrupt.
        if entries != expected {
            return Ok(None);
        }
        let file = open_rw(path, false)?;
        Ok(Some(TimeIndex {
            path: path.to_path_buf(),
            file,
            entries,
        }))
    }

    /// Writes a fresh index holding `entries`, replacing any file at `path`.
    pub(crate) fn create(path: &Path, entries: Vec<TimeEntry>) -> Result<TimeIndex> {
        let file = open_rw(path, true)?;
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        file.write_all_at(&bytes, 0)
            .map_err(|e| StorageError::io(format!("writing time index {}", path.display()), e))?;
        Ok(TimeIndex {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    /// Appends one entry; it must be beyond the last in timestamp and offset.
    pub(crate) fn append(&mut self, entry: TimeEntry) -> Result<()> {
        if let Some(last) = self.entries.last() {
            if entry.timestamp <= last.timestamp || entry.relative_offset <= last.relative_offset {
                return Ok(());
            }
        }
        let at = (self.entries.len() as u64).saturating_mul(TIME_ENTRY_LEN as u64);
        self.file.write_all_at(&entry.encode(), at).map_err(|e| {
            StorageError::io(
                format!("appending to time index {}", self.path.display()),
                e,
            )
        })?;
        self.entries.push(entry);
        Ok(())
    }

    /// The last entry whose timestamp is <= `timestamp`: every batch before
    /// the one it names has a smaller max timestamp.
    pub(crate) fn floor(&self, timestamp: i64) -> Option<TimeEntry> {
        let n = self.entries.partition_point(|e| e.timestamp <= timestamp);
        n.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Replaces the entries (after a truncation rescanned the segment).
    pub(crate) fn reset(&mut self, entries: Vec<TimeEntry>) -> Result<()> {
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(&bytes, 0))
            .map_err(|e| {
                StorageError::io(format!("rewriting time index {}", self.path.display()), e)
            })?;
        self.entries = entries;
        Ok(())
    }

    /// A duplicate handle of the file, for an fsync without the segment.
    pub(crate) fn sync_handle(&self) -> Result<(File, PathBuf)> {
        self.file
            .try_clone()
            .map(|f| (f, self.path.clone()))
            .map_err(|e| StorageError::io(format!("duplicating {}", self.path.display()), e))
    }

    /// fsyncs the index file.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(format!("syncing time index {}", self.path.display()), e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn e(timestamp: i64, relative_offset: u32) -> TimeEntry {
        TimeEntry {
            timestamp,
            relative_offset,
        }
    }

    #[test]
    fn floor_finds_last_entry_at_or_below_and_ordering_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TimeIndex::create(&dir.path().join("t"), vec![]).unwrap();
        index.append(e(100, 0)).unwrap();
        index.append(e(200, 5)).unwrap();
        index.append(e(150, 9)).unwrap(); // not increasing: skipped
        assert_eq!(index.len(), 2);
        assert_eq!(index.floor(99), None);
        assert_eq!(index.floor(100), Some(e(100, 0)));
        assert_eq!(index.floor(199), Some(e(100, 0)));
        assert_eq!(index.floor(5000), Some(e(200, 5)));
    }

    #[test]
    fn load_accepts_only_the_expected_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let entries = vec![e(1, 0), e(7, 3)];
        drop(TimeIndex::create(&path, entries.clone()).unwrap());
        assert!(TimeIndex::load(&path, &entries).unwrap().is_some());
        assert!(TimeIndex::load(&path, &entries[..1]).unwrap().is_none());
        std::fs::write(&path, [0u8; 13]).unwrap();
        assert!(TimeIndex::load(&path, &entries).unwrap().is_none());
        assert!(TimeIndex::load(&dir.path().join("missing"), &entries)
            .unwrap()
            .is_none());
    }
}
