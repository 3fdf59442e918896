//! Compaction (cleanup.policy=compact): rewriting closed segments so that
//! only the latest record of each key remains.
//!
//! A pass has three steps, so that the partition's appends never wait for
//! the rewriting:
//!
//! 1. [`Log::plan_compaction`] (a shared borrow, briefly): decides whether
//!    the log is due, as Kafka's cleaner does, and opens its own read handles
//!    on the segment files. The cleanable segments are the closed ones older
//!    than `min.compaction.lag.ms`; those below the first dirty offset (what
//!    an earlier pass covered) are clean, the rest dirty. The log is due when
//!    its dirty share of the cleanable bytes exceeds
//!    `min.cleanable.dirty.ratio`, when its oldest dirty record is older
//!    than `max.compaction.lag.ms`, or when a tombstone's delete horizon has
//!    passed. The first dirty offset lives in memory: after a restart the
//!    whole log counts as dirty, so the first pass cleans it all.
//! 2. [`CompactionPlan::build`] (no lock): maps every key to its latest
//!    offset over the whole log, rewrites each cleanable segment that
//!    changes into `<base>.log.cleaned`, and fsyncs it, reading and writing
//!    no faster than the cleaner's I/O budget ([`Throttle`]).
//! 3. [`Log::finish_compaction`] (the write lock, briefly): swaps each
//!    output in, unless the log was truncated meanwhile (the key map may
//!    then name records that are gone: the pass is dropped) or the segment
//!    it replaces was deleted or changed (by retention or DeleteRecords:
//!    that output is dropped). A crash at any point leaves the old or the
//!    new segment; leftover `.cleaned` files are removed on open.
//!
//! Within a batch, surviving records keep their offsets: runs of consecutive
//! offsets become batches of their own, recompressed with the original codec
//! and keeping the producer and timestamp-type fields; a batch that loses
//! nothing is copied byte for byte. Control batches (transaction markers)
//! and each producer's last data batch are always kept whole, so
//! idempotent producers' sequence state survives compaction. Offsets left
//! empty are gaps, as in Kafka.
//!
//! Transactions: a transactional record takes over its key only once the
//! scan has seen its producer's COMMIT marker. Batches of aborted
//! transactions are dropped (unless one is its producer's last batch);
//! batches of transactions still open are kept as they are, and so is the
//! committed value they would replace.
//!
//! Tombstones (null values) expire as in Kafka 2.8+ (KIP-534): the first
//! pass that keeps a batch holding a tombstone rewrites it with the
//! delete-horizon attribute and `now + delete.retention.ms` as its
//! baseTimestamp; a later pass after that horizon removes its tombstones.
//! So a tombstone stays readable for at least `delete.retention.ms` after
//! the cleaner first reached it, whatever the record's own timestamp says
//! (a producer's clock, or an old timestamp, cannot shorten it).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf_protocol::batch::{
    self, build_batch_with, build_batch_with_delete_horizon, BatchHeader, BatchOptions, NewRecord,
    HEADER_LEN,
};

use crate::error::{Result, StorageError};
use crate::format;
use crate::log::Log;
use crate::segment::Segment;

/// What a pass learns from reading the whole log before rewriting any of it.
#[derive(Debug, Default)]
struct Scan {
    /// Every key's latest offset, counting transactional records only once
    /// their transaction committed.
    latest: HashMap<Vec<u8>, i64>,
    /// Each producer id's last data batch, by base offset.
    last_batches: HashMap<i64, i64>,
    /// Base offsets of transactional batches whose transaction aborted.
    aborted: HashSet<i64>,
    /// Base offsets of transactional batches whose transaction is still
    /// open (no marker yet): kept as they are.
    open: HashSet<i64>,
}

/// One producer's transaction seen by the scan without its marker yet: its
/// batches' base offsets and its keyed records (key, offset).
type OpenTxn = (Vec<i64>, Vec<(Vec<u8>, i64)>);

