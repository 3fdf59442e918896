//! Compaction (cleanup.policy=compact): rewriting closed segments so that
//! only the latest record of each key remains.
//!
//! One pass builds a map of every key's last offset over the whole log, then
//! rewrites each closed segment (never the active one) older than
//! `min_compaction_lag_ms`. Within a batch, surviving records keep their
//! offsets: runs of consecutive offsets become batches of their own,
//! recompressed with the original codec and keeping the original producer
//! and timestamp-type fields; a batch that loses nothing is copied byte for
//! byte, and control batches are always kept. Tombstones (null values) go
//! once they are older than `delete_retention_ms`. Offsets left empty are
//! gaps, as in Kafka: a read at one returns the next record.
//!
//! A rewritten segment is written to `<base>.log.cleaned`, synced, its
//! indexes removed, then renamed over `<base>.log` and reopened (rebuilding
//! the indexes). A crash at any point leaves the old or the new segment;
//! leftover `.cleaned` files are removed when the log is opened.
//!
//! Not implemented: `min.cleanable.dirty.ratio` (every pass considers the
//! whole log), an I/O budget, and Kafka's per-batch delete horizon (a
//! tombstone's age is its own timestamp's).

use std::collections::HashMap;

use wharf_protocol::batch::{self, build_batch_with, BatchHeader, BatchOptions, NewRecord};

use crate::error::{Result, StorageError};
use crate::format;
use crate::log::Log;
use crate::segment::Segment;

/// Suffix of a segment being rewritten.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Segments rewritten.
    pub segments_rewritten: usize,
    /// Records removed.
    pub records_removed: u64,
}

