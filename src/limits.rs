//! What the machine allows the broker: how its open-files limit is shared
//! between connections, segment files and everything else, and how many
//! partitions it hosts by default.
//!
//! The descriptor rule (also in the README):
//!
//! - `limit` is the open-files soft limit after raising it to the hard one;
//! - [`INTERNAL_RESERVE`] descriptors (a quarter of the limit when that is
//!   smaller) are kept for everything that is neither a connection nor a
//!   pooled segment file: listeners, the metadata log, the lock file, the
//!   runtime's epoll and eventfds, and files opened for a moment (index
//!   writes, snapshots, checkpoints, directory fsyncs, recovery);
//! - connections get at most half of the rest (`--max-connections` is
//!   lowered to that if larger);
//! - segment files get the remainder: a quarter of it (at most 1024 unless
//!   set) for the read pool of closed segments (`--max-open-segment-files`),
//!   the rest for the write pool of active segments
//!   (`--max-open-active-segment-files`). Flags set larger than their share
//!   are lowered to it with a warning.

/// Descriptors kept for the broker's own files besides the two pools.
pub const INTERNAL_RESERVE: u64 = 64;

/// The read pool's size when `--max-open-segment-files` is not given and
/// the limit allows it.
pub const DEFAULT_READ_POOL: u64 = 1024;

/// The limit assumed when the process has none.
const UNLIMITED: u64 = 1 << 20;

/// Physical memory per partition in the default `--max-partitions`.
pub const MEMORY_PER_PARTITION: u64 = 128 * 1024;

/// The smallest default `--max-partitions`, whatever the memory.
pub const MIN_DEFAULT_MAX_PARTITIONS: u64 = 1_000;

/// How the open-files limit is shared; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdBudget {
    /// The open-files limit the shares come from.
    pub limit: u64,
    /// Kept for internal files.
    pub internal: u64,
    /// Most connections served at once.
    pub connections: u64,
    /// Capacity of the read pool (closed segments).
    pub read_pool: u64,
    /// Capacity of the write pool (active segments).
    pub write_pool: u64,
    /// Each setting lowered to fit, with what was asked and what it got.
    pub lowered: Vec<(&'static str, u64, u64)>,
}

/// Shares `limit` (`None`: unlimited) between the broker's uses, honouring
/// the flags where they fit. `max_connections` always has a value (its flag
/// has a default); the pools' flags may be unset.
pub fn fd_budget(
    limit: Option<u64>,
    max_connections: u64,
    read_flag: Option<u64>,
    write_flag: Option<u64>,
) -> FdBudget {
    let limit = limit.unwrap_or(UNLIMITED).max(16);
    let internal = INTERNAL_RESERVE.min(limit / 4);
    let shared = limit.saturating_sub(internal);
    let mut lowered = Vec::new();
    let connections = max_connections.clamp(1, (shared / 2).max(1));
    if connections < max_connections {
        lowered.push(("--max-connections", max_connections, connections));
    }
    let files = shared.saturating_sub(connections).max(2);
    let read_share = (files / 4).max(1);
    let read_pool = match read_flag {
        None => DEFAULT_READ_POOL.min(read_share),
        Some(asked) if asked > read_share => {
            lowered.push(("--max-open-segment-files", asked, read_share));
            read_share
        }
        Some(asked) => asked.max(1),
    };
    let write_share = files.saturating_sub(read_pool).max(1);
    let write_pool = match write_flag {
        None => write_share,
        Some(asked) if asked > write_share => {
            lowered.push(("--max-open-active-segment-files", asked, write_share));
            write_share
        }
        Some(asked) => asked.max(1),
    };
    FdBudget {
        limit,
        internal,
        connections,
        read_pool,
        write_pool,
        lowered,
    }
}

/// The default `--max-partitions`: one partition per [`MEMORY_PER_PARTITION`]
/// of the memory the broker may use, at least [`MIN_DEFAULT_MAX_PARTITIONS`].
/// An idle partition costs about 2 KiB of the broker's memory plus the
/// kernel's inodes and dentries for its files; the rest of the share is for
/// what a busy one needs: its in-memory indexes (about 5 MiB per GiB of
/// data), buffers of requests to it, and page cache for its active segment.
pub fn default_max_partitions(memory: Option<u64>) -> u64 {
    memory.map_or(MIN_DEFAULT_MAX_PARTITIONS, |m| {
        (m / MEMORY_PER_PARTITION).max(MIN_DEFAULT_MAX_PARTITIONS)
    })
}

/// The memory this process may use: the machine's physical memory, or its
/// cgroup's limit when that is lower (in a container). `None` when neither
/// can be read.
pub fn available_memory() -> Option<u64> {
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_meminfo_total(&text));
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    match (physical, cgroup) {
        (Some(p), Some(c)) => Some(p.min(c)),
        (p, c) => p.or(c),
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_low_limit_is_shared_and_every_share_fits_under_it() {
        let b = fd_budget(Some(512), 10_000, None, None);
        assert_eq!(b.internal, 64);
        assert_eq!(b.connections, 224);
        assert_eq!(b.read_pool, 56);
        assert_eq!(b.write_pool, 168);
        assert_eq!(b.internal + b.connections + b.read_pool + b.write_pool, 512);
        assert_eq!(b.lowered, vec![("--max-connections", 10_000, 224)]);
    }

    #[test]
    fn a_high_limit_keeps_the_flags_and_defaults() {
        let b = fd_budget(Some(1 << 20), 10_000, None, None);
        assert_eq!(b.connections, 10_000);
        assert_eq!(b.read_pool, 1024);
        assert_eq!(b.write_pool, (1 << 20) - 64 - 10_000 - 1024);
        assert!(b.lowered.is_empty());
        let unlimited = fd_budget(None, 10_000, Some(5000), Some(100));
        assert_eq!(unlimited.read_pool, 5000);
        assert_eq!(unlimited.write_pool, 100);
        assert!(unlimited.lowered.is_empty());
    }

    #[test]
    fn pool_flags_that_do_not_fit_are_lowered_and_reported() {
        let b = fd_budget(Some(1024), 100, Some(4096), Some(100_000));
        assert_eq!(b.connections, 100);
        // 1024 - 64 - 100 = 860 for files: 215 to read, 645 to write.
        assert_eq!(b.read_pool, 215);
        assert_eq!(b.write_pool, 645);
        assert_eq!(
            b.lowered,
            vec![
                ("--max-open-segment-files", 4096, 215),
                ("--max-open-active-segment-files", 100_000, 645)
            ]
        );
    }

    #[test]
    fn a_tiny_limit_still_leaves_each_pool_a_handle() {
        let b = fd_budget(Some(20), 10, None, None);
        assert!(b.read_pool >= 1 && b.write_pool >= 1 && b.connections >= 1);
        assert!(b.internal + b.connections + b.read_pool + b.write_pool <= 20);
    }

    #[test]
    fn default_partition_limit_follows_memory_with_a_floor() {
        assert_eq!(default_max_partitions(Some(2 << 30)), 16_384);
        assert_eq!(default_max_partitions(Some(64 << 20)), 1_000);
        assert_eq!(default_max_partitions(None), 1_000);
    }

    #[test]
    fn reads_mem_total_in_bytes() {
        let text = "MemTotal:       24683656 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(24_683_656 * 1024));
        assert_eq!(parse_meminfo_total("nothing"), None);
    }
}