impl Scan {
    /// Records `offset` for `key` unless a later offset is already known (a
    /// committed transaction's records are noted at its marker, after
    /// records that follow them in the log).
    fn note_key(&mut self, key: Vec<u8>, offset: i64) {
        let latest = self.latest.entry(key).or_insert(offset);
        *latest = (*latest).max(offset);
    }
}

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

/// The cleaner's I/O budget (Kafka's log.cleaner.io.max.bytes.per.second):
/// bytes read and written by compaction are counted, and the cleaner sleeps
/// whenever it runs ahead of the rate. It also carries the flag that stops
/// a pass early (a shutting-down broker), checked at every count.
#[derive(Debug)]
pub struct Throttle {
    /// Set to stop the pass: the next count fails with `Cancelled`.
    cancel: Option<Arc<AtomicBool>>,
    /// Bytes per second; `None` is unlimited.
    rate: Option<f64>,
    /// When counting began.
    start: Instant,
    /// Bytes counted since `start`.
    bytes: u64,
}

impl Throttle {
    /// A budget of `bytes_per_second` (`None`, or a non-positive rate: unlimited).
    pub fn new(bytes_per_second: Option<f64>) -> Throttle {
        Throttle {
            cancel: None,
            rate: bytes_per_second.filter(|r| *r > 0.0 && r.is_finite()),
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// Stops passes using this budget once `cancel` is set.
    pub fn with_cancel(mut self, cancel: Arc<AtomicBool>) -> Throttle {
        self.cancel = Some(cancel);
        self
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Counts `bytes` and sleeps as long as the budget requires (in short
    /// steps, so a cancel is seen promptly).
    pub fn consume(&mut self, bytes: u64) -> Result<()> {
        self.bytes = self.bytes.saturating_add(bytes);
        loop {
            if self.cancelled() {
                return Err(StorageError::Cancelled);
            }
            let wait = self.delay(self.start.elapsed());
            if wait.is_zero() {
                return Ok(());
            }
            std::thread::sleep(wait.min(Duration::from_millis(100)));
        }
    }

    /// How long to wait, `elapsed` after the start, so that the bytes
    /// counted so far keep to the rate.
    fn delay(&self, elapsed: Duration) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let due = Duration::try_from_secs_f64(self.bytes as f64 / rate).unwrap_or(Duration::MAX);
        due.saturating_sub(elapsed)
    }
}

/// A segment file opened for the cleaner, read up to `size`.
#[derive(Debug)]
struct SegmentFile {
    base: i64,
    path: PathBuf,
    file: File,
    size: u64,
}

impl SegmentFile {
    fn read(&self, position: u64, len: usize, throttle: &mut Throttle) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| StorageError::io(format!("cleaner reading {}", self.path.display()), e))?;
        throttle.consume(len as u64)?;
        Ok(buf)
    }

    /// Every batch of the file, as (header, bytes).
    fn batches(&self, throttle: &mut Throttle) -> Result<Vec<(BatchHeader, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut position = 0u64;
        while position < self.size {
            let want = (self.size - position).min(HEADER_LEN as u64) as usize;
            let head = self.read(position, want, throttle)?;
            let header = BatchHeader::parse(&head).map_err(|e| self.corrupt(position, e))?;
            let len = header.total_len();
            if position.saturating_add(len as u64) > self.size {
                return Err(self.corrupt(position, "batch runs past the end of the segment"));
            }
            out.push((header, self.read(position, len, throttle)?));
            position = position.saturating_add(len as u64);
        }
        Ok(out)
    }

    fn corrupt(&self, position: u64, reason: impl std::fmt::Display) -> StorageError {
        StorageError::CorruptSegment {
            path: self.path.clone(),
            position,
            reason: reason.to_string(),
        }
    }
}

/// A compaction pass decided on by [`Log::plan_compaction`], to be built
/// without the log's lock.
#[derive(Debug)]
pub struct CompactionPlan {
    /// The time the pass runs at, in ms since the epoch.
    now_ms: i64,
    delete_retention_ms: i64,
    max_decompressed: usize,
    /// Every segment, oldest first; the first `targets` are rewritten.
    sources: Vec<SegmentFile>,
    targets: usize,
    /// The log's truncation count when planned.
    truncations: u64,
    /// Base offset of the first segment not rewritten: the first dirty
    /// offset once the pass is done.
    dirty_end: i64,
}

/// A rewritten segment waiting to be swapped in.
#[derive(Debug)]
struct Output {
    base: i64,
    size_before: u64,
    path: PathBuf,
    removed: u64,
}

/// A built pass, for [`Log::finish_compaction`].
#[derive(Debug)]
pub struct CleanedSegments {
    truncations: u64,
    dirty_end: i64,
    outputs: Vec<Output>,
    /// The earliest delete horizon of a batch still holding tombstones.
    horizon: Option<i64>,
}

impl CleanedSegments {
    /// Removes the outputs (a pass that will not be swapped in).
    fn discard(self) {
        for output in self.outputs {
            if let Err(e) = crate::io::remove_file(&output.path) {
                tracing::warn!(path = %output.path.display(), "could not remove a compaction output: {e}");
            }
        }
    }
}

impl Log {
    /// Compacts the closed segments, given the time in milliseconds, in one
    /// go: plan, build without a budget, swap. Does nothing unless the log
    /// is compacted and due (see the module documentation), or when it is
    /// offline. A failed swap takes the log offline.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionOutcome> {
        let Some(plan) = self.plan_compaction(now_ms)? else {
            return Ok(CompactionOutcome::default());
        };
        let cleaned = plan.build(&mut Throttle::new(None))?;
        self.finish_compaction(cleaned)
    }

