//! Retention: deleting whole segments by age or total size, and moving the
//! log start offset forward (Kafka's DeleteRecords).
//!
//! Kafka's rules, as followed here: a segment expires when its newest record
//! timestamp (or, without timestamps, the file's modification time) is more
//! than `retention_ms` old; by size, the oldest segments go while the log
//! minus that segment still exceeds `retention_bytes`. Deletion stops at the
//! first segment that must stay. The active segment may expire too: the log
//! then rolls first, so an empty active segment at the log end remains and
//! offsets continue from there.

use crate::error::{Result, StorageError};
use crate::log::Log;

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

impl Log {
    /// Deletes the segments retention no longer keeps, given the current
    /// time in milliseconds. Does nothing when delete retention is off, or
    /// when the log is offline. A failed deletion takes the log offline.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome> {
        if self.offline.is_some() {
            return Ok(RetentionOutcome {
                segments_deleted: 0,
                log_start_offset: self.log_start_offset(),
            });
        }
        let result = self.apply_retention_inner(now_ms);
        self.offline_on_io_error(result)
    }

    fn apply_retention_inner(&mut self, now_ms: i64) -> Result<RetentionOutcome> {
        let mut deletable = 0usize;
        if self.config.delete_retention_enabled {
            let retention_ms = self.config.retention_ms;
            let mut excess = if self.config.retention_bytes >= 0 {
                i64::try_from(self.size_bytes())
                    .unwrap_or(i64::MAX)
                    .saturating_sub(self.config.retention_bytes)
            } else {
                0
            };
            let active_base = self.active.base_offset();
            for segment in self.segments() {
                if segment.size() == 0 {
                    if segment.base_offset() == active_base {
                        break;
                    }
                    // Compaction emptied it: nothing in it to keep.
                    deletable += 1;
                    continue;
                }
                let newest = segment
                    .max_timestamp()
                    .map(|(ts, _)| ts)
                    .filter(|ts| *ts >= 0)
                    .or_else(|| segment.last_modified_ms())
                    .unwrap_or(now_ms);
                let size = i64::try_from(segment.size()).unwrap_or(i64::MAX);
                let by_time = retention_ms >= 0 && now_ms.saturating_sub(newest) > retention_ms;
                let by_size = excess > 0 && excess >= size;
                if !(by_time || by_size) {
                    break;
                }
                excess = excess.saturating_sub(size);
                deletable += 1;
            }
        }
        // Segments wholly below the log start offset go as well.
        let below_start = self
            .segment_base_offsets()
            .windows(2)
            .take_while(|w| w.get(1).is_some_and(|next| *next <= self.log_start))
            .count();
        let count = deletable.max(below_start);
        self.delete_oldest(count)?;
        Ok(RetentionOutcome {
            segments_deleted: count,
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Moves the log start offset to `offset` (DeleteRecords): records below
    /// it can no longer be read, and segments wholly below it are deleted.
    /// Offsets beyond the log end are out of range; an offset at or below
    /// the current start changes nothing. An offline log refuses; a failed
    /// deletion takes the log offline.
    pub fn advance_log_start(&mut self, offset: i64) -> Result<i64> {
        self.check_writable()?;
        let result = self.advance_log_start_inner(offset);
        self.offline_on_io_error(result)
    }

    fn advance_log_start_inner(&mut self, offset: i64) -> Result<i64> {
        if offset > self.next_offset || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset(),
                log_end: self.next_offset,
            });
        }
        if offset > self.log_start {
            self.log_start = offset;
        }
        let below = self
            .segment_base_offsets()
            .windows(2)
            .take_while(|w| w.get(1).is_some_and(|next| *next <= offset))
            .count();
        if offset == self.next_offset && self.active.size() > 0 {
            // Everything is deleted: start a fresh segment at the log end.
            let all = self.segment_count();
            self.delete_oldest(all)?;
        } else {
            self.delete_oldest(below)?;
        }
        let start = self.log_start_offset();
        self.change_epochs(|epochs| epochs.truncate_from_start(start))?;
        Ok(start)
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments().map(|s| s.size()).sum()
    }

    /// Deletes the `count` oldest segments, rolling first when that would
    /// include the active one.
    fn delete_oldest(&mut self, count: usize) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        if count >= self.segment_count() {
            self.roll()?;
        }
        let count = count.min(self.older.len());
        for segment in self.older.drain(..count) {
            segment.delete(&self.dir)?;
        }
        self.dir_dirty = true;
        let first = self.older.first().unwrap_or(&self.active).base_offset();
        self.log_start = self.log_start.max(first);
        self.max_timestamp = crate::recovery::log_max_timestamp(self.segments(), &self.config)?;
        let start = self.log_start_offset();
        self.change_epochs(|epochs| epochs.truncate_from_start(start))?;
        tracing::debug!(dir = %self.dir.display(), count, log_start = self.log_start, "segments deleted");
        Ok(())
    }
}
