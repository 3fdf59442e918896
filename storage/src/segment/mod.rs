//! One segment: a `.log` file of batches and its sparse offset index.
//!
//! Reads use positioned I/O (`pread`) on a shared `&File`, so any number of
//! readers can work while holding only a shared reference; appends need
//! `&mut`.
//!
//! No segment owns a file handle. The active segment's read-write handle
//! lives in the process-wide bounded [`write_pool`]: it stays open while the
//! partition is written and closes when the partition has been idle long
//! enough for others to take its slot; the next append reopens it. Reads
//! use that handle while it is open, and otherwise borrow a read-only one
//! from the bounded [`file_cache`]. The rare write to a closed segment (a
//! truncation that makes it active again, a pending fsync) reopens it
//! through the write pool, and lets it go afterwards.

mod entry_file;
pub(crate) mod file_cache;
mod index;
mod time_index;
mod tracker;
pub(crate) mod write_pool;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;
use wharf_protocol::batch::{self, BatchHeader, HEADER_LEN};

use crate::error::{Result, StorageError};
use crate::format::{self, IndexEntry, TimeEntry};
use crate::io::{self, FailPoint};
pub(crate) use entry_file::open_rw;
use index::OffsetIndex;
use time_index::TimeIndex;
pub(crate) use tracker::BatchTracker;
use write_pool::{PooledFile, WriteSlot};

/// A batch appended to a segment: where it starts in the appended buffer, and its header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlacedBatch {
    /// Byte position within the appended buffer.
    pub(crate) start: usize,
    /// Header after offsets were assigned.
    pub(crate) header: BatchHeader,
}

/// An open segment.
#[derive(Debug)]
pub(crate) struct Segment {
    /// First offset this segment may hold; also its file name.
    base_offset: i64,
    /// Path of the `.log` file, for messages and deletion.
    log_path: PathBuf,
    /// Whether the segment has left the active slot: it then holds a write
    /// handle only while a flush or truncation needs it.
    closed: bool,
    /// Key of this segment's handles in [`file_cache`] and [`write_pool`].
    cache_id: u64,
    /// The write handle, while the write pool holds it open.
    write: WriteSlot,
    /// Bytes of whole batches in the file; appends go here.
    size: u64,
    /// Sparse offset index.
    index: OffsetIndex,
    /// Sparse time index.
    time_index: TimeIndex,
    /// When the segment was created (or, for one found on disk, last
    /// modified), in ms since the epoch: segment.ms rolls count from here.
    created_ms: i64,
    /// Index spacing and the batch with the largest timestamp.
    tracker: BatchTracker,
    /// Written to since the last fsync. Kept here, not with the handle: a
    /// write handle closed by the pool leaves the segment dirty, and the
    /// next flush reopens the file to fsync it.
    dirty: bool,
}

impl Segment {
    /// Creates an empty segment at `base_offset`, replacing stale files of that name.
    pub(crate) fn create(dir: &Path, base_offset: i64, index_interval: u64) -> Result<Segment> {
        let log_path = format::log_path(dir, base_offset);
        let file = open_rw(&log_path, true)?;
        let index = OffsetIndex::create(&format::index_path(dir, base_offset), Vec::new())?;
        let time_index = TimeIndex::create(&format::time_index_path(dir, base_offset), Vec::new())?;
        let cache_id = file_cache::next_id();
        let mut write = WriteSlot::default();
        write.set(cache_id, file);
        Ok(Segment {
            base_offset,
            log_path,
            closed: false,
            cache_id,
            write,
            size: 0,
            index,
            time_index,
            created_ms: now_ms(),
            tracker: BatchTracker::new(base_offset, index_interval),
            dirty: true,
        })
    }