    /// Decides whether a compaction pass is due at `now_ms` and, if so,
    /// opens what the pass reads. Cheap: reads one batch header at most.
    pub fn plan_compaction(&self, now_ms: i64) -> Result<Option<CompactionPlan>> {
        if !self.config.compact || self.offline.is_some() || self.older.is_empty() {
            return Ok(None);
        }
        let min_lag = self.config.min_compaction_lag_ms;
        let lag_limit = now_ms.saturating_sub(min_lag);
        let cleanable = self
            .older
            .iter()
            .take_while(|s| min_lag <= 0 || s.max_timestamp().is_none_or(|(ts, _)| ts <= lag_limit))
            .count();
        let end_of = |i: usize| {
            self.older
                .get(i.saturating_add(1))
                .unwrap_or(&self.active)
                .base_offset()
        };
        let (mut clean, mut dirty) = (0u64, 0u64);
        let mut first_dirty = None;
        for (i, segment) in self.older.iter().take(cleanable).enumerate() {
            if end_of(i) <= self.first_dirty_offset {
                clean = clean.saturating_add(segment.size());
            } else {
                dirty = dirty.saturating_add(segment.size());
                first_dirty.get_or_insert(segment);
            }
        }
        let ratio = if clean.saturating_add(dirty) == 0 {
            0.0
        } else {
            dirty as f64 / clean.saturating_add(dirty) as f64
        };
        let max_lag = self.config.max_compaction_lag_ms;
        let overdue = match first_dirty {
            Some(segment) if max_lag < i64::MAX => {
                let first_ts = segment.header_at(0)?.map_or(-1, |h| {
                    if h.has_delete_horizon() {
                        h.max_timestamp()
                    } else {
                        h.base_timestamp()
                    }
                });
                first_ts >= 0 && now_ms.saturating_sub(first_ts) > max_lag
            }
            _ => false,
        };
        let tombstones_due = cleanable > 0 && self.tombstone_horizon.is_some_and(|h| now_ms >= h);
        let due = (dirty > 0 && (ratio > self.config.min_cleanable_dirty_ratio || overdue))
            || tombstones_due;
        if !due {
            return Ok(None);
        }
        let mut sources = Vec::with_capacity(self.segment_count());
        for segment in self.segments() {
            let path = format::log_path(&self.dir, segment.base_offset());
            let file = File::open(&path)
                .map_err(|e| StorageError::io(format!("cleaner opening {}", path.display()), e))?;
            sources.push(SegmentFile {
                base: segment.base_offset(),
                path,
                file,
                size: segment.size(),
            });
        }
        tracing::debug!(
            dir = %self.dir.display(), cleanable, ratio, overdue, tombstones_due, "compaction due"
        );
        Ok(Some(CompactionPlan {
            now_ms,
            delete_retention_ms: self.config.delete_retention_ms,
            max_decompressed: self.config.max_decompressed_batch_bytes,
            sources,
            targets: cleanable,
            truncations: self.truncations,
            dirty_end: end_of(cleanable.saturating_sub(1)),
        }))
    }

