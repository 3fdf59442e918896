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

/// An index file and its entries, which strictly increase.
///
/// No file handle is kept: with thousands of partitions, three open files
/// per segment would exhaust the process's descriptors. Appended entries are
/// written in groups of [`WRITE_EVERY`] (the file opened for that one
/// write), and the rest on the next sync. An index that lags its segment is
/// still correct: recovery rebuilds the last segment's index, and a closed
/// segment's shorter index only means a longer scan.
#[derive(Debug)]
pub(crate) struct EntryFile<E> {
    /// Where the file lives.
    pub(super) path: PathBuf,
    /// Every entry, in file order.
    pub(super) entries: Vec<E>,
    /// How many leading entries the file holds.
    persisted: usize,
}

/// Appended entries are written to the file once this many are pending.
const WRITE_EVERY: usize = 64;

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

    /// The file at `path` as holding `entries` (already read and checked by
    /// the caller).
    pub(super) fn open(path: &Path, entries: Vec<E>) -> Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            persisted: entries.len(),
            entries,
        })
    }

    /// Writes a fresh file holding `entries`, replacing any at `path`.
    pub(crate) fn create(path: &Path, entries: Vec<E>) -> Result<Self> {
        replace_contents(path, &encode_all(&entries))
            .map_err(|e| StorageError::io(format!("writing {} {}", E::KIND, path.display()), e))?;
        Ok(Self {
            path: path.to_path_buf(),
            persisted: entries.len(),
            entries,
        })
    }

    /// Appends one entry. One that does not follow the last is skipped:
    /// ordering is never broken, and a missing entry only costs a longer scan.
    pub(crate) fn append(&mut self, entry: E) -> Result<()> {
        if self.entries.last().is_some_and(|last| !entry.follows(last)) {
            return Ok(());
        }
        self.entries.push(entry);
        if self.entries.len().saturating_sub(self.persisted) >= WRITE_EVERY {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Writes the entries the file does not hold yet; returns the file, open.
    fn write_pending(&mut self) -> Result<File> {
        let file = open_rw(&self.path, false)?;
        let pending = self.entries.get(self.persisted..).unwrap_or_default();
        if !pending.is_empty() {
            let at = (self.persisted as u64).saturating_mul(E::LEN as u64);
            let bytes = encode_all(pending);
            io::write_all_at(FailPoint::IndexWrite, &file, &self.path, &bytes, at).map_err(
                |e| {
                    StorageError::io(
                        format!("appending to {} {}", E::KIND, self.path.display()),
                        e,
                    )
                },
            )?;
            self.persisted = self.entries.len();
        }
        Ok(file)
    }

    /// Writes the entries the file does not hold yet.
    pub(crate) fn persist(&mut self) -> Result<()> {
        if self.persisted < self.entries.len() {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Keeps the first `keep` entries.
    pub(super) fn truncate(&mut self, keep: usize) -> Result<()> {
        self.entries.truncate(keep);
        if keep >= self.persisted {
            return Ok(());
        }
        self.persisted = keep;
        let len = (keep as u64).saturating_mul(E::LEN as u64);
        let file = open_rw(&self.path, false)?;
        io::set_len(&file, &self.path, len).map_err(|e| {
            StorageError::io(format!("truncating {} {}", E::KIND, self.path.display()), e)
        })
    }

    /// Replaces every entry (after a truncation rescanned the segment).
    pub(crate) fn reset(&mut self, entries: Vec<E>) -> Result<()> {
        replace_contents(&self.path, &encode_all(&entries)).map_err(|e| {
            StorageError::io(format!("rewriting {} {}", E::KIND, self.path.display()), e)
        })?;
        self.persisted = entries.len();
        self.entries = entries;
        Ok(())
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Writes pending entries and returns a handle of the file, for an fsync
    /// without the segment.
    pub(crate) fn sync_handle(&mut self) -> Result<(File, PathBuf)> {
        Ok((self.write_pending()?, self.path.clone()))
    }

    /// Writes pending entries and fsyncs the file.
    pub(crate) fn sync(&mut self) -> Result<()> {
        let file = self.write_pending()?;
        io::sync_data(&file, &self.path).map_err(|e| {
            StorageError::io(format!("syncing {} {}", E::KIND, self.path.display()), e)
        })
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[E] {
        &self.entries
    }
}

/// Makes the file at `path` hold exactly `bytes`. A file that already does
/// is left alone: that is the common case when recovery rewrites the last
/// segment's indexes on start, and skipping it matters because ext4 starts a
/// synchronous writeback when a file truncated to zero and rewritten is
/// closed (about a millisecond per file, seconds for 10,000 partitions).
/// Otherwise the file is truncated and written, so a crash in between
/// leaves it short (rebuilt on open), never mixing new entries and old.
fn replace_contents(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let file = io::open_rw(path, true)?;
    io::write_all_at(FailPoint::IndexWrite, &file, path, bytes, 0)
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
