//! The sparse offset index of one segment (`.index`): relative offset to
//! byte position, in [`IndexEntry`] records. The file mechanics are
//! [`EntryFile`]'s; this adds the loading checks and the lookups.

use std::path::Path;

use super::entry_file::{EntryFile, IndexRecord};
use crate::error::Result;
use crate::format::IndexEntry;

/// An open offset index; relative offsets and positions strictly increase.
pub(crate) type OffsetIndex = EntryFile<IndexEntry>;

impl EntryFile<IndexEntry> {
    /// Reads the index at `path` and checks it against a segment of
    /// `segment_size` bytes. `Ok(None)` when the file is missing or its
    /// contents are not a plausible index (the caller rebuilds it).
    pub(crate) fn load(path: &Path, segment_size: u64) -> Result<Option<OffsetIndex>> {
        let Some(entries) = Self::read(path)? else {
            return Ok(None);
        };
        let increasing = entries.windows(2).all(|w| match w {
            [a, b] => b.follows(a),
            _ => true,
        });
        let in_bounds = entries
            .last()
            .is_none_or(|e| u64::from(e.position) < segment_size);
        if !increasing || !in_bounds {
            return Ok(None);
        }
        Self::open(path, entries).map(Some)
    }

    /// The last entry whose relative offset is <= `relative_offset`.
    pub(crate) fn floor(&self, relative_offset: u32) -> Option<IndexEntry> {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        n.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
    }

    /// The last entry, if any.
    pub(crate) fn last(&self) -> Option<IndexEntry> {
        self.entries.last().copied()
    }

    /// Drops entries pointing at or beyond byte `size` of the segment.
    pub(crate) fn truncate_to_position(&mut self, size: u64) -> Result<()> {
        let keep = self
            .entries
            .partition_point(|e| u64::from(e.position) < size);
        self.truncate(keep)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entry(relative_offset: u32, position: u32) -> IndexEntry {
        IndexEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn floor_finds_last_entry_at_or_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        let idx = OffsetIndex::create(&path, vec![entry(10, 100), entry(20, 200)]).unwrap();
        assert_eq!(idx.floor(5), None);
        assert_eq!(idx.floor(10), Some(entry(10, 100)));
        assert_eq!(idx.floor(19), Some(entry(10, 100)));
        assert_eq!(idx.floor(1000), Some(entry(20, 200)));
    }

    #[test]
    fn appended_entries_survive_reload_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        let mut idx = OffsetIndex::create(&path, Vec::new()).unwrap();
        idx.append(entry(1, 10)).unwrap();
        idx.append(entry(1, 20)).unwrap(); // not increasing: ignored
        idx.append(entry(2, 30)).unwrap();
        idx.sync().unwrap();
        let loaded = OffsetIndex::load(&path, 100).unwrap().unwrap();
        assert_eq!(loaded.entries(), &[entry(1, 10), entry(2, 30)]);
    }

    #[test]
    fn unsynced_entries_reach_the_file_in_groups_and_a_lagging_index_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        let mut idx = OffsetIndex::create(&path, Vec::new()).unwrap();
        for i in 1..=100u32 {
            idx.append(entry(i, i * 10)).unwrap();
        }
        // 64 written as a group; the other 36 wait for a sync.
        let loaded = OffsetIndex::load(&path, 10_000).unwrap().unwrap();
        assert_eq!(loaded.entries().len(), 64);
        assert_eq!(loaded.entries(), &idx.entries()[..64]);
        idx.sync().unwrap();
        let loaded = OffsetIndex::load(&path, 10_000).unwrap().unwrap();
        assert_eq!(loaded.entries(), idx.entries());
    }

    #[test]
    fn recreating_an_index_with_the_same_entries_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        let entries = vec![entry(1, 10), entry(2, 30)];
        OffsetIndex::create(&path, entries.clone()).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        OffsetIndex::create(&path, entries.clone()).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified
        );
        OffsetIndex::create(&path, vec![entry(5, 50)]).unwrap();
        let loaded = OffsetIndex::load(&path, 100).unwrap().unwrap();
        assert_eq!(loaded.entries(), &[entry(5, 50)]);
    }

    #[test]
    fn load_rejects_implausible_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        assert!(OffsetIndex::load(&path, 100).unwrap().is_none());
        std::fs::write(&path, [0u8; 7]).unwrap();
        assert!(OffsetIndex::load(&path, 100).unwrap().is_none());
        OffsetIndex::create(&path, vec![entry(2, 20), entry(1, 30)]).unwrap();
        assert!(OffsetIndex::load(&path, 100).unwrap().is_none());
        OffsetIndex::create(&path, vec![entry(1, 200)]).unwrap();
        assert!(OffsetIndex::load(&path, 100).unwrap().is_none());
    }

    #[test]
    fn truncation_drops_entries_past_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        let mut idx =
            OffsetIndex::create(&path, vec![entry(1, 10), entry(2, 20), entry(3, 30)]).unwrap();
        idx.truncate_to_position(20).unwrap();
        assert_eq!(idx.entries(), &[entry(1, 10)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
    }
}