    /// Swaps in what [`CompactionPlan::build`] produced (see the module
    /// documentation for what is dropped instead). A failure while swapping
    /// takes the log offline.
    pub fn finish_compaction(&mut self, cleaned: CleanedSegments) -> Result<CompactionOutcome> {
        if self.offline.is_some() || cleaned.truncations != self.truncations {
            tracing::info!(dir = %self.dir.display(), "log truncated or offline during compaction; pass dropped");
            cleaned.discard();
            return Ok(CompactionOutcome::default());
        }
        let result = self.swap_in(cleaned);
        self.offline_on_io_error(result)
    }

    fn swap_in(&mut self, cleaned: CleanedSegments) -> Result<CompactionOutcome> {
        let mut outcome = CompactionOutcome::default();
        let mut outputs = cleaned.outputs.into_iter();
        while let Some(output) = outputs.next() {
            let slot = self
                .older
                .iter()
                .position(|s| s.base_offset() == output.base && s.size() == output.size_before);
            let Some(i) = slot else {
                tracing::debug!(
                    base = output.base,
                    "segment changed during compaction; output dropped"
                );
                crate::io::remove_file(&output.path).map_err(|e| {
                    StorageError::io(format!("removing {}", output.path.display()), e)
                })?;
                continue;
            };
            let fresh = self.replace_segment(output.base, &output.path);
            let fresh = match fresh {
                Ok(fresh) => fresh,
                Err(e) => {
                    for rest in outputs {
                        let _ = crate::io::remove_file(&rest.path);
                    }
                    return Err(e);
                }
            };
            if let Some(slot) = self.older.get_mut(i) {
                *slot = fresh;
            }
            outcome.segments_rewritten += 1;
            outcome.records_removed += output.removed;
        }
        self.first_dirty_offset = self.first_dirty_offset.max(cleaned.dirty_end);
        self.tombstone_horizon = cleaned.horizon;
        if outcome.segments_rewritten > 0 {
            self.dir_dirty = true;
            self.max_timestamp = crate::recovery::log_max_timestamp(self.segments(), &self.config)?;
        }
        Ok(outcome)
    }

    /// Renames `cleaned` over the segment at `base` and opens it.
    fn replace_segment(&self, base: i64, cleaned: &Path) -> Result<Segment> {
        let log_path = format::log_path(&self.dir, base);
        for index in [
            format::index_path(&self.dir, base),
            format::time_index_path(&self.dir, base),
        ] {
            crate::io::remove_file(&index)
                .map_err(|e| StorageError::io(format!("removing {}", index.display()), e))?;
        }
        crate::io::rename(cleaned, &log_path)
            .map_err(|e| StorageError::io(format!("renaming {}", cleaned.display()), e))?;
        Segment::open(&self.dir, base, self.config.index_interval_bytes)
    }
}

impl CompactionPlan {
    /// Builds the pass's outputs without touching the log; reads and writes
    /// count against `throttle`. On failure nothing is left behind.
    pub fn build(self, throttle: &mut Throttle) -> Result<CleanedSegments> {
        let mut outputs = Vec::new();
        let mut horizon = None;
        match self.build_into(throttle, &mut outputs, &mut horizon) {
            Ok(()) => Ok(CleanedSegments {
                truncations: self.truncations,
                dirty_end: self.dirty_end,
                outputs,
                horizon,
            }),
            Err(e) => {
                CleanedSegments {
                    truncations: self.truncations,
                    dirty_end: self.dirty_end,
                    outputs,
                    horizon,
                }
                .discard();
                Err(e)
            }
        }
    }

