//! The process-wide, bounded pool of segments' write handles.
//!
//! The pool owns every active segment's read-write `.log` handle (and those
//! of closed segments reopened for an fsync or a truncation). A segment
//! keeps only a weak reference to its handle: while the pool holds the
//! handle, the segment's appends upgrade that reference and write, taking
//! no lock; once the pool has closed it, the next append asks the pool to
//! reopen the file. So a partition being written keeps its descriptor, and
//! one left idle loses it when others need the slot.
//!
//! Eviction follows the clock (second-chance) approximation of least
//! recently used: each use sets the handle's `referenced` bit; when the pool
//! is full it walks its handles oldest first, clearing set bits and
//! sending those handles round again, and closes the first one found clear.
//! A hit costs an atomic upgrade and a relaxed load, no lock: this is on
//! every append.
//!
//! Closing an evicted handle loses nothing: the segment, not the handle,
//! remembers that it was written since its last fsync, and its next flush
//! reopens the file to fsync it. fsync covers the file's dirty pages
//! whichever descriptor wrote them, and Linux reports a write-back error
//! not yet seen to a descriptor opened after it happened, so the reopened
//! handle's fsync still fails when the data did not reach the disk.
//!
//! A handle evicted while a write or fsync is under way on it stays valid:
//! that call holds a strong reference, and the descriptor closes when it
//! drops it.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

/// Capacity until [`set_max_open_active_segment_files`] is called.
pub const DEFAULT_MAX_OPEN_ACTIVE_SEGMENT_FILES: usize = 1024;

static POOL: LazyLock<WritePool> =
    LazyLock::new(|| WritePool::new(DEFAULT_MAX_OPEN_ACTIVE_SEGMENT_FILES));

/// Sets how many segments' `.log` files may be open for writing at once,
/// process wide (at least 1): about one per recently written partition.
/// Surplus handles close at once.
pub fn set_max_open_active_segment_files(max: usize) {
    POOL.set_capacity(max);
}

/// The pool's capacity; see [`set_max_open_active_segment_files`].
pub fn max_open_active_segment_files() -> usize {
    POOL.capacity()
}

/// How many `.log` files the pool holds open for writing now.
pub fn open_active_segment_files() -> usize {
    POOL.len()
}

/// An open file and whether it was used since the clock hand last passed.
#[derive(Debug)]
pub(crate) struct PooledFile {
    file: File,
    referenced: AtomicBool,
}

impl PooledFile {
    /// A handle outside any pool (an index file to fsync).
    pub(crate) fn unpooled(file: File) -> Arc<PooledFile> {
        Arc::new(PooledFile {
            file,
            referenced: AtomicBool::new(false),
        })
    }

    fn mark_used(&self) {
        // Skips the store (and the cache-line write) when already set.
        if !self.referenced.load(Ordering::Relaxed) {
            self.referenced.store(true, Ordering::Relaxed);
        }
    }
}

impl Deref for PooledFile {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

/// A segment's link to its pooled handle.
#[derive(Debug, Default)]
pub(crate) struct WriteSlot {
    handle: Weak<PooledFile>,
}

impl WriteSlot {
    /// The handle, if the pool still holds it open.
    pub(crate) fn open(&self) -> Option<Arc<PooledFile>> {
        let handle = self.handle.upgrade()?;
        handle.mark_used();
        Some(handle)
    }

    /// The handle, reopening `path` (through `open`) if the pool closed it;
    /// says whether it opened one.
    pub(crate) fn get(
        &mut self,
        id: u64,
        path: &Path,
        open: impl FnOnce(&Path) -> std::io::Result<File>,
    ) -> std::io::Result<(Arc<PooledFile>, bool)> {
        if let Some(handle) = self.open() {
            return Ok((handle, false));
        }
        let handle = POOL.insert(id, open(path)?);
        self.handle = Arc::downgrade(&handle);
        Ok((handle, true))
    }

    /// Puts a freshly created or recovered file in the pool as this slot's.
    pub(crate) fn set(&mut self, id: u64, file: File) {
        self.handle = Arc::downgrade(&POOL.insert(id, file));
    }