    /// Opens an existing segment whose bytes are trusted (not the last one).
    /// Scans its batch headers, and rebuilds the index from that scan when
    /// the index file is missing or implausible.
    pub(crate) fn open(dir: &Path, base_offset: i64, index_interval: u64) -> Result<Segment> {
        let log_path = format::log_path(dir, base_offset);
        let file = open_rw(&log_path, false)?;
        let size = file_len(&file, &log_path)?;
        let (tracker, entries, time_entries, scanned) =
            scan_headers(&file, &log_path, base_offset, size, index_interval)?;
        if scanned < size {
            warn!(
                path = %log_path.display(),
                position = scanned,
                "unreadable batch in a closed segment; reads stop there"
            );
        }
        let index_path = format::index_path(dir, base_offset);
        let index = match OffsetIndex::load(&index_path, size)? {
            Some(index) => index,
            None => {
                warn!(path = %index_path.display(), "offset index missing or corrupt; rebuilding");
                OffsetIndex::create(&index_path, entries)?
            }
        };
        let time_path = format::time_index_path(dir, base_offset);
        let time_index = match TimeIndex::load(&time_path, &time_entries)? {
            Some(index) => index,
            None => {
                warn!(path = %time_path.display(), "time index missing or corrupt; rebuilding");
                TimeIndex::create(&time_path, time_entries)?
            }
        };
        let created_ms = modified_ms(&file).unwrap_or_else(now_ms);
        // A closed segment keeps no handle: reads open one through the cache.
        drop(file);
        Ok(Segment {
            base_offset,
            log_path,
            closed: true,
            cache_id: file_cache::next_id(),
            write: WriteSlot::default(),
            size,
            index,
            time_index,
            created_ms,
            tracker,
            dirty: false,
        })
    }

    /// Wraps a file recovery has validated up to `size`, writing a fresh index.
    pub(crate) fn from_recovered(
        dir: &Path,
        base_offset: i64,
        file: File,
        size: u64,
        entries: Vec<IndexEntry>,
        time_entries: Vec<TimeEntry>,
        tracker: BatchTracker,
    ) -> Result<Segment> {
        let index = OffsetIndex::create(&format::index_path(dir, base_offset), entries)?;
        let time_index =
            TimeIndex::create(&format::time_index_path(dir, base_offset), time_entries)?;
        let created_ms = modified_ms(&file).unwrap_or_else(now_ms);
        let cache_id = file_cache::next_id();
        let mut write = WriteSlot::default();
        write.set(cache_id, file);
        Ok(Segment {
            base_offset,
            log_path: format::log_path(dir, base_offset),
            closed: false,
            cache_id,
            write,
            size,
            index,
            time_index,
            created_ms,
            tracker,
            dirty: true,
        })
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Position of the last index entry (0 without one): a batch starts there.
    pub(crate) fn last_indexed_position(&self) -> u64 {
        self.index.last().map_or(0, |e| u64::from(e.position))
    }

    /// Writes `bytes` (whole batches, offsets assigned) at the end of the
    /// file and indexes them. On failure the segment is cut back to where it
    /// was, so memory and disk stay in step; the failure says whether that
    /// rollback worked.
    pub(crate) fn append(
        &mut self,
        bytes: &[u8],
        batches: &[PlacedBatch],
    ) -> Result<(), AppendFailure> {
        let start = self.size;
        let tracker = self.tracker.clone();
        let Err(error) = self.write_and_index(start, bytes, batches) else {
            return Ok(());
        };
        let rollback = self.truncate_to(start);
        self.tracker = tracker;
        if let Err(e) = &rollback {
            warn!(path = %self.log_path.display(), "rolling back a failed append failed: {e}");
        }
        Err(AppendFailure {
            error,
            rolled_back: rollback.is_ok(),
        })
    }

    fn write_and_index(&mut self, start: u64, bytes: &[u8], batches: &[PlacedBatch]) -> Result<()> {
        self.dirty = true;
        let file = self.writable()?;
        io::write_all_at(FailPoint::SegmentWrite, &file, &self.log_path, bytes, start)
            .map_err(|e| StorageError::io(format!("writing {}", self.log_path.display()), e))?;
        self.size = start.saturating_add(bytes.len() as u64);
        for placed in batches {
            let position = start.saturating_add(placed.start as u64);
            let (entry, time) = self.tracker.observe(position, &placed.header);
            if let Some(entry) = entry {
                self.index.append(entry)?;
            }
            if let Some(time) = time {
                self.time_index.append(time)?;
            }
        }
        Ok(())
    }

    /// Largest batch maxTimestamp and the position of the first batch carrying it.
    pub(crate) fn max_timestamp(&self) -> Option<(i64, u64)> {
        self.tracker.max_timestamp()
    }

    /// The header of the batch at byte `position`, `None` at the end of the segment.
    pub(crate) fn header_at(&self, position: u64) -> Result<Option<BatchHeader>> {
        if position >= self.size {
            return Ok(None);
        }
        let want = (self.size - position).min(HEADER_LEN as u64) as usize;
        let buf = self.read_exact(position, want)?;
        let header = BatchHeader::parse(&buf).map_err(|e| self.corrupt(position, e))?;
        if position.saturating_add(header.total_len() as u64) > self.size {
            return Err(self.corrupt(position, "batch runs past the end of the segment"));
        }
        Ok(Some(header))
    }

    /// Headers of the batches from byte `position` to the end, with their positions.
    pub(crate) fn headers_from(&self, position: u64) -> Headers<'_> {
        Headers {
            segment: self,
            position,
            failed: false,
        }
    }