    fn build_into(
        &self,
        throttle: &mut Throttle,
        outputs: &mut Vec<Output>,
        horizon: &mut Option<i64>,
    ) -> Result<()> {
        let scan = self.scan(throttle)?;
        for source in self.sources.iter().take(self.targets) {
            let rewritten = self.rewrite(source, &scan, throttle)?;
            if let Some(h) = rewritten.horizon {
                *horizon = Some(horizon.map_or(h, |old: i64| old.min(h)));
            }
            if !rewritten.changed {
                continue;
            }
            let path = PathBuf::from(format!("{}{CLEANED_SUFFIX}", source.path.display()));
            let io = |what: &str, e| StorageError::io(format!("{what} {}", path.display()), e);
            outputs.push(Output {
                base: source.base,
                size_before: source.size,
                path: path.clone(),
                removed: rewritten.removed,
            });
            let file =
                crate::io::write_new(&path, &rewritten.bytes).map_err(|e| io("writing", e))?;
            throttle.consume(rewritten.bytes.len() as u64)?;
            crate::io::sync_aux(&file, &path).map_err(|e| io("syncing", e))?;
        }
        Ok(())
    }

    /// Every key's last offset, each producer's last data batch (by base
    /// offset), and the fate of transactional batches, over the whole log as
    /// planned. A transactional record counts for its key only once its
    /// COMMIT marker is seen: an aborted or still open transaction must not
    /// hide the committed value before it.
    fn scan(&self, throttle: &mut Throttle) -> Result<Scan> {
        let mut scan = Scan::default();
        let mut pending: HashMap<i64, OpenTxn> = HashMap::new();
        for source in &self.sources {
            for (header, bytes) in source.batches(throttle)? {
                if header.is_control() {
                    let marker = batch::read_marker(&bytes, &header);
                    let txn = pending.remove(&header.producer_id());
                    if let (Some(marker), Some((bases, keys))) = (marker, txn) {
                        if marker.commit {
                            for (key, offset) in keys {
                                scan.note_key(key, offset);
                            }
                        } else {
                            scan.aborted.extend(bases);
                        }
                    }
                    continue;
                }
                if header.producer_id() >= 0 {
                    scan.last_batches
                        .insert(header.producer_id(), header.base_offset());
                }
                let payload = batch::records_payload(&bytes, &header, self.max_decompressed)?;
                let mut txn = header
                    .is_transactional()
                    .then(|| pending.entry(header.producer_id()).or_default());
                if let Some((bases, _)) = txn.as_mut() {
                    bases.push(header.base_offset());
                }
                for record in batch::records(&header, &payload) {
                    let record = record?;
                    let Some(key) = record.key else { continue };
                    match txn.as_mut() {
                        Some((_, keys)) => keys.push((key.to_vec(), record.offset)),
                        None => scan.note_key(key.to_vec(), record.offset),
                    }
                }
            }
        }
        scan.open = pending.into_values().flat_map(|(bases, _)| bases).collect();
        Ok(scan)
    }

