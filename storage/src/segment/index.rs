//! The sparse offset index of one segment: in memory as a sorted vector,
//! on disk as [`IndexEntry`] records appended to the `.index` file.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::format::{IndexEntry, INDEX_ENTRY_LEN};

/// An open offset index.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    /// Where the index lives, for error messages and deletion.
    path: PathBuf,
    /// The open file; entries are appended with positioned writes.
    file: File,
    /// Every entry, relative offsets and positions strictly increasing.
    entries: Vec<IndexEntry>,
}

impl OffsetIndex {
    /// Reads the index at `path` and checks it against a segment of
    /// `segment_size` bytes. `Ok(None)` when the file is missing or its
    /// contents are not a plausible index (the caller rebuilds it).
    pub(crate) fn load(path: &Path, segment_size: u64) -> Result<Option<OffsetIndex>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StorageError::io(
                    format!("reading index {}", path.display()),
                    e,
                ))
            }
        };
        let Some(entries) = IndexEntry::decode_all(&bytes) else {
            return Ok(None);
        };
        let increasing = entries.windows(2).all(|w| match w {
            [a, b] => a.relative_offset < b.relative_offset && a.position < b.position,
            _ => true,
        });
        let in_bounds = entries
            .last()
            .is_none_or(|e| u64::from(e.position) < segment_size);
        if !increasing || !in_bounds {
            return Ok(None);
        }
        let file = open_rw(path, false)?;
        Ok(Some(OffsetIndex {
            path: path.to_path_buf(),
            file,
            entries,
        }))
    }

    /// Writes a fresh index holding `entries`, replacing any file at `path`.
    pub(crate) fn create(path: &Path, entries: Vec<IndexEntry>) -> Result<OffsetIndex> {
        let file = open_rw(path, true)?;
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        file.write_all_at(&bytes, 0)
            .map_err(|e| StorageError::io(format!("writing index {}", path.display()), e))?;
        Ok(OffsetIndex {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    /// Appends one entry; it must be beyond the last one in both offset and position.
    pub(crate) fn append(&mut self, entry: IndexEntry) -> Result<()> {
        if let Some(last) = self.entries.last() {
            if entry.relative_offset <= last.relative_offset || entry.position <= last.position {
                return Ok(()); // never break the ordering; a skipped entry only costs a longer scan
            }
        }
        let at = (self.entries.len() as u64).saturating_mul(INDEX_ENTRY_LEN as u64);
        self.file.write_all_at(&entry.encode(), at).map_err(|e| {
            StorageError::io(format!("appending to index {}", self.path.display()), e)
        })?;
        self.entries.push(entry);
        Ok(())
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
        self.entries.truncate(keep);
        let len = (keep as u64).saturating_mul(INDEX_ENTRY_LEN as u64);
        self.file
            .set_len(len)
            .map_err(|e| StorageError::io(format!("truncating index {}", self.path.display()), e))
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
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
            .map_err(|e| StorageError::io(format!("syncing index {}", self.path.display()), e))
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }
}

/// Opens a file for positioned reads and writes, creating it; `truncate` empties it.
pub(crate) fn open_rw(path: &Path, truncate: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
        .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))
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
    fn appended_entries_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        let mut idx = OffsetIndex::create(&path, Vec::new()).unwrap();
        idx.append(entry(1, 10)).unwrap();
        idx.append(entry(1, 20)).unwrap(); // not increasing: ignored
        idx.append(entry(2, 30)).unwrap();
        let loaded = OffsetIndex::load(&path, 100).unwrap().unwrap();
        assert_eq!(loaded.entries(), &[entry(1, 10), entry(2, 30)]);
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
