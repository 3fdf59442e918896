//! `wharf serve --memory`: the data directory on a memory-backed filesystem.
//!
//! The log engine stays the one that runs on disk (same files, same code,
//! same behaviour: retention, compaction, groups, transactions); only its
//! directory moves to a tmpfs, so nothing reaches a disk and the broker
//! starts and writes as fast as memory allows. The directory is made fresh
//! for each process and removed when the broker stops. One left by a
//! process that was killed is removed by the next memory-mode start, once
//! the process named in it is gone.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where memory-mode data directories are made. Linux mounts a tmpfs here
/// (Docker gives containers one of 64 MiB unless `--shm-size` says more).
pub const MEMORY_ROOT: &str = "/dev/shm";

/// Prefix of a memory-mode data directory's name; the owner's pid follows.
const PREFIX: &str = "wharf-memory-";

/// `statfs` f_type of the filesystems that keep files in memory.
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// A memory-mode data directory, removed (with all it holds) on drop.
#[derive(Debug)]
pub struct MemoryDir {
    path: PathBuf,
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
        let path = root.join(format!("{PREFIX}{}", std::process::id()));
        // A directory of this pid is from an earlier process that had it.
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
        }
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        let free_bytes = rustix::fs::statvfs(&path)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(0);
        Ok(MemoryDir {
            path,
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

/// Removes the memory-mode directories under `root` whose process no
/// longer runs; returns them.
fn sweep_stale(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
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
        assert!(path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(&std::process::id().to_string()));
        std::fs::write(path.join("x"), b"data").unwrap();
        assert!(dir.free_bytes > 0);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn a_dead_process_directory_is_swept_and_a_live_one_kept() {
        let root = tempfile::tempdir_in(MEMORY_ROOT).unwrap();
        // pid 1 always runs; a pid past pid_max never does.
        let live = root.path().join(format!("{PREFIX}1"));
        let dead = root.path().join(format!("{PREFIX}4294967290"));
        let other = root.path().join("something-else-4294967290");
        for d in [&live, &dead, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("00000000000000000000.log"), b"x").unwrap();
        }
        let swept = sweep_stale(root.path());
        assert_eq!(swept, vec![dead.clone()]);
        assert!(live.exists() && other.exists() && !dead.exists());
    }

    #[test]
    fn a_disk_filesystem_is_refused() {
        // procfs keeps nothing in memory for us either: not tmpfs.
        let err = check_memory_backed(Path::new("/proc")).unwrap_err();
        assert!(err.to_string().contains("not a memory filesystem"), "{err}");
    }
}
