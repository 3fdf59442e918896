//! The sparse time index of one segment (`.timeindex`): max timestamp so
//! far to relative offset, in [`TimeEntry`] records. Lookups by timestamp
//! start scanning at the batch it names instead of the segment's start. The
//! file mechanics are [`EntryFile`]'s; this adds the loading check and the
//! lookup.

use std::path::Path;

use super::entry_file::EntryFile;
use crate::error::Result;
use crate::format::TimeEntry;

/// An open time index; timestamps and relative offsets strictly increase.
pub(crate) type TimeIndex = EntryFile<TimeEntry>;

impl EntryFile<TimeEntry> {
    /// Reads the time index at `path`. `Ok(None)` when the file is missing,
    /// or is not a plausible index for a segment whose batches were scanned
    /// to produce `expected` (the caller rebuilds it from those).
    pub(crate) fn load(path: &Path, expected: &[TimeEntry]) -> Result<Option<TimeIndex>> {
        let Some(entries) = Self::read(path)? else {
            return Ok(None);
        };
        // Entries follow from the batches alone, so a sound index equals the
        // one a scan produces; anything else is stale or corrupt.
        if entries != expected {
            return Ok(None);
        }
        Self::open(path, entries).map(Some)
    }

    /// The last entry whose timestamp is <= `timestamp`: every batch before
    /// the one it names has a smaller max timestamp.
    pub(crate) fn floor(&self, timestamp: i64) -> Option<TimeEntry> {
        let n = self.entries.partition_point(|e| e.timestamp <= timestamp);
        n.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
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
