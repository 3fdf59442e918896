//! One partition's log: an ordered list of segments, the last one active.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use wharf_protocol::batch::{self, BatchHeader, TimestampType};

use crate::error::{Result, StorageError};
use crate::io;
use crate::leader_epoch::LeaderEpochCache;
pub use crate::log_config::LogConfig;
use crate::producer_state::{AbortedTxn, AppendCheck, BatchMeta, ProducerStates};
use crate::recovery;
use crate::segment::{PlacedBatch, Segment};

/// The fsyncs a flush still owes; see [`Log::prepare_sync`].
#[derive(Debug)]
pub struct PendingSync {
    /// Handles of the files written since the previous flush.
    files: Vec<(
        std::sync::Arc<crate::segment::write_pool::PooledFile>,
        PathBuf,
    )>,
    /// The log directory, when segment files were created or removed.
    dir: Option<PathBuf>,
}

impl PendingSync {
    /// fsyncs the files, then the directory.
    pub fn sync(self) -> Result<()> {
        for (file, path) in &self.files {
            io::sync_data(file, path)
                .map_err(|e| StorageError::io(format!("syncing {}", path.display()), e))?;
        }
        if let Some(dir) = &self.dir {
            io::sync_dir(dir)
                .map_err(|e| StorageError::io(format!("syncing {}", dir.display()), e))?;
        }
        Ok(())
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// Largest record timestamp appended.
    pub max_timestamp: i64,
    /// Offset of the first record carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// Records appended.
    pub record_count: u64,
    /// Bytes appended.
    pub bytes: u64,
    /// The append repeated an idempotent producer's batch already in the
    /// log: nothing was written and the offsets are the original ones.
    pub duplicate: bool,
}

impl AppendInfo {
    /// The answer to a retried batch already written as `meta`.
    fn duplicate_of(meta: &BatchMeta) -> AppendInfo {
        AppendInfo {
            base_offset: meta.first_offset,
            last_offset: meta.last_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: meta.first_offset,
            record_count: 0,
            bytes: 0,
            duplicate: true,
        }
    }
}

/// One partition's log. Appends take `&mut self`; reads take `&self`.
#[derive(Debug)]
pub struct Log {
    /// The partition's directory, holding nothing but this log's files.
    pub(crate) dir: PathBuf,
    /// Limits and intervals.
    pub(crate) config: LogConfig,
    /// Segments before the active one, sorted by base offset.
    pub(crate) older: Vec<Segment>,
    /// The segment appends go to; the newest.
    pub(crate) active: Segment,
    /// Offset the next record will get (log end offset).
    pub(crate) next_offset: i64,
    /// First offset readable: at or after the first segment's base offset,
    /// moved by retention and [`Log::advance_log_start`].
    pub(crate) log_start: i64,
    /// Largest timestamp in the log and the offset carrying it.
    pub(crate) max_timestamp: Option<(i64, i64)>,
    /// A segment file was created or removed since the directory was last fsynced.
    pub(crate) dir_dirty: bool,
    /// Records appended since the last flush.
    pub(crate) unflushed_messages: u64,
    /// When the log was last flushed (or opened), in ms since the epoch.
    pub(crate) last_flush_ms: i64,
    /// Idempotent producers' epochs and last batches, rebuilt from the
    /// batch headers on open and after a truncation.
    pub(crate) producers: ProducerStates,
    /// Why the log refuses writes, once a write-side I/O failure has left
    /// what is on disk uncertain (see [`Log::take_offline`]); `None` while
    /// it accepts them.
    pub(crate) offline: Option<String>,
    /// Offsets below this were covered by a compaction pass (Kafka's
    /// cleaner checkpoint, kept in memory: 0 after opening).
    pub(crate) first_dirty_offset: i64,
    /// Truncations so far, so a compaction built meanwhile can tell.
    pub(crate) truncations: u64,
    /// The earliest delete horizon of a compacted batch still holding
    /// tombstones: compaction is due again once it passes.
    pub(crate) tombstone_horizon: Option<i64>,
    /// Draws each segment's segment.jitter.ms share (from its base offset).
    pub(crate) jitter: std::hash::RandomState,
    /// No producer-state snapshot is written until the log is reopened (a
    /// `.txnindex` write failed; only a full scan on open repairs it).
    pub(crate) snapshots_stopped: bool,
    /// Where each leader epoch began; mirrored in the directory's
    /// `leader-epoch-checkpoint`, rewritten whenever it changes.
    pub(crate) epochs: LeaderEpochCache,
}

impl Log {
    /// Opens the log in `dir` (creating it if missing) and recovers it: every
    /// segment's index is loaded or rebuilt, and the last segment is validated
    /// batch by batch, its torn or corrupt tail cut off.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log> {
        recovery::open(dir, config)
    }