    /// Closes the handle (the pool's copy; a call under way keeps its own).
    pub(crate) fn release(&mut self, id: u64) {
        POOL.remove(id);
        self.handle = Weak::new();
    }
}

/// The handles, and the clock order they are evicted in.
#[derive(Debug)]
struct WritePool {
    capacity: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The handles, by segment id: the only strong references at rest.
    files: HashMap<u64, Arc<PooledFile>>,
    /// Segment ids, oldest first; ids no longer in `files` are skipped.
    clock: VecDeque<u64>,
}

impl Inner {
    /// Closes handles, by the clock, until at most `keep` remain.
    fn evict_to(&mut self, keep: usize) {
        while self.files.len() > keep {
            let Some(id) = self.clock.pop_front() else {
                break;
            };
            let Some(handle) = self.files.get(&id) else {
                continue; // removed since
            };
            if handle.referenced.swap(false, Ordering::Relaxed) {
                self.clock.push_back(id);
            } else {
                self.files.remove(&id);
            }
        }
        // Ids of removed handles pile up when removals outpace evictions.
        if self.clock.len() > self.files.len().saturating_mul(2).saturating_add(64) {
            let files = &self.files;
            self.clock.retain(|id| files.contains_key(id));
        }
    }
}

impl WritePool {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: AtomicUsize::new(capacity.max(1)),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update is a few infallible collection operations: the
        // state is consistent whatever a panicking holder was doing.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    fn set_capacity(&self, max: usize) {
        let max = max.max(1);
        self.capacity.store(max, Ordering::Relaxed);
        self.lock().evict_to(max);
    }

    fn len(&self) -> usize {
        self.lock().files.len()
    }

    /// Pools `file` under `id` (replacing any handle there), closing
    /// another if the pool is full. The new handle counts as used.
    fn insert(&self, id: u64, file: File) -> Arc<PooledFile> {
        let handle = Arc::new(PooledFile {
            file,
            referenced: AtomicBool::new(true),
        });
        let mut inner = self.lock();
        if inner.files.remove(&id).is_none() {
            inner.evict_to(self.capacity().saturating_sub(1));
        }
        inner.files.insert(id, Arc::clone(&handle));
        inner.clock.push_back(id);
        handle
    }

    fn remove(&self, id: u64) {
        self.lock().files.remove(&id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use super::*;

    fn file(dir: &Path, i: usize) -> File {
        let path = dir.join(format!("{i}.log"));
        let mut f = File::create(&path).unwrap();
        write!(f, "file number {i:04}").unwrap();
        File::open(path).unwrap()
    }

    fn held(pool: &WritePool) -> Vec<u64> {
        let mut ids: Vec<u64> = pool.lock().files.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn holds_at_most_capacity_and_gives_used_handles_a_second_chance() {
        let dir = tempfile::tempdir().unwrap();
        let pool = WritePool::new(3);
        let handles: Vec<Weak<PooledFile>> = (0..3)
            .map(|i| Arc::downgrade(&pool.insert(i, file(dir.path(), i as usize))))
            .collect();
        // A full pass clears every bit; then only 0 is used again.
        pool.lock().evict_to(3);
        for h in &handles {
            h.upgrade()
                .unwrap()
                .referenced
                .store(false, Ordering::Relaxed);
        }
        handles[0].upgrade().unwrap().mark_used();
        pool.insert(3, file(dir.path(), 3));
        assert_eq!(held(&pool), vec![0, 2, 3]);
        assert!(handles[1].upgrade().is_none(), "evicted handle is closed");
    }

    #[test]
    fn a_handle_in_use_stays_valid_after_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let pool = WritePool::new(1);
        let in_use = pool.insert(0, file(dir.path(), 0));
        in_use.referenced.store(false, Ordering::Relaxed);
        pool.insert(1, file(dir.path(), 1));
        assert_eq!(held(&pool), vec![1]);
        let mut buf = [0u8; 16];
        in_use.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"file number 0000");
    }

    #[test]
    fn removal_and_lower_capacity_close_handles_and_the_clock_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let pool = WritePool::new(4);
        for i in 0..4 {
            pool.insert(i, file(dir.path(), i as usize));
        }
        pool.set_capacity(2);
        assert_eq!(pool.len(), 2);
        for round in 0..1_000u64 {
            let id = 100 + round;
            pool.insert(id, file(dir.path(), 0));
            pool.remove(id);
        }
        assert!(pool.lock().clock.len() <= 2 * 2 + 64 + 1);
        assert!(pool.len() <= 2);
    }

    #[test]
    fn a_slot_reopens_its_file_after_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("5.log");
        drop(file(dir.path(), 5));
        let mut slot = WriteSlot::default();
        let id = u64::MAX - 7;
        let (_, opened) = slot.get(id, &path, |p| File::open(p)).unwrap();
        assert!(opened);
        let (_, opened) = slot.get(id, &path, |p| File::open(p)).unwrap();
        assert!(!opened, "still pooled: no reopen");
        slot.release(id);
        assert!(slot.open().is_none());
        let (again, opened) = slot.get(id, &path, |p| File::open(p)).unwrap();
        assert!(opened);
        let mut buf = [0u8; 16];
        again.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"file number 0005");
        slot.release(id);
    }
}