impl Log {
    /// Compacts the closed segments, given the time in milliseconds. Does
    /// nothing unless the log is compacted (`config.compact`), or when it is
    /// offline. A failed write or swap takes the log offline.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionOutcome> {
        if self.offline.is_some() {
            return Ok(CompactionOutcome::default());
        }
        let result = self.compact_inner(now_ms);
        self.offline_on_io_error(result)
    }

    fn compact_inner(&mut self, now_ms: i64) -> Result<CompactionOutcome> {
        let mut outcome = CompactionOutcome::default();
        if !self.config.compact || self.older.is_empty() {
            return Ok(outcome);
        }
        let latest = self.latest_offsets()?;
        let lag_limit = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        let tombstone_limit = now_ms.saturating_sub(self.config.delete_retention_ms);
        for i in 0..self.older.len() {
            let Some(segment) = self.older.get(i) else {
                break;
            };
            if self.config.min_compaction_lag_ms > 0
                && segment
                    .max_timestamp()
                    .is_some_and(|(ts, _)| ts > lag_limit)
            {
                break; // this and later segments are too recent
            }
            let (bytes, removed) = self.rewrite(segment, &latest, tombstone_limit)?;
            if removed == 0 {
                continue;
            }
            let base = segment.base_offset();
            let fresh = self.replace_segment(base, &bytes)?;
            if let Some(slot) = self.older.get_mut(i) {
                *slot = fresh;
            }
            outcome.segments_rewritten += 1;
            outcome.records_removed += removed;
        }
        if outcome.segments_rewritten > 0 {
            self.dir_dirty = true;
            self.max_timestamp = crate::recovery::log_max_timestamp(self.segments(), &self.config)?;
        }
        Ok(outcome)
    }

    /// Every key's last offset in the log.
    fn latest_offsets(&self) -> Result<HashMap<Vec<u8>, i64>> {
        let mut latest = HashMap::new();
        for segment in self.segments() {
            for item in segment.headers_from(0) {
                let (position, header) = item?;
                if header.is_control() {
                    continue;
                }
                let bytes = segment.read_exact(position, header.total_len())?;
                let max = self.config.max_decompressed_batch_bytes;
                let payload = batch::records_payload(&bytes, &header, max)?;
                for record in batch::records(&header, &payload) {
                    let record = record?;
                    if let Some(key) = record.key {
                        latest.insert(key.to_vec(), record.offset);
                    }
                }
            }
        }
        Ok(latest)
    }

    /// The segment's bytes after compaction, and how many records went.
    fn rewrite(
        &self,
        segment: &Segment,
        latest: &HashMap<Vec<u8>, i64>,
        tombstone_limit: i64,
    ) -> Result<(Vec<u8>, u64)> {
        let mut out = Vec::new();
        let mut removed = 0u64;
        for item in segment.headers_from(0) {
            let (position, header) = item?;
            let bytes = segment.read_exact(position, header.total_len())?;
            if header.is_control() {
                out.extend_from_slice(&bytes);
                continue;
            }
            let max = self.config.max_decompressed_batch_bytes;
            let payload = batch::records_payload(&bytes, &header, max)?;
            let mut runs: Vec<Vec<batch::Record<'_>>> = Vec::new();
            let mut last_kept: Option<i64> = None;
            let mut total = 0u64;
            for record in batch::records(&header, &payload) {
                let record = record?;
                total += 1;
                let newest = record
                    .key
                    .is_some_and(|k| latest.get(k) == Some(&record.offset));
                let expired_tombstone =
                    record.value.is_none() && record.timestamp < tombstone_limit;
                if !newest || expired_tombstone {
                    removed += 1;
                    continue;
                }
                match runs.last_mut() {
                    Some(run) if last_kept == Some(record.offset - 1) => run.push(record.clone()),
                    _ => runs.push(vec![record.clone()]),
                }
                last_kept = Some(record.offset);
            }
            let kept: u64 = runs.iter().map(|r| r.len() as u64).sum();
            if kept == total {
                out.extend_from_slice(&bytes);
                continue;
            }
            for run in runs {
                out.extend(rebuild(&header, &run)?);
            }
        }
        Ok((out, removed))
    }

    /// Swaps in `bytes` as the segment at `base` and opens it.
    fn replace_segment(&self, base: i64, bytes: &[u8]) -> Result<Segment> {
        let log_path = format::log_path(&self.dir, base);
        let cleaned = std::path::PathBuf::from(format!("{}{CLEANED_SUFFIX}", log_path.display()));
        let io = |what: &str, e| StorageError::io(format!("{what} {}", cleaned.display()), e);
        let file = crate::io::write_new(&cleaned, bytes).map_err(|e| io("writing", e))?;
        crate::io::sync_all(&file, &cleaned).map_err(|e| io("syncing", e))?;
        for index in [
            format::index_path(&self.dir, base),
            format::time_index_path(&self.dir, base),
        ] {
            crate::io::remove_file(&index)
                .map_err(|e| StorageError::io(format!("removing {}", index.display()), e))?;
        }
        crate::io::rename(&cleaned, &log_path).map_err(|e| io("renaming", e))?;
        Segment::open(&self.dir, base, self.config.index_interval_bytes)
    }
}

/// A batch holding `run` (records with consecutive offsets) with the
/// original batch's codec, timestamp type, producer and epoch fields.
fn rebuild(original: &BatchHeader, run: &[batch::Record<'_>]) -> Result<Vec<u8>> {
    let Some(first) = run.first() else {
        return Ok(Vec::new());
    };
    let skipped = first.offset.saturating_sub(original.base_offset());
    let base_sequence = if original.base_sequence() >= 0 {
        i32::try_from(i64::from(original.base_sequence()) + skipped).unwrap_or(-1)
    } else {
        -1
    };
    let options = BatchOptions {
        compression: original.compression(),
        timestamp_type: original.timestamp_type(),
        transactional: original.is_transactional(),
        producer_id: original.producer_id(),
        producer_epoch: original.producer_epoch(),
        base_sequence,
        partition_leader_epoch: original.partition_leader_epoch(),
    };
    let records: Vec<NewRecord<'_>> = run
        .iter()
        .map(|r| NewRecord {
            key: r.key,
            value: r.value,
            timestamp: r.timestamp,
            headers: r.headers.iter().map(|h| (h.key, h.value)).collect(),
        })
        .collect();
    Ok(build_batch_with(first.offset, &records, &options)?)
}
