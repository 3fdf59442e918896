//! The process-wide, bounded pools of segment file handles.
//!
//! Two pools, both least-recently-used maps from a segment's id to an open
//! `.log` file:
//!
//! - the *read* pool holds read-only handles on segments that hold no write
//!   handle: a read asks it for one, which opens the file on a miss and,
//!   when more than the capacity are open, closes the least recently used
//!   ([`set_max_open_segment_files`]);
//! - the *write* pool holds the read-write handles of active segments (and
//!   of closed ones reopened for an fsync or a truncation): an append asks
//!   it for its segment's handle, which stays open while the partition is
//!   written; a partition left idle loses its handle once others have been
//!   written since, and the next append reopens it
//!   ([`set_max_open_active_segment_files`]).
//!
//! So however many partitions and segments there are, segment files take at
//! most the sum of the two capacities in descriptors. (Index files hold none:
//! see `entry_file`.)
//!
//! Closing an evicted write handle loses nothing: the segment, not the
//! handle, remembers that it was written since its last fsync, and its next
//! flush reopens the file to fsync it. fsync covers the file's dirty pages
//! whichever descriptor wrote them, and Linux reports a write-back error not
//! yet seen by anyone to a descriptor opened after it happened, so the
//! reopened handle's fsync still fails when the data did not reach the disk.
//!
//! Handles are `Arc<File>`: evicting one only drops the pool's reference,
//! so a read, write or fsync already under way on it finishes on a valid
//! descriptor, which closes when that call drops its clone. A pool's lock is
//! held only to look up, insert or evict, never across an `open` or any I/O.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

/// Capacity of the read pool until [`set_max_open_segment_files`] is called.
pub const DEFAULT_MAX_OPEN_SEGMENT_FILES: usize = 1024;

/// Capacity of the write pool until [`set_max_open_active_segment_files`]
/// is called.
pub const DEFAULT_MAX_OPEN_ACTIVE_SEGMENT_FILES: usize = 1024;

static READS: LazyLock<FileCache> =
    LazyLock::new(|| FileCache::new(DEFAULT_MAX_OPEN_SEGMENT_FILES, open_read_only));

static WRITES: LazyLock<FileCache> =
    LazyLock::new(|| FileCache::new(DEFAULT_MAX_OPEN_ACTIVE_SEGMENT_FILES, open_read_write));