    /// Where a search for the first record with a timestamp >= `timestamp`
    /// may start: the batch the time index names, or the segment's start.
    pub(crate) fn timestamp_search_start(&self, timestamp: i64) -> Result<u64> {
        let Some(entry) = self.time_index.floor(timestamp) else {
            return Ok(0);
        };
        let offset = self
            .base_offset
            .saturating_add(i64::from(entry.relative_offset));
        Ok(self.find_batch(offset)?.map_or(0, |(position, _)| position))
    }

    /// Whether either index has reached `max_bytes` (segment.index.bytes).
    pub(crate) fn index_full(&self, max_bytes: u64) -> bool {
        let offset_bytes = (self.index.len() as u64).saturating_mul(format::INDEX_ENTRY_LEN as u64);
        let time_bytes =
            (self.time_index.len() as u64).saturating_mul(format::TIME_ENTRY_LEN as u64);
        offset_bytes.saturating_add(format::INDEX_ENTRY_LEN as u64) > max_bytes
            || time_bytes.saturating_add(format::TIME_ENTRY_LEN as u64) > max_bytes
    }

    /// When the segment was created, in ms since the epoch.
    pub(crate) fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// Position and header of the first batch whose last offset is >= `offset`.
    pub(crate) fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let relative =
            u32::try_from(offset.saturating_sub(self.base_offset).max(0)).unwrap_or(u32::MAX);
        let start = self
            .index
            .floor(relative)
            .map_or(0, |e| u64::from(e.position));
        for item in self.headers_from(start) {
            let (position, header) = item?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
        }
        Ok(None)
    }

    /// Whole batches from `position` (where `first` starts), at most `max_bytes`
    /// in total, or just `first` if it alone is larger and `min_one` is set.
    pub(crate) fn read_batches(
        &self,
        position: u64,
        first: &BatchHeader,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Vec<u8>> {
        let first_len = first.total_len();
        if first_len > max_bytes {
            return if min_one {
                self.read_exact(position, first_len)
            } else {
                Ok(Vec::new())
            };
        }
        let available = self.size.saturating_sub(position);
        let window = usize::try_from(available)
            .unwrap_or(usize::MAX)
            .min(max_bytes);
        let mut buf = self.read_exact(position, window)?;
        let mut batches = batch::batches(&buf);
        while let Some(Ok(_)) = batches.next() {}
        let end = batches.position();
        buf.truncate(end);
        Ok(buf)
    }

    /// Reads `len` bytes at `position`.
    pub(crate) fn read_exact(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let context = || {
            format!(
                "reading {len} bytes at {position} of {}",
                self.log_path.display()
            )
        };
        let file = self
            .readable()
            .map_err(|e| StorageError::io(context(), e))?;
        file.read_exact_at(&mut buf, position)
            .map_err(|e| StorageError::io(context(), e))?;
        Ok(buf)
    }

    /// A handle to read the `.log` file: the write handle while the pool
    /// holds it open, else a read-only one from the read cache.
    fn readable(&self) -> std::io::Result<ReadHandle> {
        match self.write.open() {
            Some(file) => Ok(ReadHandle::Write(file)),
            None => file_cache::get(self.cache_id, &self.log_path).map(ReadHandle::Read),
        }
    }

    /// The write handle, reopened (through the I/O seam) if the pool had
    /// closed it.
    fn writable(&mut self) -> Result<Arc<PooledFile>> {
        let (file, opened) = self
            .write
            .get(self.cache_id, &self.log_path, io::reopen_rw)
            .map_err(|e| StorageError::io(format!("opening {}", self.log_path.display()), e))?;
        if opened {
            // Reads use the write handle now; a cached one would only take a slot.
            file_cache::forget(self.cache_id);
        }
        Ok(file)
    }

    /// Marks the segment as no longer the active one and closes its write
    /// handle, even with writes not yet fsynced: without `flush.messages` or
    /// `flush.ms` nothing may ever fsync them, and the handle would stay
    /// open for good. The next flush reopens the file to fsync it (see
    /// [`file_cache`] on why no write-back error is lost), then closes it
    /// again.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.write.release(self.cache_id);
    }

    /// Makes a closed segment the active one again (a truncation removed
    /// the segments after it): its appends go through the write pool again.
    pub(crate) fn reactivate(&mut self) {
        self.closed = false;
    }

    /// Closes the write handle a closed segment reopened, once nothing is
    /// left to fsync.
    fn release_if_idle(&mut self) {
        if self.closed && !self.dirty {
            self.write.release(self.cache_id);
        }
    }

    /// Cuts the segment at byte `size` (a batch boundary) and drops index entries past it.
    pub(crate) fn truncate_to(&mut self, size: u64) -> Result<()> {
        let file = self.writable()?;
        io::set_len(&file, &self.log_path, size)
            .map_err(|e| StorageError::io(format!("truncating {}", self.log_path.display()), e))?;
        self.size = size;
        self.index.truncate_to_position(size)?;
        let file = self
            .readable()
            .map_err(|e| StorageError::io(format!("reopening {}", self.log_path.display()), e))?;
        let (tracker, _, time_entries, _) = scan_headers(
            &file,
            &self.log_path,
            self.base_offset,
            size,
            self.tracker.interval(),
        )?;
        self.tracker = tracker;
        self.time_index.reset(time_entries)?;
        self.dirty = true;
        Ok(())
    }

    /// fsyncs the data and index files if written since the last flush.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.dirty {
            let file = self.writable()?;
            io::sync_data(&file, &self.log_path)
                .map_err(|e| StorageError::io(format!("syncing {}", self.log_path.display()), e))?;
            self.index.sync()?;
            self.time_index.sync()?;
            self.dirty = false;
            self.release_if_idle();
        }
        Ok(())
    }

    /// Writes index entries still held only in memory (not fsynced).
    pub(crate) fn persist_indexes(&mut self) -> Result<()> {
        self.index.persist()?;
        self.time_index.persist()
    }

    /// Handles of the files to fsync, if written since the last flush; the
    /// segment then counts as flushed. (The `.log` handle is shared with the
    /// write pool, and stays valid if the pool closes its copy meanwhile.)
    pub(crate) fn take_sync_handles(&mut self) -> Result<Vec<(Arc<PooledFile>, PathBuf)>> {
        if !self.dirty {
            return Ok(Vec::new());
        }
        let log = (self.writable()?, self.log_path.clone());
        let (index, index_path) = self.index.sync_handle()?;
        let (time, time_path) = self.time_index.sync_handle()?;
        let handles = vec![
            log,
            (PooledFile::unpooled(index), index_path),
            (PooledFile::unpooled(time), time_path),
        ];
        self.dirty = false;
        self.release_if_idle();
        Ok(handles)
    }

    /// When the segment file was last written, in milliseconds since the epoch.
    pub(crate) fn last_modified_ms(&self) -> Option<i64> {
        let modified = std::fs::metadata(&self.log_path).ok()?.modified().ok()?;
        system_time_ms(modified)
    }

    /// Removes both files.
    pub(crate) fn delete(self, dir: &Path) -> Result<()> {
        let index_path = format::index_path(dir, self.base_offset);
        let time_path = format::time_index_path(dir, self.base_offset);
        let log_path = self.log_path.clone();
        drop(self);
        for path in [&log_path, &index_path, &time_path] {
            io::remove_file(path)
                .map_err(|e| StorageError::io(format!("removing {}", path.display()), e))?;
        }
        Ok(())
    }

    fn corrupt(&self, position: u64, reason: impl std::fmt::Display) -> StorageError {
        StorageError::CorruptSegment {
            path: self.log_path.clone(),
            position,
            reason: reason.to_string(),
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        file_cache::forget(self.cache_id);
        self.write.release(self.cache_id);
    }
}

