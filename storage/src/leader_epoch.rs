//! The leader epoch cache: which leader epoch began at which offset of a
//! partition's log, as Kafka keeps it (KIP-101, KIP-279). A follower asks
//! the leader where an epoch ended (OffsetsForLeaderEpoch) and truncates its
//! log there before fetching, so a tail written by a deposed leader is cut
//! instead of kept.
//!
//! The entries are ordered: epochs strictly increase, start offsets never
//! decrease. The log persists them in its directory as
//! [`crate::format::LEADER_EPOCH_CHECKPOINT`], in Kafka's text format:
//!
//! ```text
//! 0          <- format version
//! 2          <- number of entries
//! 3 0        <- epoch, start offset
//! 5 1500
//! ```
//!
//! This type only holds the entries; every change reports whether it
//! changed anything, and the [`crate::Log`] that owns the cache rewrites the
//! file (atomically) when it did.

use std::path::Path;

/// The epoch and offset Kafka answers with when it knows nothing.
pub const UNDEFINED_EPOCH: i32 = -1;
/// The offset paired with [`UNDEFINED_EPOCH`].
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// The only checkpoint format version.
const VERSION: &str = "0";

/// One entry: leader `epoch` wrote its first batch at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// The first offset written under it.
    pub start_offset: i64,
}

