//! `wharf serve --memory`: the data directory on a memory-backed filesystem.
//!
//! The log engine stays the one that runs on disk (same files, same code,
//! same behaviour: retention, compaction, groups, transactions); only its
//! directory moves to a tmpfs, so nothing reaches a disk and the broker
//! starts and writes as fast as memory allows. The directory is made fresh
//! for each process and removed when the broker stops. The process holds
//! a lock on a file in it for its whole life; one left by a process that
//! was killed (its lock released with it) is removed by the next
//! memory-mode start. Names carry the pid and a time stamp, so processes
//! of other pid namespaces sharing the filesystem never collide.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// Where memory-mode data directories are made. Linux mounts a tmpfs here
/// (Docker gives containers one of 64 MiB unless `--shm-size` says more).
pub const MEMORY_ROOT: &str = "/dev/shm";

/// Prefix of a memory-mode data directory's name; the owner's pid and a
/// time stamp follow.
const PREFIX: &str = "wharf-memory-";

/// The file in a memory-mode directory that its process keeps locked.
const OWNER_LOCK: &str = ".memory-owner";

/// `statfs` f_type of the filesystems that keep files in memory.
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// A memory-mode data directory, removed (with all it holds) on drop.
#[derive(Debug)]
pub struct MemoryDir {
    path: PathBuf,
    /// Held (locked) while the process lives: the directory is in use.
    _owner: File,
    /// Bytes the filesystem had free when the directory was made.
    pub free_bytes: u64,
    /// Directories of processes that no longer run, removed on the way.
    pub swept: Vec<PathBuf>,
}

impl MemoryDir {
    /// Makes a new data directory for this process under `root`, which
    /// must be a memory-backed filesystem, after removing those that
    /// earlier, now dead, processes left there.
    pub fn create(root: &Path) -> anyhow::Result<MemoryDir> {
        check_memory_backed(root)?;
        let swept = sweep_stale(root);
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = root.join(format!("{PREFIX}{}-{stamp:x}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        let owner = File::create(path.join(OWNER_LOCK))
            .and_then(|f| f.try_lock().map(|()| f).map_err(std::io::Error::from))
            .with_context(|| format!("locking {}", path.display()))?;
        let free_bytes = rustix::fs::statvfs(&path)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(0);
        Ok(MemoryDir {
            path,
            _owner: owner,
            free_bytes,
            swept,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MemoryDir {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => tracing::info!(dir = %self.path.display(), "memory mode: data removed"),
            Err(e) => {
                tracing::warn!(dir = %self.path.display(), "memory mode: could not remove the data: {e}")
            }
        }
    }
}

/// Refuses a `root` whose files would be written to a disk.
fn check_memory_backed(root: &Path) -> anyhow::Result<()> {
    let stat = rustix::fs::statfs(root).with_context(|| {
        format!(
            "--memory keeps the logs on the memory filesystem {}, which is not there",
            root.display()
        )
    })?;
    #[allow(clippy::unnecessary_cast)] // f_type's type differs between targets
    let kind = stat.f_type as u64;
    if kind == TMPFS_MAGIC || kind == RAMFS_MAGIC {
        Ok(())
    } else {
        anyhow::bail!(
            "--memory keeps the logs on {}, which is not a memory filesystem (tmpfs) here (type {kind:#x})",
            root.display()
        )
    }
}

/// Removes the memory-mode directories under `root` whose process has
/// gone (their owner lock is free); returns them. One without the lock
/// file may be in the making, and is left alone.
fn sweep_stale(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(lock) = File::open(path.join(OWNER_LOCK)) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        drop(lock);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => swept.push(path),
            Err(e) => {
                tracing::warn!(dir = %path.display(), "memory mode: could not remove a stale data directory: {e}")
            }
        }
    }
    swept
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_dir_is_made_fresh_and_removed_on_drop() {
        let dir = MemoryDir::create(Path::new(MEMORY_ROOT)).unwrap();
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("{PREFIX}{}-", std::process::id())),
            "{name}"
        );
        std::fs::write(path.join("x"), b"data").unwrap();
        assert!(dir.free_bytes > 0);
        // Another start in this process (another pid namespace, say) gets
        // its own directory and leaves this one, which is in use.
        let other = MemoryDir::create(Path::new(MEMORY_ROOT)).unwrap();
        assert_ne!(other.path(), path);
        assert!(path.join("x").exists());
        assert!(!other.swept.contains(&path));
        drop(other);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn only_directories_whose_owner_lock_is_free_are_swept() {
        let root = tempfile::tempdir_in(MEMORY_ROOT).unwrap();
        let make = |name: &str, with_lock: bool| {
            let d = root.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("00000000000000000000.log"), b"x").unwrap();
            if with_lock {
                File::create(d.join(OWNER_LOCK)).unwrap();
            }
            d
        };
        let dead = make(&format!("{PREFIX}4242-1"), true);
        let live = make(&format!("{PREFIX}4243-1"), true);
        let making = make(&format!("{PREFIX}4244-1"), false);
        let other = make("something-else", true);
        let held = File::open(live.join(OWNER_LOCK)).unwrap();
        held.try_lock().unwrap();
        let swept = sweep_stale(root.path());
        assert_eq!(swept, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(live.exists() && making.exists() && other.exists());
        drop(held);
        assert_eq!(sweep_stale(root.path()), vec![live.clone()]);
    }

    #[test]
    fn a_disk_filesystem_is_refused() {
        // procfs keeps nothing in memory for us either: not tmpfs.
        let err = check_memory_backed(Path::new("/proc")).unwrap_err();
        assert!(err.to_string().contains("not a memory filesystem"), "{err}");
    }
}