fn open_read_only(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Reopens a segment for writing through the I/O seam (fail point
/// segment-create), never creating or truncating it.
fn open_read_write(path: &Path) -> std::io::Result<File> {
    crate::io::reopen_rw(path)
}

/// Source of the ids segments are cached under: a file replaced in place
/// (compaction renames over it) gets a new segment and so a new id.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Sets how many closed segments' `.log` files may be open for reading at
/// once, process wide (at least 1). Surplus handles close as reads touch
/// other segments.
pub fn set_max_open_segment_files(max: usize) {
    READS.set_capacity(max);
}

/// The read pool's capacity; see [`set_max_open_segment_files`].
pub fn max_open_segment_files() -> usize {
    READS.capacity()
}

/// How many `.log` files the read pool holds open now (handles evicted but
/// still in use by a read are not counted).
pub fn open_segment_files() -> usize {
    READS.len()
}

/// Sets how many segments' `.log` files may be open for writing at once,
/// process wide (at least 1): one per recently written partition. Surplus
/// handles close at once, the least recently used first.
pub fn set_max_open_active_segment_files(max: usize) {
    WRITES.set_capacity(max);
}

/// The write pool's capacity; see [`set_max_open_active_segment_files`].
pub fn max_open_active_segment_files() -> usize {
    WRITES.capacity()
}

/// How many `.log` files the write pool holds open now.
pub fn open_active_segment_files() -> usize {
    WRITES.len()
}

/// A fresh id for a segment's pool entries.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A read-only handle on `path`, pooled under `id`.
pub(crate) fn get_read(id: u64, path: &Path) -> std::io::Result<Arc<File>> {
    READS.get(id, path).map(|(file, _)| file)
}

/// The write handle pooled under `id`, reopening `path` if it was evicted
/// (the read pool's handle for `id`, if any, is then dropped: reads use the
/// write handle while it lasts).
pub(crate) fn get_write(id: u64, path: &Path) -> std::io::Result<Arc<File>> {
    let (file, opened) = WRITES.get(id, path)?;
    if opened {
        READS.forget(id);
    }
    Ok(file)
}

/// The write handle pooled under `id`, if it is open; never opens one.
pub(crate) fn peek_write(id: u64) -> Option<Arc<File>> {
    WRITES.peek(id)
}

/// Puts a freshly created or recovered segment's write handle in the pool.
pub(crate) fn insert_write(id: u64, file: File) -> Arc<File> {
    READS.forget(id);
    WRITES.insert(id, file)
}

/// Closes the write handle pooled under `id`, if any (the segment left the
/// active slot, or finished the fsync it reopened the file for).
pub(crate) fn forget_write(id: u64) {
    WRITES.forget(id);
}

/// Drops every handle pooled under `id` (the segment is gone).
pub(crate) fn forget(id: u64) {
    READS.forget(id);
    WRITES.forget(id);
}

/// A bounded least-recently-used map from segment id to open file.
#[derive(Debug)]
pub(crate) struct FileCache {
    capacity: AtomicUsize,
    inner: Mutex<Inner>,
    /// How a missing handle is opened.
    open: fn(&Path) -> std::io::Result<File>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Handle and last-use tick of each cached segment.
    files: HashMap<u64, (Arc<File>, u64)>,
    /// Segment ids by last-use tick, oldest first.
    by_use: BTreeMap<u64, u64>,
    /// Incremented on every use.
    tick: u64,
}

impl Inner {
    fn touch(&mut self, id: u64) -> Option<Arc<File>> {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        let (file, used) = self.files.get_mut(&id)?;
        self.by_use.remove(used);
        *used = tick;
        self.by_use.insert(tick, id);
        Some(Arc::clone(file))
    }

    fn remove(&mut self, id: u64) {
        if let Some((_, used)) = self.files.remove(&id) {
            self.by_use.remove(&used);
        }
    }

    fn shrink_to(&mut self, capacity: usize) {
        while self.files.len() > capacity {
            let Some((_, id)) = self.by_use.pop_first() else {
                break;
            };
            self.files.remove(&id);
        }
    }
}

impl FileCache {
    pub(crate) fn new(capacity: usize, open: fn(&Path) -> std::io::Result<File>) -> Self {
        Self {
            capacity: AtomicUsize::new(capacity.max(1)),
            inner: Mutex::new(Inner::default()),
            open,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map stays consistent whatever a panicking holder was doing:
        // every update is a few infallible map operations.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    pub(crate) fn set_capacity(&self, max: usize) {
        let max = max.max(1);
        self.capacity.store(max, Ordering::Relaxed);
        self.lock().shrink_to(max);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().files.len()
    }

    /// The handle cached under `id`, opening `path` on a miss; says
    /// whether it opened one.
    pub(crate) fn get(&self, id: u64, path: &Path) -> std::io::Result<(Arc<File>, bool)> {
        if let Some(file) = self.lock().touch(id) {
            return Ok((file, false));
        }
        // Opened without the lock: another caller may open the same file
        // meanwhile; the first one inserted wins and the other closes.
        let opened = (self.open)(path)?;
        let mut inner = self.lock();
        if let Some(file) = inner.touch(id) {
            return Ok((file, false));
        }
        Ok((self.insert_locked(&mut inner, id, opened), true))
    }

    /// The handle cached under `id`, if any, marked as just used.
    pub(crate) fn peek(&self, id: u64) -> Option<Arc<File>> {
        self.lock().touch(id)
    }

    /// Caches `file` under `id`, replacing any handle there.
    pub(crate) fn insert(&self, id: u64, file: File) -> Arc<File> {
        let mut inner = self.lock();
        inner.remove(id);
        self.insert_locked(&mut inner, id, file)
    }

    fn insert_locked(&self, inner: &mut Inner, id: u64, file: File) -> Arc<File> {
        let file = Arc::new(file);
        inner.shrink_to(self.capacity().saturating_sub(1));
        inner.tick = inner.tick.wrapping_add(1);
        let tick = inner.tick;
        inner.files.insert(id, (Arc::clone(&file), tick));
        inner.by_use.insert(tick, id);
        file
    }

    pub(crate) fn forget(&self, id: u64) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use super::*;

    fn files(dir: &Path, n: usize) -> Vec<std::path::PathBuf> {
        (0..n)
            .map(|i| {
                let path = dir.join(format!("{i}.log"));
                let mut f = File::create(&path).unwrap();
                write!(f, "file number {i:04}").unwrap();
                path
            })
            .collect()
    }

    fn read_all(file: &File) -> String {
        let mut buf = vec![0u8; 16];
        file.read_exact_at(&mut buf, 0).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn holds_at_most_capacity_and_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), 5);
        let cache = FileCache::new(3, open_read_only);
        for (id, path) in paths.iter().enumerate().take(3) {
            cache.get(id as u64, path).unwrap();
        }
        // 0 becomes the most recent, so 1 is evicted by the fourth file.
        cache.get(0, &paths[0]).unwrap();
        cache.get(3, &paths[3]).unwrap();
        assert_eq!(cache.len(), 3);
        let inner = cache.lock();
        let mut held: Vec<u64> = inner.files.keys().copied().collect();
        held.sort_unstable();
        assert_eq!(held, vec![0, 2, 3]);
        assert_eq!(inner.by_use.len(), 3);
    }

    #[test]
    fn an_evicted_handle_in_use_stays_readable() {
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), 2);
        let cache = FileCache::new(1, open_read_only);
        let (in_flight, _) = cache.get(0, &paths[0]).unwrap();
        let (other, _) = cache.get(1, &paths[1]).unwrap();
        assert_eq!(cache.len(), 1);
        assert!(cache.lock().files.contains_key(&1));
        assert_eq!(read_all(&in_flight), "file number 0000");
        assert_eq!(read_all(&other), "file number 0001");
        // Reading again reopens the evicted file.
        assert_eq!(
            read_all(&cache.get(0, &paths[0]).unwrap().0),
            "file number 0000"
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn lowering_the_capacity_closes_surplus_handles() {
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), 4);
        let cache = FileCache::new(4, open_read_only);
        for (id, path) in paths.iter().enumerate() {
            cache.get(id as u64, path).unwrap();
        }
        assert_eq!(cache.len(), 4);
        cache.set_capacity(2);
        assert_eq!(cache.len(), 2);
        cache.forget(3);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn says_whether_it_opened_and_peek_never_opens() {
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), 2);
        let cache = FileCache::new(1, open_read_only);
        assert!(cache.peek(0).is_none());
        assert!(cache.get(0, &paths[0]).unwrap().1);
        assert!(!cache.get(0, &paths[0]).unwrap().1);
        assert!(cache.peek(0).is_some());
        // Inserting a handle evicts the least recently used one.
        cache.insert(1, File::open(&paths[1]).unwrap());
        assert!(cache.peek(0).is_none());
        assert_eq!(read_all(&cache.peek(1).unwrap()), "file number 0001");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_write_pool_reopens_without_creating_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(2, open_read_write);
        let missing = dir.path().join("gone.log");
        assert!(cache.get(0, &missing).is_err());
        assert!(!missing.exists());
        assert_eq!(cache.len(), 0);
    }
}
