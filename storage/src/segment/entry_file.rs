//! A file of fixed-width index entries, mirrored in memory as a sorted
//! vector: what the offset index and the time index have in common. Each
//! index adds its own loading checks and lookups.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::format::{IndexEntry, TimeEntry, INDEX_ENTRY_LEN, TIME_ENTRY_LEN};
use crate::io::{self, FailPoint};

/// An entry kind stored in an [`EntryFile`]; the byte layout is `format`'s.
pub(crate) trait IndexRecord: Copy + PartialEq {
    /// Bytes per entry on disk.
    const LEN: usize;
    /// What the file is called in error messages.
    const KIND: &'static str;
    type Encoded: AsRef<[u8]>;
    fn encode(self) -> Self::Encoded;
    fn decode_all(bytes: &[u8]) -> Option<Vec<Self>>;
    /// Whether `self` may follow `last`: both keys strictly increase.
    fn follows(&self, last: &Self) -> bool;
}

impl IndexRecord for IndexEntry {
    const LEN: usize = INDEX_ENTRY_LEN;
    const KIND: &'static str = "index";
    type Encoded = [u8; INDEX_ENTRY_LEN];
    fn encode(self) -> Self::Encoded {
        IndexEntry::encode(self)
    }
    fn decode_all(bytes: &[u8]) -> Option<Vec<Self>> {
        IndexEntry::decode_all(bytes)
    }
    fn follows(&self, last: &Self) -> bool {
        self.relative_offset > last.relative_offset && self.position > last.position
    }
}

impl IndexRecord for TimeEntry {
    const LEN: usize = TIME_ENTRY_LEN;
    const KIND: &'static str = "time index";
    type Encoded = [u8; TIME_ENTRY_LEN];
    fn encode(self) -> Self::Encoded {
        TimeEntry::encode(self)
    }
    fn decode_all(bytes: &[u8]) -> Option<Vec<Self>> {
        TimeEntry::decode_all(bytes)
    }
    fn follows(&self, last: &Self) -> bool {
        self.timestamp > last.timestamp && self.relative_offset > last.relative_offset
    }
}

/// An open index file and its entries, which strictly increase.
#[derive(Debug)]
pub(crate) struct EntryFile<E> {
    /// Where the file lives, for error messages.
    pub(super) path: PathBuf,
    /// The open file; entries are appended with positioned writes.
    file: File,
    /// Every entry, in file order.
    pub(super) entries: Vec<E>,
}

impl<E: IndexRecord> EntryFile<E> {
    /// The entries stored at `path`; `None` when the file is missing or is
    /// not a whole number of well-formed entries.
    pub(super) fn read(path: &Path) -> Result<Option<Vec<E>>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(E::decode_all(&bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(
                format!("reading {} {}", E::KIND, path.display()),
                e,
            )),
        }
    }

    /// Opens the file at `path` as holding `entries` (already read and
    /// checked by the caller).
    pub(super) fn open(path: &Path, entries: Vec<E>) -> Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            file: open_rw(path, false)?,
            entries,
        })
    }

    /// Writes a fresh file holding `entries`, replacing any at `path`.
    pub(crate) fn create(path: &Path, entries: Vec<E>) -> Result<Self> {
        let file = open_rw(path, true)?;
        io::write_all_at(FailPoint::IndexWrite, &file, path, &encode_all(&entries), 0)
            .map_err(|e| StorageError::io(format!("writing {} {}", E::KIND, path.display()), e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    /// Appends one entry. One that does not follow the last is skipped:
    /// ordering is never broken, and a missing entry only costs a longer scan.
    pub(crate) fn append(&mut self, entry: E) -> Result<()> {
        if self.entries.last().is_some_and(|last| !entry.follows(last)) {
            return Ok(());
        }
        let at = (self.entries.len() as u64).saturating_mul(E::LEN as u64);
        let bytes = entry.encode();
        io::write_all_at(
            FailPoint::IndexWrite,
            &self.file,
            &self.path,
            bytes.as_ref(),
            at,
        )
        .map_err(|e| {
            StorageError::io(
                format!("appending to {} {}", E::KIND, self.path.display()),
                e,
            )
        })?;
        self.entries.push(entry);
        Ok(())
    }

    /// Keeps the first `keep` entries.
    pub(super) fn truncate(&mut self, keep: usize) -> Result<()> {
        self.entries.truncate(keep);
        let len = (keep as u64).saturating_mul(E::LEN as u64);
        io::set_len(&self.file, &self.path, len).map_err(|e| {
            StorageError::io(format!("truncating {} {}", E::KIND, self.path.display()), e)
        })
    }

    /// Replaces every entry (after a truncation rescanned the segment).
    pub(crate) fn reset(&mut self, entries: Vec<E>) -> Result<()> {
        io::set_len(&self.file, &self.path, 0)
            .and_then(|()| {
                let bytes = encode_all(&entries);
                io::write_all_at(FailPoint::IndexWrite, &self.file, &self.path, &bytes, 0)
            })
            .map_err(|e| {
                StorageError::io(format!("rewriting {} {}", E::KIND, self.path.display()), e)
            })?;
        self.entries = entries;
        Ok(())
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

    /// fsyncs the file.
    pub(crate) fn sync(&self) -> Result<()> {
        io::sync_data(&self.file, &self.path).map_err(|e| {
            StorageError::io(format!("syncing {} {}", E::KIND, self.path.display()), e)
        })
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[E] {
        &self.entries
    }
}

fn encode_all<E: IndexRecord>(entries: &[E]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len().saturating_mul(E::LEN));
    for e in entries {
        bytes.extend_from_slice(e.encode().as_ref());
    }
    bytes
}

/// Opens a file for positioned reads and writes, creating it; `truncate` empties it.
pub(crate) fn open_rw(path: &Path, truncate: bool) -> Result<File> {
    io::open_rw(path, truncate)
        .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))
}