    /// One segment after compaction.
    fn rewrite(
        &self,
        source: &SegmentFile,
        scan: &Scan,
        throttle: &mut Throttle,
    ) -> Result<Rewritten> {
        let mut out = Rewritten::default();
        let new_horizon = self.now_ms.saturating_add(self.delete_retention_ms);
        let latest = &scan.latest;
        for (header, bytes) in source.batches(throttle)? {
            let base = header.base_offset();
            let producers_last = header.producer_id() >= 0
                && scan.last_batches.get(&header.producer_id()) == Some(&base);
            let transactional = header.is_transactional() && !header.is_control();
            if transactional && scan.aborted.contains(&base) && !producers_last {
                // Records of an aborted transaction are dropped whole, as
                // Kafka's cleaner does; the ABORT marker stays.
                out.removed += u64::try_from(header.records_count()).unwrap_or(0);
                out.changed = true;
                continue;
            }
            let open = transactional && scan.open.contains(&base);
            if header.is_control() || producers_last || open {
                out.bytes.extend_from_slice(&bytes);
                continue;
            }
            let payload = batch::records_payload(&bytes, &header, self.max_decompressed)?;
            let horizon_passed =
                header.has_delete_horizon() && self.now_ms >= header.base_timestamp();
            let mut runs: Vec<Vec<batch::Record<'_>>> = Vec::new();
            let mut last_kept: Option<i64> = None;
            let (mut total, mut kept, mut tombstones) = (0u64, 0u64, 0u64);
            for record in batch::records(&header, &payload) {
                let record = record?;
                total += 1;
                let newest = record
                    .key
                    .is_some_and(|k| latest.get(k) == Some(&record.offset));
                let tombstone = record.value.is_none();
                if !newest || (tombstone && horizon_passed) {
                    out.removed += 1;
                    continue;
                }
                kept += 1;
                tombstones += u64::from(tombstone);
                let offset = record.offset;
                match runs.last_mut() {
                    Some(run) if last_kept == Some(offset - 1) => run.push(record),
                    _ => runs.push(vec![record]),
                }
                last_kept = Some(offset);
            }
            // A batch keeping tombstones carries a delete horizon: its own,
            // or one stamped now.
            let horizon = (tombstones > 0).then(|| {
                if header.has_delete_horizon() {
                    header.base_timestamp()
                } else {
                    new_horizon
                }
            });
            if let Some(h) = horizon {
                out.horizon = Some(out.horizon.map_or(h, |old: i64| old.min(h)));
            }
            let stamp = horizon.is_some() && !header.has_delete_horizon();
            if kept == total && !stamp {
                out.bytes.extend_from_slice(&bytes);
                continue;
            }
            out.changed = true;
            let keep_horizon =
                horizon.or(header.has_delete_horizon().then(|| header.base_timestamp()));
            for run in runs {
                out.bytes.extend(rebuild(&header, &run, keep_horizon)?);
            }
        }
        Ok(out)
    }
}

/// A segment's bytes after compaction.
#[derive(Debug, Default)]
struct Rewritten {
    bytes: Vec<u8>,
    removed: u64,
    /// Whether the bytes differ from the segment's.
    changed: bool,
    /// The earliest delete horizon of a batch that keeps tombstones.
    horizon: Option<i64>,
}

/// A batch holding `run` (records with consecutive offsets) with the
/// original batch's codec, timestamp type, producer and epoch fields, and
/// `delete_horizon` stamped when given.
fn rebuild(
    original: &BatchHeader,
    run: &[batch::Record<'_>],
    delete_horizon: Option<i64>,
) -> Result<Vec<u8>> {
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
    Ok(match delete_horizon {
        Some(h) => build_batch_with_delete_horizon(first.offset, &records, &options, h)?,
        None => build_batch_with(first.offset, &records, &options)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_waits_until_the_bytes_fit_the_rate() {
        let mut t = Throttle::new(Some(1000.0));
        t.bytes = 500;
        assert_eq!(t.delay(Duration::ZERO), Duration::from_millis(500));
        assert_eq!(
            t.delay(Duration::from_millis(200)),
            Duration::from_millis(300)
        );
        assert_eq!(t.delay(Duration::from_secs(1)), Duration::ZERO);
        let mut unlimited = Throttle::new(None);
        unlimited.bytes = u64::MAX;
        assert_eq!(unlimited.delay(Duration::ZERO), Duration::ZERO);
        assert!(Throttle::new(Some(0.0)).rate.is_none());
    }

    #[test]
    fn cancelled_throttle_stops_the_pass_even_while_waiting() {
        let cancel = Arc::new(AtomicBool::new(false));
        // One byte per second: 1 000 bytes would wait over 16 minutes.
        let mut t = Throttle::new(Some(1.0)).with_cancel(cancel.clone());
        cancel.store(true, Ordering::Relaxed);
        assert!(matches!(t.consume(1_000), Err(StorageError::Cancelled)));
        let mut free = Throttle::new(None).with_cancel(Arc::new(AtomicBool::new(false)));
        assert!(free.consume(1_000).is_ok());
    }
}
