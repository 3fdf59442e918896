//! Bookkeeping that follows a segment's batches in order: where sparse index
//! entries go, and which batch carries the largest timestamp. Appends,
//! recovery and index rebuilds all feed batches through it, so they agree.

use wharf_protocol::batch::BatchHeader;

use crate::format::{IndexEntry, TimeEntry};

/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct BatchTracker {
    /// The segment's base offset, to make offsets relative.
    base_offset: i64,
    /// Bytes between index entries.
    interval: u64,
    /// Bytes seen since the last index entry.
    since_index: u64,
    /// Bytes seen since the last time index entry.
    since_time: u64,
    /// Largest batch maxTimestamp and the position of the first batch carrying it.
    max_timestamp: Option<(i64, u64)>,
}

impl BatchTracker {
    pub(crate) fn new(base_offset: i64, interval: u64) -> BatchTracker {
        BatchTracker {
            base_offset,
            interval,
            since_index: 0,
            since_time: interval,
            max_timestamp: None,
        }
    }

    /// Notes the batch at `position`; returns the offset and time index
    /// entries due for it, if any. A time entry is only ever due for a batch
    /// that raises the segment's max timestamp, at most one per interval.
    pub(crate) fn observe(
        &mut self,
        position: u64,
        header: &BatchHeader,
    ) -> (Option<IndexEntry>, Option<TimeEntry>) {
        let relative = u32::try_from(header.base_offset().saturating_sub(self.base_offset));
        let mut time = None;
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| header.max_timestamp() > ts)
        {
            self.max_timestamp = Some((header.max_timestamp(), position));
            if self.since_time >= self.interval {
                if let Ok(relative_offset) = relative {
                    time = Some(TimeEntry {
                        timestamp: header.max_timestamp(),
                        relative_offset,
                    });
                    self.since_time = 0;
                }
            }
        }
        self.since_time = self.since_time.saturating_add(header.total_len() as u64);
        let mut entry = None;
        if self.since_index >= self.interval {
            if let (Ok(relative_offset), Ok(position)) = (relative, u32::try_from(position)) {
                entry = Some(IndexEntry {
                    relative_offset,
                    position,
                });
                self.since_index = 0;
            }
        }
        self.since_index = self.since_index.saturating_add(header.total_len() as u64);
        (entry, time)
    }

    /// Bytes between index entries.
    pub(crate) fn interval(&self) -> u64 {
        self.interval
    }

    /// Largest batch maxTimestamp and the position of the first batch carrying it.
    pub(crate) fn max_timestamp(&self) -> Option<(i64, u64)> {
        self.max_timestamp
    }
}