/// A handle to read a segment's `.log` file; see [`Segment::readable`].
enum ReadHandle {
    /// The segment's pooled write handle.
    Write(Arc<PooledFile>),
    /// A cached read handle, valid as long as this lives even if evicted.
    Read(Arc<File>),
}

impl std::ops::Deref for ReadHandle {
    type Target = File;

    fn deref(&self) -> &File {
        match self {
            ReadHandle::Write(file) => file,
            ReadHandle::Read(file) => file,
        }
    }
}

/// A failed [`Segment::append`].
#[derive(Debug)]
pub(crate) struct AppendFailure {
    /// What went wrong.
    pub(crate) error: StorageError,
    /// Whether the segment was cut back to its size before the append, so
    /// nothing of the failed write remains on disk or in the indexes.
    pub(crate) rolled_back: bool,
}

/// Iterator over `(position, header)` of a segment's batches; see [`Segment::headers_from`].
pub(crate) struct Headers<'a> {
    segment: &'a Segment,
    position: u64,
    failed: bool,
}

impl Iterator for Headers<'_> {
    type Item = Result<(u64, BatchHeader)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.segment.header_at(self.position) {
            Ok(None) => None,
            Ok(Some(header)) => {
                let position = self.position;
                self.position = position.saturating_add(header.total_len() as u64);
                Some(Ok((position, header)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When `file` was last modified, in ms since the epoch.
fn modified_ms(file: &File) -> Option<i64> {
    system_time_ms(file.metadata().ok()?.modified().ok()?)
}

/// A file time in ms since the epoch.
fn system_time_ms(time: std::time::SystemTime) -> Option<i64> {
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

/// Length of an open file.
pub(crate) fn file_len(file: &File, path: &Path) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| StorageError::io(format!("reading metadata of {}", path.display()), e))
}

/// Scans the batch headers of a trusted segment file of `size` bytes.
/// Returns the tracker after the last batch, the offset and time index
/// entries it produced, and where the scan stopped (`size` unless a header
/// was unreadable).
fn scan_headers(
    file: &File,
    path: &Path,
    base_offset: i64,
    size: u64,
    index_interval: u64,
) -> Result<(BatchTracker, Vec<IndexEntry>, Vec<TimeEntry>, u64)> {
    let mut tracker = BatchTracker::new(base_offset, index_interval);
    let mut entries = Vec::new();
    let mut time_entries = Vec::new();
    let mut position = 0u64;
    while position < size {
        let want = (size - position).min(HEADER_LEN as u64) as usize;
        let mut buf = vec![0u8; want];
        file.read_exact_at(&mut buf, position)
            .map_err(|e| StorageError::io(format!("scanning {}", path.display()), e))?;
        let Ok(header) = BatchHeader::parse(&buf) else {
            break;
        };
        let (entry, time) = tracker.observe(position, &header);
        entries.extend(entry);
        time_entries.extend(time);
        position = position.saturating_add(header.total_len() as u64);
    }
    Ok((tracker, entries, time_entries, position.min(size)))
}