    /// Appends the concatenated v2 batches in `records` (a Produce request's
    /// records field). All are validated before anything is written; offsets
    /// are then assigned from the log end by rewriting each batch's base
    /// offset in place, and `leader_epoch` is stamped on each. The bytes are
    /// written (not fsynced) before this returns.
    ///
    /// A failed write never leaves part of the append readable. A failure
    /// from a full disk (ENOSPC, EDQUOT) whose rollback worked leaves the log
    /// writable, as it was before; any other write failure, and any failed
    /// fsync, takes the log offline (see [`Log::take_offline`]).
    pub fn append(&mut self, records: &mut [u8], leader_epoch: i32) -> Result<AppendInfo> {
        self.check_writable()?;
        let validated = self.validate_append(records)?;
        let headers = validated.iter().map(|(_, v)| &v.header);
        let staged = match self.producers.check_append(self.next_offset, headers)? {
            AppendCheck::Accept(staged) => staged,
            AppendCheck::Duplicate(meta) => return Ok(AppendInfo::duplicate_of(&meta)),
        };
        let size = records.len() as u64;
        let limit = self.config.segment_limit();
        if size > limit {
            return Err(StorageError::BatchTooLarge { size, max: limit });
        }
        let record_count: u64 = validated
            .iter()
            .map(|(_, v)| u64::from(v.header.records_count().unsigned_abs()))
            .sum();
        let base_offset = self.next_offset;
        let overflow = StorageError::OffsetOverflow {
            log_end: base_offset,
            count: record_count,
        };
        let end_offset = i64::try_from(record_count)
            .ok()
            .and_then(|n| base_offset.checked_add(n))
            .ok_or(overflow)?;

        let active = &self.active;
        let relative_end = end_offset.saturating_sub(active.base_offset());
        let jitter = roll_jitter(&self.jitter, active.base_offset(), &self.config);
        let aged = crate::segment::now_ms().saturating_sub(active.created_ms())
            > self.config.segment_ms.saturating_sub(jitter);
        if active.size() > 0
            && (active.size().saturating_add(size) > limit
                || relative_end > i64::from(i32::MAX)
                || active.index_full(self.config.index_max_bytes)
                || aged)
        {
            // A failed roll changes nothing in memory; at worst it leaves
            // empty files that the next roll or recovery replaces.
            self.roll().map_err(|e| self.after_failed_append(e, true))?;
        }

        if leader_epoch >= 0
            && self
                .epochs
                .latest_epoch()
                .is_none_or(|latest| leader_epoch > latest)
        {
            // The checkpoint names the epoch before any of its data is
            // written; an entry at the log end is cut on open if the write
            // never happened.
            let assigned = self.assign_epochs([(leader_epoch, base_offset)]);
            assigned.map_err(|e| self.after_failed_append(e, true))?;
        }

        let mut placed = Vec::with_capacity(validated.len());
        let mut offset = base_offset;
        let mut max = None::<(i64, i64)>;
        for (start, v) in &validated {
            let len = v.header.total_len();
            let bytes = start
                .checked_add(len)
                .and_then(|end| records.get_mut(*start..end))
                .ok_or(batch::BatchError::Truncated {
                    needed: len,
                    available: 0,
                })?;
            batch::set_base_offset(bytes, offset)?;
            batch::set_partition_leader_epoch(bytes, leader_epoch)?;
            // As Kafka: a CreateTime batch's maxTimestamp is its largest
            // record timestamp, whatever the producer wrote.
            if v.header.timestamp_type() == TimestampType::CreateTime
                && v.header.records_count() > 0
                && v.max_timestamp != v.header.max_timestamp()
            {
                batch::set_max_timestamp(bytes, v.max_timestamp)?;
            }
            let header = BatchHeader::parse(bytes)?;
            let ts_offset = offset.saturating_add(i64::from(v.max_timestamp_offset_delta));
            if max.is_none_or(|(ts, _)| v.max_timestamp > ts) {
                max = Some((v.max_timestamp, ts_offset));
            }
            placed.push(PlacedBatch {
                start: *start,
                header,
            });
            offset = header.next_offset();
        }

        if let Err(failure) = self.active.append(records, &placed) {
            self.forget_epochs_past_end();
            return Err(self.after_failed_append(failure.error, failure.rolled_back));
        }
        self.producers.commit(staged);
        for p in placed.iter().filter(|p| p.header.is_control()) {
            self.apply_marker(records, p);
        }
        self.next_offset = end_offset;
        self.unflushed_messages = self.unflushed_messages.saturating_add(record_count);
        if self.unflushed_messages >= self.config.flush_messages {
            // The records are written but not durable: the append fails
            // (nothing is acknowledged) and the log goes offline.
            self.flush()?;
        }
        let (max_timestamp, offset_of_max_timestamp) = max.unwrap_or((-1, base_offset));
        if self.max_timestamp.is_none_or(|(ts, _)| max_timestamp > ts) {
            self.max_timestamp = Some((max_timestamp, offset_of_max_timestamp));
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: end_offset.saturating_sub(1),
            max_timestamp,
            offset_of_max_timestamp,
            record_count,
            bytes: size,
            duplicate: false,
        })
    }

    /// Ends the transaction a control batch written at `p` (a position in
    /// `records`) marks, and indexes it when it was aborted.
    fn apply_marker(&mut self, records: &[u8], p: &PlacedBatch) {
        let bytes = records
            .get(p.start..p.start.saturating_add(p.header.total_len()))
            .unwrap_or_default();
        let Some(marker) = batch::read_marker(bytes, &p.header) else {
            return;
        };
        let aborted = self.producers.end_txn(
            p.header.producer_id(),
            p.header.producer_epoch(),
            p.header.base_offset(),
            marker.commit,
        );
        // The marker is in the log; the index is derived from it and
        // rebuilt by the scan on open, so a failed index write must not
        // fail an append that has already happened.
        if let Some(a) = aborted {
            if let Err(e) = crate::txn_index::append(&self.dir, self.active.base_offset(), a.into())
            {
                tracing::warn!(dir = %self.dir.display(), "transaction index not updated (rebuilt on restart): {e}");
                self.stop_producer_snapshots();
            }
        }
    }

    /// Appends batches copied from the partition's leader (a follower's
    /// append, Kafka's appendAsFollower): whole v2 batches, each checked as
    /// [`Log::append`] checks them (sizes, CRC, records), except that the
    /// batch size limit and a compacted log's key requirement are the
    /// leader's business, and batches without records are accepted (the
    /// leader's cleaner leaves them to keep producers' sequences).
    ///
    /// Nothing is rewritten: offsets, partition leader epochs and timestamps
    /// stay as sent. The first batch must start at or after the log end
    /// ([`StorageError::ReplicaBelowLogEnd`] otherwise) and each batch after
    /// the end of the one before it ([`StorageError::ReplicaOffsetsNotIncreasing`]);
    /// gaps, which compaction leaves on the leader, are kept. Producers'
    /// state records every batch without sequence or duplicate checks, and
    /// control batches end transactions as in an append. Each batch's
    /// partition leader epoch newer than the latest known starts that epoch
    /// in the epoch cache.
    ///
    /// Segments roll as for an append, the new one named after the first
    /// batch it gets. Failures are handled as [`Log::append`] handles them,
    /// but an append more than one segment can hold (in bytes, or in
    /// offsets: beyond 2^31) is written in parts, segment by segment, so a
    /// failure may keep its first parts; the follower fetches the rest
    /// again from its new log end. Only a single batch larger than a
    /// segment is refused ([`StorageError::BatchTooLarge`]).
    pub fn append_replicated(&mut self, records: &mut [u8]) -> Result<AppendInfo> {
        self.check_writable()?;
        let validated = self.validate_replicated(records)?;
        let size = records.len() as u64;
        let limit = self.config.segment_limit();
        if let Some((_, v)) = validated
            .iter()
            .find(|(_, v)| v.header.total_len() as u64 > limit)
        {
            return Err(StorageError::BatchTooLarge {
                size: v.header.total_len() as u64,
                max: limit,
            });
        }
        let (Some((_, first)), Some((_, last))) = (validated.first(), validated.last()) else {
            return Err(StorageError::EmptyAppend);
        };
        let base_offset = first.header.base_offset();
        let last_offset = last.header.last_offset();

        let mut epochs = Vec::new();
        for (_, v) in &validated {
            let epoch = v.header.partition_leader_epoch();
            let newest = epochs
                .last()
                .map(|(e, _)| *e)
                .or(self.epochs.latest_epoch());
            if epoch >= 0 && newest.is_none_or(|n| epoch > n) {
                epochs.push((epoch, v.header.base_offset()));
            }
        }
        if !epochs.is_empty() {
            let assigned = self.assign_epochs(epochs);
            assigned.map_err(|e| self.after_failed_append(e, true))?;
        }

        let mut record_count = 0u64;
        let mut max = None::<(i64, i64)>;
        // Parts of the append that one segment can index.
        let mut part_start = 0;
        while let Some((_, head)) = validated.get(part_start) {
            let part_base = head.header.base_offset();
            let mut part_bytes = 0u64;
            let part_len = validated
                .iter()
                .skip(part_start)
                .take_while(|(_, v)| {
                    part_bytes = part_bytes.saturating_add(v.header.total_len() as u64);
                    part_bytes <= limit
                        && v.header.next_offset().saturating_sub(part_base) <= i64::from(i32::MAX)
                })
                .count()
                .max(1);
            let part = validated
                .get(part_start..part_start.saturating_add(part_len))
                .unwrap_or_default();
            part_start = part_start.saturating_add(part_len);
            let (Some((from, _)), Some((last_start, last))) = (part.first(), part.last()) else {
                break;
            };
            let to = last_start.saturating_add(last.header.total_len());
            let bytes = records.get(*from..to).ok_or(batch::BatchError::Truncated {
                needed: to,
                available: records.len(),
            })?;
            let part_end = last.header.next_offset();
            if let Err(e) = self.roll_for_replicated(part_base, part_end, bytes.len() as u64) {
                self.after_failed_replicated_write();
                return Err(e);
            }
            let placed: Vec<PlacedBatch> = part
                .iter()
                .map(|(start, v)| PlacedBatch {
                    start: start.saturating_sub(*from),
                    header: v.header,
                })
                .collect();
            if let Err(failure) = self.active.append(bytes, &placed) {
                self.after_failed_replicated_write();
                return Err(self.after_failed_append(failure.error, failure.rolled_back));
            }
            for (p, (_, v)) in placed.iter().zip(part) {
                if p.header.is_control() {
                    self.apply_marker(bytes, p);
                } else {
                    self.producers.record(&p.header);
                }
                let created = v.header.timestamp_type() == TimestampType::CreateTime
                    && v.header.records_count() > 0;
                let (ts, delta) = if created {
                    (v.max_timestamp, v.max_timestamp_offset_delta)
                } else {
                    (v.header.max_timestamp(), 0)
                };
                let ts_offset = v.header.base_offset().saturating_add(i64::from(delta));
                if max.is_none_or(|(best, _)| ts > best) {
                    max = Some((ts, ts_offset));
                }
                record_count =
                    record_count.saturating_add(u64::from(v.header.records_count().unsigned_abs()));
            }
            self.next_offset = part_end;
            if let Some((ts, offset)) = max {
                if self.max_timestamp.is_none_or(|(best, _)| ts > best) {
                    self.max_timestamp = Some((ts, offset));
                }
            }
        }
        self.unflushed_messages = self.unflushed_messages.saturating_add(record_count);
        if self.unflushed_messages >= self.config.flush_messages {
            self.flush()?;
        }
        let (max_timestamp, offset_of_max_timestamp) = max.unwrap_or((-1, base_offset));
        Ok(AppendInfo {
            base_offset,
            last_offset,
            max_timestamp,
            offset_of_max_timestamp,
            record_count,
            bytes: size,
            duplicate: false,
        })
    }

    /// Makes room in the active segment for a replicated part of `size`
    /// bytes holding offsets `base..end`: rolls under append's rules, the
    /// new segment named after `base`; an empty active segment that cannot
    /// index `end` is replaced by one named after `base`.
    fn roll_for_replicated(&mut self, base: i64, end: i64, size: u64) -> Result<()> {
        let limit = self.config.segment_limit();
        let active = &self.active;
        let relative_end = end.saturating_sub(active.base_offset());
        let overflow = relative_end > i64::from(i32::MAX);
        let jitter = roll_jitter(&self.jitter, active.base_offset(), &self.config);
        let aged = crate::segment::now_ms().saturating_sub(active.created_ms())
            > self.config.segment_ms.saturating_sub(jitter);
        if active.size() > 0
            && (active.size().saturating_add(size) > limit
                || overflow
                || active.index_full(self.config.index_max_bytes)
                || aged)
        {
            let rolled = self
                .start_segment_at(base)
                .map(|()| self.write_producer_snapshot());
            rolled.map_err(|e| self.after_failed_append(e, true))?;
        } else if active.size() == 0 && overflow && base > active.base_offset() {
            let replaced = self.replace_empty_active(base);
            replaced.map_err(|e| self.after_failed_append(e, true))?;
        }
        Ok(())
    }

    /// Replaces the empty active segment with an empty one named after `base`.
    fn replace_empty_active(&mut self, base: i64) -> Result<()> {
        let fresh = Segment::create(&self.dir, base, self.config.index_interval_bytes)?;
        std::mem::replace(&mut self.active, fresh).delete(&self.dir)?;
        self.dir_dirty = true;
        Ok(())
    }

    /// Checks a replicated append (see [`Log::append_replicated`]); returns
    /// each batch's start position and summary.
    fn validate_replicated(&self, records: &[u8]) -> Result<Vec<(usize, batch::ValidatedBatch)>> {
        let max = self.config.max_decompressed_batch_bytes;
        let mut out: Vec<(usize, batch::ValidatedBatch)> = Vec::new();
        let mut batches = batch::batches(records);
        loop {
            let position = batches.position();
            let Some(item) = batches.next() else { break };
            let (_, bytes) = item?;
            let validated = batch::validate_batch(bytes, max)?;
            let header = &validated.header;
            let base_offset = header.base_offset();
            if base_offset < 0
                || header.last_offset_delta() < 0
                || base_offset
                    .checked_add(i64::from(header.last_offset_delta()))
                    .and_then(|last| last.checked_add(1))
                    .is_none()
            {
                return Err(StorageError::ReplicaOffsetsNotIncreasing {
                    position,
                    base_offset,
                    previous_end: self.next_offset,
                });
            }
            match out.last() {
                None if base_offset < self.next_offset => {
                    return Err(StorageError::ReplicaBelowLogEnd {
                        base_offset,
                        log_end: self.next_offset,
                    });
                }
                Some((_, previous)) if base_offset < previous.header.next_offset() => {
                    return Err(StorageError::ReplicaOffsetsNotIncreasing {
                        position,
                        base_offset,
                        previous_end: previous.header.next_offset(),
                    });
                }
                _ => {}
            }
            out.push((position, validated));
        }
        if out.is_empty() {
            return Err(StorageError::EmptyAppend);
        }
        Ok(out)
    }

    /// Starts each (epoch, start offset) in turn in the epoch cache and
    /// rewrites the checkpoint if that changed it. Used before data is
    /// written: when the checkpoint cannot be written, the cache is left
    /// as it was.
    fn assign_epochs(&mut self, starts: impl IntoIterator<Item = (i32, i64)>) -> Result<()> {
        let mut next = self.epochs.clone();
        let mut changed = false;
        for (epoch, start) in starts {
            changed |= next.assign(epoch, start);
        }
        if changed {
            next.write(&self.dir)?;
            self.epochs = next;
        }
        Ok(())
    }

    /// After a failed replicated write: when a segment was started past
    /// the log end for it (named after its first batch) and stayed empty,
    /// the log end moves up to that segment, as reopening would find it; the
    /// leader holds nothing in between (a compaction gap). Then drops the
    /// epochs started past the log end.
    fn after_failed_replicated_write(&mut self) {
        if self.active.size() == 0 && self.active.base_offset() > self.next_offset {
            self.next_offset = self.active.base_offset();
        }
        self.forget_epochs_past_end();
    }

    /// After a failed append: drops the epochs it started at or past the
    /// log end, which hold no data. A failure to rewrite the checkpoint is
    /// only logged (reopening cuts such entries too).
    fn forget_epochs_past_end(&mut self) {
        let end = self.next_offset;
        if let Err(e) = self.change_epochs(|epochs| epochs.truncate_from_end(end)) {
            tracing::warn!(dir = %self.dir.display(), "leader epoch checkpoint not rewritten after a failed append: {e}");
        }
    }

    /// Applies `change` to the epoch cache and rewrites the checkpoint when
    /// it changed anything. Used after the log itself changed, so the cache
    /// follows it even when the write fails (the failure is returned).
    pub(crate) fn change_epochs(
        &mut self,
        change: impl FnOnce(&mut LeaderEpochCache) -> bool,
    ) -> Result<()> {
        if change(&mut self.epochs) {
            self.epochs.write(&self.dir)?;
        }
        Ok(())
    }

    /// Records that leader epoch `epoch` starts at `start_offset`: a new
    /// leader names its epoch at its log end before appending anything, so
    /// followers can learn where their older epochs end (a no-op for an
    /// epoch not newer than the latest).
    pub fn assign_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        self.check_writable()?;
        self.assign_epochs([(epoch, start_offset)])
    }

    /// Empties the log and restarts it at `offset`: a follower whose
    /// leader's log start is past everything it holds.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        self.check_writable()?;
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset(),
                log_end: self.next_offset,
            });
        }
        self.truncations = self.truncations.saturating_add(1);
        self.first_dirty_offset = 0;
        let result = self.restart_at(offset);
        self.offline_on_io_error(result)
    }

    /// The newest leader epoch the log knows of.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// Where leader epoch `epoch` ended in this log, as an
    /// OffsetsForLeaderEpoch answer (see
    /// [`LeaderEpochCache::end_offset_for`]): the latest epoch ends at the
    /// log end offset.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.next_offset)
    }

    /// The epoch cache's (epoch, start offset) entries, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// Validates every batch of an append; returns each one's start position and summary.
    fn validate_append(&self, records: &[u8]) -> Result<Vec<(usize, batch::ValidatedBatch)>> {
        let max = self.config.max_decompressed_batch_bytes;
        let mut out = Vec::new();
        let mut batches = batch::batches(records);
        loop {
            let start = batches.position();
            let Some(item) = batches.next() else { break };
            let (_, bytes) = item?;
            let len = bytes.len() as u64;
            if len > self.config.max_batch_bytes {
                return Err(StorageError::BatchTooLarge {
                    size: len,
                    max: self.config.max_batch_bytes,
                });
            }
            let validated = batch::validate_batch(bytes, max)?;
            if self.config.compact && !validated.header.is_control() {
                let payload = batch::records_payload(bytes, &validated.header, max)?;
                // Every keyless record is named (KIP-467's per-record
                // errors), not only the first.
                let mut keyless = Vec::new();
                for (index, record) in batch::records(&validated.header, &payload).enumerate() {
                    if record?.key.is_none() {
                        keyless.push(i32::try_from(index).unwrap_or(i32::MAX));
                    }
                }
                if !keyless.is_empty() {
                    return Err(StorageError::KeylessRecords { indexes: keyless });
                }
            }
            if validated.header.records_count() == 0 {
                return Err(StorageError::EmptyBatch { position: start });
            }
            out.push((start, validated));
        }
        if out.is_empty() {
            return Err(StorageError::EmptyAppend);
        }
        Ok(out)
    }

    /// Whole batches starting with the one holding `offset`, at most
    /// `max_bytes` in total, from a single segment; or the first batch alone
    /// when it is bigger and `min_one` is set. Empty at the log end offset.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<Bytes> {
        self.check_range(offset)?;
        if offset == self.next_offset {
            return Ok(Bytes::new());
        }
        let first = if offset >= self.active.base_offset() {
            self.older.len()
        } else {
            self.older
                .partition_point(|s| s.base_offset() <= offset)
                .saturating_sub(1)
        };
        for segment in self.segments().skip(first) {
            if let Some((position, header)) = segment.find_batch(offset)? {
                let bytes = segment.read_batches(position, &header, max_bytes, min_one)?;
                return Ok(Bytes::from(bytes));
            }
        }
        Ok(Bytes::new())
    }

    fn check_range(&self, offset: i64) -> Result<()> {
        let (log_start, log_end) = (self.log_start_offset(), self.next_offset);
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start,
                log_end,
            });
        }
        Ok(())
    }

    /// The last stable offset: the first offset of the oldest open
    /// transaction, or the log end when none is open.
    pub fn last_stable_offset(&self) -> i64 {
        self.producers
            .first_unstable_offset()
            .map_or(self.next_offset, |o| o.min(self.next_offset))
    }

    /// Forgets aborted transactions wholly below the log start, after
    /// retention or DeleteRecords moved it.
    pub fn forget_aborted_below_log_start(&mut self) {
        let start = self.log_start_offset();
        self.producers.forget_aborted_before(start);
    }

    /// Aborted transactions with data in `[from, to)`.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.producers.aborted_between(from, to)
    }

    /// First offset in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start
            .max(self.older.first().unwrap_or(&self.active).base_offset())
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the log's settings; later appends, rolls and retention
    /// checks follow them.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.next_offset
    }

    /// The earliest record at or after the log start whose timestamp is
    /// >= `ts`: its offset and timestamp.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let log_start = self.log_start_offset();
        let candidates = self
            .segments()
            .filter(|s| s.max_timestamp().is_some_and(|(max, _)| max >= ts));
        for segment in candidates {
            let start = segment.timestamp_search_start(ts)?;
            for item in segment.headers_from(start) {
                let (position, header) = item?;
                if header.max_timestamp() < ts {
                    continue;
                }
                if header.last_offset() < log_start {
                    continue;
                }
                let found = find_record(segment, position, &header, &self.config, |o, t| {
                    o >= log_start && t >= ts
                })?;
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        Ok(None)
    }

    /// Idempotent producers' state in this log.
    pub fn producer_states(&self) -> &ProducerStates {
        &self.producers
    }

    /// The largest timestamp in the log and the offset of the first record carrying it.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.max_timestamp
    }

    /// fsyncs every segment written since the last flush, and the directory if
    /// segments were created or removed.
    pub fn flush(&mut self) -> Result<()> {
        self.check_writable()?;
        let flushed = self.flush_segments();
        self.offline_on_io_error(flushed)?;
        self.unflushed_messages = 0;
        self.last_flush_ms = crate::segment::now_ms();
        Ok(())
    }

    /// Flushes when records have been waiting longer than `flush_ms` at
    /// time `now_ms`; returns whether it did.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<bool> {
        if self.offline.is_some()
            || self.unflushed_messages == 0
            || now_ms.saturating_sub(self.last_flush_ms) < self.config.flush_ms
        {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// Records appended since the last flush.
    pub fn unflushed_messages(&self) -> u64 {
        self.unflushed_messages
    }

    /// Starts a flush that finishes without `&mut self`: takes handles of
    /// every file written since the last flush (and of the
    /// directory, if segments were created or removed) and counts the log as
    /// flushed. Calling [`PendingSync::sync`] afterwards, with no lock held,
    /// makes everything appended before this call durable, so appends need
    /// not wait for the disk.
    pub fn prepare_sync(&mut self) -> Result<PendingSync> {
        self.check_writable()?;
        let prepared = self.take_pending_sync();
        self.offline_on_io_error(prepared)
    }

    fn take_pending_sync(&mut self) -> Result<PendingSync> {
        let mut files = Vec::new();
        for segment in self.older.iter_mut() {
            files.extend(segment.take_sync_handles()?);
        }
        files.extend(self.active.take_sync_handles()?);
        let dir = if self.dir_dirty {
            self.dir_dirty = false;
            Some(self.dir.clone())
        } else {
            None
        };
        self.unflushed_messages = 0;
        self.last_flush_ms = crate::segment::now_ms();
        Ok(PendingSync { files, dir })
    }

    fn flush_segments(&mut self) -> Result<()> {
        for segment in self.older.iter_mut() {
            segment.flush()?;
        }
        self.active.flush()?;
        if self.dir_dirty {
            io::sync_dir(&self.dir)
                .map_err(|e| StorageError::io(format!("syncing {}", self.dir.display()), e))?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Drops every record at or after `offset`. Batches are never split: a
    /// batch straddling `offset` is dropped whole, so the log end becomes the
    /// largest batch boundary <= `offset`. Truncating to or below the log
    /// start empties the log and restarts it at `offset`. Negative offsets
    /// are out of range.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        self.check_writable()?;
        let result = self.truncate_inner(offset);
        self.offline_on_io_error(result)
    }

    fn truncate_inner(&mut self, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset(),
                log_end: self.next_offset,
            });
        }
        if offset >= self.next_offset {
            // No record goes, but an epoch this log started at its end and
            // never wrote under (a leader deposed before its first append)
            // does: it conflicts with the new leader's history.
            let end = self.next_offset;
            return self.change_epochs(|cache| cache.truncate_from_end(end));
        }
        self.truncations = self.truncations.saturating_add(1);
        self.first_dirty_offset = self.first_dirty_offset.min(offset);
        if offset <= self.log_start_offset() {
            return self.restart_at(offset);
        }
        while self.active.base_offset() >= offset {
            let Some(previous) = self.older.pop() else {
                break; // unreachable: offset > log start
            };
            std::mem::replace(&mut self.active, previous).delete(&self.dir)?;
            self.active.reactivate();
            self.dir_dirty = true;
        }
        // The batch holding `offset` goes whole; when `offset` falls in a
        // gap left by compaction, the log ends at `offset` itself.
        self.next_offset = match self.active.find_batch(offset)? {
            Some((position, header)) => {
                self.active.truncate_to(position)?;
                header.base_offset().min(offset)
            }
            None => offset,
        };
        if recovery::segment_end_offset(&self.active)? < self.next_offset {
            // The log now ends in a gap: an empty segment named after the
            // log end keeps that end across a reopen.
            self.start_segment_at_log_end()?;
        }
        // A batch straddling both the log start and `offset` went whole.
        self.log_start = self.log_start.min(self.next_offset);
        self.max_timestamp = recovery::log_max_timestamp(self.segments(), &self.config)?;
        crate::snapshot::delete_above(&self.dir, self.next_offset)?;
        self.producers =
            recovery::producer_states(&self.dir, &self.older, &self.active, self.config.compact)?;
        let end = self.next_offset;
        self.change_epochs(|epochs| epochs.truncate_from_end(end))?;
        Ok(())
    }

    /// Deletes every segment and starts an empty log at `offset`.
    fn restart_at(&mut self, offset: i64) -> Result<()> {
        for segment in self.older.drain(..) {
            segment.delete(&self.dir)?;
        }
        if self.active.base_offset() == offset {
            self.active.truncate_to(0)?;
        } else {
            let fresh = Segment::create(&self.dir, offset, self.config.index_interval_bytes)?;
            std::mem::replace(&mut self.active, fresh).delete(&self.dir)?;
        }
        self.next_offset = offset;
        self.log_start = offset;
        self.max_timestamp = None;
        self.producers.clear();
        // No aborted transaction is left: a reused segment's index goes too.
        crate::txn_index::reconcile(&self.dir, &std::collections::BTreeMap::new())?;
        crate::snapshot::delete_above(&self.dir, i64::MIN)?;
        self.dir_dirty = true;
        self.change_epochs(LeaderEpochCache::clear)?;
        Ok(())
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir;
        drop(self.older);
        drop(self.active);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| StorageError::io(format!("removing {}", dir.display()), e))
    }

    /// Stops the log accepting writes until it is reopened (a broker
    /// restart), as Kafka takes a failed log directory offline. Called when
    /// a write-side I/O call failed in a way that leaves the files'
    /// contents uncertain, above all a failed fsync: after one, the kernel
    /// may have dropped the dirty pages it could not write and a later fsync
    /// can report success without them, so nothing appended since the last
    /// good fsync may be counted durable. Reads go on; reopening runs
    /// recovery, which validates the last segment and cuts what is invalid.
    pub fn take_offline(&mut self, reason: &dyn std::fmt::Display) {
        if self.offline.is_none() {
            tracing::error!(
                dir = %self.dir.display(),
                "log taken offline after a failed write: {reason}; it refuses writes until the broker restarts"
            );
            self.offline = Some(reason.to_string());
        }
    }

    /// Why the log refuses writes, if it does (see [`Log::take_offline`]).
    pub fn offline_reason(&self) -> Option<&str> {
        self.offline.as_deref()
    }

    /// Refuses a write to an offline log.
    pub(crate) fn check_writable(&self) -> Result<()> {
        match &self.offline {
            None => Ok(()),
            Some(reason) => Err(StorageError::LogOffline {
                dir: self.dir.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Takes the log offline when `result` is an I/O failure.
    pub(crate) fn offline_on_io_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e @ StorageError::Io { .. }) = &result {
            self.take_offline(e);
        }
        result
    }

    /// Decides what a failed append write leaves: a full disk with nothing
    /// of the append left behind (`clean`) keeps the log writable, since
    /// space may be freed and the files are as they were; anything else
    /// takes it offline. Returns the error for the caller.
    fn after_failed_append(&mut self, error: StorageError, clean: bool) -> StorageError {
        if clean && error.is_disk_full() {
            tracing::error!(
                dir = %self.dir.display(),
                "append failed, disk full: {error}; nothing of it was kept"
            );
        } else {
            self.take_offline(&error);
        }
        error
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of segments (at least one).
    pub fn segment_count(&self) -> usize {
        self.older.len().saturating_add(1)
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments().map(Segment::base_offset).collect()
    }

    /// Starts a new active segment at the log end offset.
    pub fn roll(&mut self) -> Result<()> {
        if self.active.size() == 0 {
            return Ok(());
        }
        self.start_segment_at_log_end()?;
        self.write_producer_snapshot();
        Ok(())
    }

    /// Makes a new, empty segment named after the log end the active one.
    fn start_segment_at_log_end(&mut self) -> Result<()> {
        self.start_segment_at(self.next_offset)
    }

    /// Makes a new, empty segment named after `base` (at or after the log
    /// end) the active one.
    fn start_segment_at(&mut self, base: i64) -> Result<()> {
        // A segment leaves the active slot with its indexes whole on disk.
        self.active.persist_indexes()?;
        let fresh = Segment::create(&self.dir, base, self.config.index_interval_bytes)?;
        let mut previous = std::mem::replace(&mut self.active, fresh);
        previous.close();
        self.older.push(previous);
        self.dir_dirty = true;
        Ok(())
    }

    /// Every segment, oldest first, the active one last.
    pub(crate) fn segments(&self) -> impl Iterator<Item = &Segment> + Clone {
        self.older.iter().chain(std::iter::once(&self.active))
    }
}

/// How much sooner than segment.ms the segment at `base_offset` rolls: a
/// random share, fixed per segment, below both segment.jitter.ms and
/// segment.ms, as Kafka draws it.
fn roll_jitter(state: &std::hash::RandomState, base_offset: i64, config: &LogConfig) -> i64 {
    use std::hash::BuildHasher;
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    match u64::try_from(bound) {
        Ok(bound) if bound > 0 => i64::try_from(state.hash_one(base_offset) % bound).unwrap_or(0),
        _ => 0,
    }
}

/// The first record of the batch at `position` whose (offset, timestamp) satisfies `pred`.
pub(crate) fn find_record(
    segment: &Segment,
    position: u64,
    header: &BatchHeader,
    config: &LogConfig,
    pred: impl Fn(i64, i64) -> bool,
) -> Result<Option<(i64, i64)>> {
    let bytes = segment.read_exact(position, header.total_len())?;
    let payload = batch::records_payload(&bytes, header, config.max_decompressed_batch_bytes)?;
    for record in batch::records(header, &payload) {
        let record = record?;
        if pred(record.offset, record.timestamp) {
            return Ok(Some((record.offset, record.timestamp)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_jitter_is_fixed_per_segment_and_below_both_limits() {
        let state = std::hash::RandomState::new();
        let config = LogConfig {
            segment_ms: 1_000,
            segment_jitter_ms: 5_000,
            ..LogConfig::default()
        };
        let draws: Vec<i64> = (0..200).map(|b| roll_jitter(&state, b, &config)).collect();
        assert!(draws.iter().all(|j| (0..1_000).contains(j)));
        assert!(
            draws.iter().any(|j| *j != draws[0]),
            "jitter varies by segment"
        );
        assert_eq!(roll_jitter(&state, 7, &config), draws[7]);
        let none = LogConfig::default();
        assert_eq!(roll_jitter(&state, 7, &none), 0);
    }
}
