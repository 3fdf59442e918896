//! The process-wide, bounded pool of read handles on segments' `.log`
//! files.
//!
//! A segment whose write handle is not open (every closed segment, and an
//! active one idle long enough for the write pool to close its handle; see
//! `write_pool`) is read through this cache, which opens the file read-only
//! on a miss and, when more than the capacity are open, closes the least
//! recently used. So however many partitions and segments there are,
//! segment files take at most this capacity plus the write pool's in
//! descriptors. (Index files hold none: see `entry_file`.)
//!
//! Handles are `Arc<File>`: evicting one only drops the cache's reference,
//! so a read already under way on it finishes on a valid descriptor, which
//! closes when that read drops its clone. The lock is held only to look up,
//! insert or evict, never across an `open` or a read.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

/// Capacity until [`set_max_open_segment_files`] is called.
pub const DEFAULT_MAX_OPEN_SEGMENT_FILES: usize = 1024;

static CACHE: LazyLock<FileCache> =
    LazyLock::new(|| FileCache::new(DEFAULT_MAX_OPEN_SEGMENT_FILES));

/// Source of the ids segments are cached under: a file replaced in place
/// (compaction renames over it) gets a new segment and so a new id.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Sets how many `.log` files may be open for reading at once, process
/// wide (at least 1). Surplus handles close as reads touch other segments.
pub fn set_max_open_segment_files(max: usize) {
    CACHE.set_capacity(max);
}

/// The current capacity; see [`set_max_open_segment_files`].
pub fn max_open_segment_files() -> usize {
    CACHE.capacity()
}

/// How many `.log` files the cache holds open for reading now (handles
/// evicted but still in use by a read are not counted).
pub fn open_segment_files() -> usize {
    CACHE.len()
}

/// A fresh id for a segment's pool entries.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A read handle on `path`, cached under `id`.
pub(crate) fn get(id: u64, path: &Path) -> std::io::Result<Arc<File>> {
    CACHE.get(id, path)
}

/// Drops the handle cached under `id`, if any (the segment is gone or has
/// its write handle open again).
pub(crate) fn forget(id: u64) {
    CACHE.forget(id);
}

/// A bounded least-recently-used map from segment id to open file.
#[derive(Debug)]
pub(crate) struct FileCache {
    capacity: AtomicUsize,
    inner: Mutex<Inner>,
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
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: AtomicUsize::new(capacity.max(1)),
            inner: Mutex::new(Inner::default()),
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

    pub(crate) fn get(&self, id: u64, path: &Path) -> std::io::Result<Arc<File>> {
        if let Some(file) = self.lock().touch(id) {
            return Ok(file);
        }
        // Opened without the lock: another reader may open the same file
        // meanwhile; the first one inserted wins and the other closes.
        let opened = Arc::new(File::open(path)?);
        let mut inner = self.lock();
        if let Some(file) = inner.touch(id) {
            return Ok(file);
        }
        let capacity = self.capacity();
        inner.shrink_to(capacity.saturating_sub(1));
        inner.tick = inner.tick.wrapping_add(1);
        let tick = inner.tick;
        inner.files.insert(id, (Arc::clone(&opened), tick));
        inner.by_use.insert(tick, id);
        Ok(opened)
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
        let cache = FileCache::new(3);
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
        let cache = FileCache::new(1);
        let in_flight = cache.get(0, &paths[0]).unwrap();
        let other = cache.get(1, &paths[1]).unwrap();
        assert_eq!(cache.len(), 1);
        assert!(cache.lock().files.contains_key(&1));
        assert_eq!(read_all(&in_flight), "file number 0000");
        assert_eq!(read_all(&other), "file number 0001");
        // Reading again reopens the evicted file.
        assert_eq!(
            read_all(&cache.get(0, &paths[0]).unwrap()),
            "file number 0000"
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn lowering_the_capacity_closes_surplus_handles() {
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), 4);
        let cache = FileCache::new(4);
        for (id, path) in paths.iter().enumerate() {
            cache.get(id as u64, path).unwrap();
        }
        assert_eq!(cache.len(), 4);
        cache.set_capacity(2);
        assert_eq!(cache.len(), 2);
        cache.forget(3);
        assert_eq!(cache.len(), 1);
    }
}