/// The ordered (epoch, start offset) entries of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache holding `entries`; `None` unless epochs strictly increase,
    /// start offsets never decrease and none is negative.
    pub fn from_entries(entries: Vec<EpochEntry>) -> Option<Self> {
        let valid = entries.iter().all(|e| e.epoch >= 0 && e.start_offset >= 0)
            && entries.windows(2).all(
                |w| matches!(w, [a, b] if a.epoch < b.epoch && a.start_offset <= b.start_offset),
            );
        valid.then_some(LeaderEpochCache { entries })
    }

    /// Records that `epoch` began at `start_offset`. Negative epochs or
    /// offsets, and epochs not newer than the latest known, change nothing.
    /// Entries starting at or after `start_offset` conflict with the new
    /// one (Kafka's rule: start offsets must not go backwards) and are
    /// dropped. Returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < start_offset);
        self.entries.truncate(keep);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Where `requested` ended, as Kafka's `LeaderEpochFileCache.endOffsetFor`
    /// answers an OffsetsForLeaderEpoch request, given the log end offset:
    ///
    /// - the undefined epoch (-1): (-1, -1);
    /// - the latest epoch: (latest, `log_end_offset`);
    /// - otherwise, with `higher` the first entry of a larger epoch: (-1, -1)
    ///   when there is none; else `higher`'s start offset, paired with the
    ///   largest known epoch not above `requested` (or `requested` itself
    ///   when every known epoch is larger).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher_at = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(higher) = self.entries.get(higher_at) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        let floor = higher_at.checked_sub(1).and_then(|i| self.entries.get(i));
        match floor {
            None => (requested, higher.start_offset),
            Some(floor) => (floor.epoch, higher.start_offset),
        }
    }

    /// Drops every entry starting at or after `offset`: the log was
    /// truncated to end there. Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, offset: i64) -> bool {
        let keep = self.entries.partition_point(|e| e.start_offset < offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `offset`: entries wholly before it go, except
    /// the last one starting at or before it, which now starts at `offset`
    /// (its epoch still holds the first records). Returns whether the cache
    /// changed.
    pub fn truncate_from_start(&mut self, offset: i64) -> bool {
        let at_or_before = self.entries.partition_point(|e| e.start_offset <= offset);
        let Some(last) = at_or_before.checked_sub(1) else {
            return false;
        };
        let changed = last > 0
            || self
                .entries
                .get(last)
                .is_some_and(|e| e.start_offset != offset);
        self.entries.drain(..last);
        if let Some(first) = self.entries.first_mut() {
            first.start_offset = offset;
        }
        changed
    }

    /// Forgets every entry. Returns whether the cache changed.
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// The newest epoch known.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The checkpoint file's text.
    pub fn to_checkpoint(&self) -> String {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        text
    }

    /// Parses the checkpoint file's text; `None` when anything is off
    /// (version, count, a line, the ordering of the entries).
    pub fn parse_checkpoint(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()?.trim() != VERSION {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut entries = Vec::with_capacity(count.min(1 << 12));
        for _ in 0..count {
            let mut parts = lines.next()?.split_whitespace();
            let epoch: i32 = parts.next()?.parse().ok()?;
            let start_offset: i64 = parts.next()?.parse().ok()?;
            if parts.next().is_some() {
                return None;
            }
            entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return None;
        }
        Self::from_entries(entries)
    }

    /// Reads the checkpoint in `dir`: `Ok(None)` when there is none, `Err`
    /// with a reason when it cannot be read or parsed.
    pub fn read(dir: &Path) -> Result<Option<Self>, String> {
        let path = crate::format::leader_epoch_checkpoint_path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse_checkpoint(&text)
                .map(Some)
                .ok_or_else(|| "malformed leader epoch checkpoint".to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Replaces the checkpoint in `dir` with these entries, atomically.
    pub fn write(&self, dir: &Path) -> crate::error::Result<()> {
        let path = crate::format::leader_epoch_checkpoint_path(dir);
        crate::io::replace_file(&path, self.to_checkpoint().as_bytes())
            .map_err(|e| crate::error::StorageError::io(format!("writing {}", path.display()), e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(
            entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        )
        .unwrap()
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(2, 10), (4, 20), (6, 30)]);
        let leo = 42;
        assert_eq!(c.end_offset_for(-1, leo), (-1, -1));
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(6, leo), (6, leo));
        // A known epoch ends where the next one starts.
        assert_eq!(c.end_offset_for(2, leo), (2, 20));
        assert_eq!(c.end_offset_for(4, leo), (4, 30));
        // An unknown epoch between two known ones: the floor's epoch, and
        // the start of the next.
        assert_eq!(c.end_offset_for(3, leo), (2, 20));
        assert_eq!(c.end_offset_for(5, leo), (4, 30));
        // Older than anything known: the epoch asked for, ending where the
        // first known one starts.
        assert_eq!(c.end_offset_for(1, leo), (1, 10));
        assert_eq!(c.end_offset_for(0, leo), (0, 10));
        // Newer than anything known.
        assert_eq!(c.end_offset_for(7, leo), (-1, -1));
        // An empty cache knows nothing.
        assert_eq!(LeaderEpochCache::new().end_offset_for(0, leo), (-1, -1));
    }

    #[test]
    fn assign_appends_newer_epochs_only() {
        let mut c = LeaderEpochCache::new();
        assert!(!c.assign(-1, 0));
        assert!(!c.assign(0, -5));
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 5), "same epoch again");
        assert!(!c.assign(0, 7), "older epoch");
        assert!(c.assign(3, 5));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 5)]);
        assert_eq!(c.latest_epoch(), Some(3));
    }

    #[test]
    fn assign_drops_entries_the_new_start_conflicts_with() {
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(c.assign(5, 10));
        assert_eq!(pairs(&c), vec![(1, 0), (5, 10)]);
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(c.assign(4, 15));
        assert_eq!(pairs(&c), vec![(1, 0), (2, 10), (4, 15)]);
        let mut c = cache(&[(1, 0), (2, 10)]);
        assert!(c.assign(3, 0));
        assert_eq!(pairs(&c), vec![(3, 0)]);
        // A start equal to the latest's: the latest goes.
        let mut c = cache(&[(1, 0), (2, 10)]);
        assert!(c.assign(3, 10));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10)]);
    }

    #[test]
    fn truncate_from_end_drops_entries_at_or_after_the_offset() {
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(!c.truncate_from_end(25));
        assert!(c.truncate_from_end(20));
        assert_eq!(pairs(&c), vec![(1, 0), (2, 10)]);
        assert!(!c.truncate_from_end(11));
        assert!(c.truncate_from_end(10));
        assert_eq!(pairs(&c), vec![(1, 0)]);
        assert!(c.truncate_from_end(0));
        assert!(c.entries().is_empty());
        assert!(!c.truncate_from_end(0));
    }

    #[test]
    fn truncate_from_start_keeps_the_epoch_holding_the_new_start() {
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(15));
        assert_eq!(pairs(&c), vec![(2, 15), (3, 20)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(pairs(&c), vec![(3, 20)]);
        assert!(!c.truncate_from_start(20));
        assert!(c.truncate_from_start(100));
        assert_eq!(pairs(&c), vec![(3, 100)]);
        // Before every entry: nothing to drop.
        let mut c = cache(&[(4, 50)]);
        assert!(!c.truncate_from_start(10));
        assert_eq!(pairs(&c), vec![(4, 50)]);
        assert!(c.clear());
        assert!(!c.clear());
        assert_eq!(c.latest_epoch(), None);
    }

    #[test]
    fn checkpoint_round_trips_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LeaderEpochCache::read(dir.path()), Ok(None));
        let c = cache(&[(0, 0), (3, 120), (4, 120)]);
        c.write(dir.path()).unwrap();
        let path = crate::format::leader_epoch_checkpoint_path(dir.path());
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            "0\n3\n0 0\n3 120\n4 120\n"
        );
        assert_eq!(LeaderEpochCache::read(dir.path()), Ok(Some(c)));
        LeaderEpochCache::new().write(dir.path()).unwrap();
        assert_eq!(
            LeaderEpochCache::read(dir.path()),
            Ok(Some(LeaderEpochCache::new()))
        );
    }

    #[test]
    fn malformed_checkpoints_are_rejected() {
        for bad in [
            "",
            "1\n0\n",
            "0\n",
            "0\nx\n",
            "0\n2\n1 0\n",
            "0\n1\n1\n",
            "0\n1\n1 0 3\n",
            "0\n1\na 0\n",
            "0\n2\n2 0\n1 5\n",
            "0\n2\n1 5\n2 4\n",
            "0\n2\n1 5\n1 6\n",
            "0\n1\n-1 0\n",
            "0\n1\n1 -3\n",
            "0\n1\n1 0\n2 3\n",
        ] {
            assert!(LeaderEpochCache::parse_checkpoint(bad).is_none(), "{bad:?}");
        }
        assert!(LeaderEpochCache::parse_checkpoint("0\n0\n").is_some());
    }
}
