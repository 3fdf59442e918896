//! Opening a log directory and bringing it back to a consistent state.
//!
//! Recovery trusts every segment but the last (they were complete when the
//! log rolled past them) and only rebuilds their index when it is missing or
//! implausible. The last segment may end in a torn write or garbage after a
//! crash: it is validated batch by batch (sizes, CRC, records, increasing
//! offsets) and cut at the end of the last good batch; its index is rebuilt
//! from that scan.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use tracing::{info, warn};
use wharf_protocol::batch::{self, BatchHeader, HEADER_LEN};

use crate::error::{Result, StorageError};
use crate::format::{self, FileKind};
use crate::leader_epoch::LeaderEpochCache;
use crate::log::{find_record, Log, LogConfig};
use crate::producer_state::ProducerStates;
use crate::segment::{file_len, open_rw, BatchTracker, Segment};

/// See [`Log::open`].
pub(crate) fn open(dir: &Path, config: LogConfig) -> Result<Log> {
    fs::create_dir_all(dir)
        .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
    let (logs, indexes) = list_segments(dir)?;
    for orphan in indexes.difference(&logs) {
        for path in [
            format::index_path(dir, *orphan),
            format::time_index_path(dir, *orphan),
        ] {
            if path.exists() {
                crate::io::remove_file(&path)
                    .map_err(|e| StorageError::io(format!("removing {}", path.display()), e))?;
                warn!(path = %path.display(), "removed index without a segment");
            }
        }
    }
    let mut bases: Vec<i64> = logs.into_iter().collect();
    let (older, active, next_offset) = match bases.pop() {
        None => (
            Vec::new(),
            Segment::create(dir, 0, config.index_interval_bytes)?,
            0,
        ),
        Some(last) => {
            let older = bases
                .iter()
                .map(|base| Segment::open(dir, *base, config.index_interval_bytes))
                .collect::<Result<Vec<_>>>()?;
            let (active, next_offset) = recover_last(dir, last, &config)?;
            (older, active, next_offset)
        }
    };
    let segments = older.iter().chain(std::iter::once(&active));
    let max_timestamp = log_max_timestamp(segments, &config)?;
    let (producers, snapshot) =
        open_producer_states(dir, &older, &active, next_offset, config.compact)?;
    let epochs = open_epoch_cache(dir, &older, &active, next_offset)?;
    info!(
        dir = %dir.display(),
        segments = older.len() + 1,
        log_end_offset = next_offset,
        producers = producers.len(),
        producer_snapshot = snapshot.unwrap_or(-1),
        latest_leader_epoch = epochs.latest_epoch().unwrap_or(-1),
        "log opened"
    );
    Ok(Log {
        dir: dir.to_path_buf(),
        config,
        older,
        active,
        next_offset,
        log_start: 0,
        max_timestamp,
        dir_dirty: true,
        unflushed_messages: 0,
        last_flush_ms: crate::segment::now_ms(),
        producers,
        offline: None,
        first_dirty_offset: 0,
        truncations: 0,
        tombstone_horizon: None,
        jitter: std::hash::RandomState::new(),
        snapshots_stopped: false,
        epochs,
    })
}

/// The leader epoch cache on open: the directory's checkpoint, or, when it
/// is missing or unreadable, one rebuilt from the partition leader epochs
/// in the batch headers; either way cut at `log_end` so it names no offset
/// the log lost. The checkpoint is rewritten when that changed anything.
fn open_epoch_cache(
    dir: &Path,
    older: &[Segment],
    active: &Segment,
    log_end: i64,
) -> Result<LeaderEpochCache> {
    let (mut epochs, mut changed) = match LeaderEpochCache::read(dir) {
        Ok(Some(epochs)) => (epochs, false),
        found => {
            if let Err(reason) = &found {
                warn!(dir = %dir.display(), "leader epoch checkpoint unusable ({reason}); rebuilding it from the segments");
            }
            let rebuilt = rebuild_epoch_cache(older, active)?;
            // A missing checkpoint of a log without epochs stays missing.
            let changed = found.is_err() || !rebuilt.entries().is_empty();
            (rebuilt, changed)
        }
    };
    changed |= epochs.truncate_from_end(log_end);
    if changed {
        epochs.write(dir)?;
    }
    Ok(epochs)
}

/// The leader epoch cache the batch headers of every segment describe.
pub(crate) fn rebuild_epoch_cache(older: &[Segment], active: &Segment) -> Result<LeaderEpochCache> {
    let mut epochs = LeaderEpochCache::new();
    for segment in older.iter().chain(std::iter::once(active)) {
        for item in segment.headers_from(0) {
            let (_, header) = item?;
            epochs.assign(header.partition_leader_epoch(), header.base_offset());
        }
    }
    Ok(epochs)
}

/// Base offsets of the `.log` files and of the `.index` files in `dir`.
fn list_segments(dir: &Path) -> Result<(BTreeSet<i64>, BTreeSet<i64>)> {
    let listing_error = |e| StorageError::io(format!("listing {}", dir.display()), e);
    let mut logs = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(listing_error)? {
        let entry = entry.map_err(listing_error)?;
        let name = entry.file_name();
        match name.to_str().and_then(format::parse_file_name) {
            Some((base, FileKind::Log)) => {
                logs.insert(base);
            }
            Some((base, FileKind::Index | FileKind::TimeIndex)) => {
                indexes.insert(base);
            }
            None if name
                .to_str()
                .is_some_and(|n| n.ends_with(crate::compaction::CLEANED_SUFFIX)) =>
            {
                // A compaction interrupted before its rename: the original stands.
                warn!(path = %entry.path().display(), "removing an unfinished compaction output");
                crate::io::remove_file(&entry.path()).map_err(listing_error)?;
            }
            None => {}
        }
    }
    Ok((logs, indexes))
}

/// Validates the last segment batch by batch, cuts it after the last good
/// batch, and rebuilds its index. Returns the segment and the log end offset.
fn recover_last(dir: &Path, base_offset: i64, config: &LogConfig) -> Result<(Segment, i64)> {
    let path = format::log_path(dir, base_offset);
    let file = open_rw(&path, false)?;
    let size = file_len(&file, &path)?;
    let read = |position: u64, len: u64| -> Result<Vec<u8>> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, position)
            .map_err(|e| StorageError::io(format!("recovering {}", path.display()), e))?;
        Ok(buf)
    };
    let mut tracker = BatchTracker::new(base_offset, config.index_interval_bytes);
    let mut entries = Vec::new();
    let mut time_entries = Vec::new();
    let mut position = 0u64;
    let mut next_offset = base_offset;
    let problem = loop {
        let remaining = size.saturating_sub(position);
        if remaining == 0 {
            break None;
        }
        let head = read(position, remaining.min(HEADER_LEN as u64))?;
        let header = match BatchHeader::parse(&head) {
            Ok(h) => h,
            Err(e) => break Some(e.to_string()),
        };
        let total = header.total_len() as u64;
        if total > remaining {
            break Some(format!(
                "batch of {total} bytes but only {remaining} remain"
            ));
        }
        let bytes = read(position, total)?;
        if let Err(e) = batch::validate(&bytes, config.max_decompressed_batch_bytes) {
            break Some(e.to_string());
        }
        if header.base_offset() < next_offset {
            break Some(format!(
                "batch base offset {} is below the expected {next_offset}",
                header.base_offset()
            ));
        }
        let (entry, time) = tracker.observe(position, &header);
        entries.extend(entry);
        time_entries.extend(time);
        next_offset = header.next_offset();
        position = position.saturating_add(total);
    };
    if let Some(reason) = problem {
        warn!(
            path = %path.display(),
            position,
            bytes_cut = size.saturating_sub(position),
            log_end_offset = next_offset,
            %reason,
            "truncating torn or corrupt tail of the last segment"
        );
        crate::io::set_len(&file, &path, position)
            .map_err(|e| StorageError::io(format!("truncating {}", path.display()), e))?;
    }
    let segment = Segment::from_recovered(
        dir,
        base_offset,
        file,
        position,
        entries,
        time_entries,
        tracker,
    )?;
    Ok((segment, next_offset))
}

/// The offset after the last batch of `segment` (its base offset when empty).
pub(crate) fn segment_end_offset(segment: &Segment) -> Result<i64> {
    let mut end = segment.base_offset();
    for item in segment.headers_from(segment.last_indexed_position()) {
        end = item?.1.next_offset();
    }
    Ok(end)
}

/// The largest batch maxTimestamp over `segments`, with the offset of the
/// first record carrying it; `None` for an empty log.
pub(crate) fn log_max_timestamp<'a>(
    segments: impl Iterator<Item = &'a Segment>,
    config: &LogConfig,
) -> Result<Option<(i64, i64)>> {
    let mut best: Option<(&Segment, i64, u64)> = None;
    for segment in segments {
        if let Some((ts, position)) = segment.max_timestamp() {
            if best.is_none_or(|(_, best_ts, _)| ts > best_ts) {
                best = Some((segment, ts, position));
            }
        }
    }
    let Some((segment, ts, position)) = best else {
        return Ok(None);
    };
    let Some(header) = segment.header_at(position)? else {
        return Ok(None);
    };
    let found = find_record(segment, position, &header, config, |_, t| t == ts)?;
    let offset = found.map_or(header.last_offset(), |(offset, _)| offset);
    Ok(Some((ts, offset)))
}

/// Idempotent producers' state on open: from the latest usable snapshot at
/// or below `log_end` and the batches after it, else by a full scan (see
/// [`producer_states`]), with the offset of the snapshot used. Snapshots above `log_end` (the tail they describe
/// was lost) are deleted first. A compacted log is always scanned in full:
/// compaction rewrites closed segments after their snapshots were taken.
pub(crate) fn open_producer_states(
    dir: &Path,
    older: &[Segment],
    active: &Segment,
    log_end: i64,
    compacted: bool,
) -> Result<(ProducerStates, Option<i64>)> {
    crate::snapshot::delete_above(dir, log_end)?;
    if !compacted {
        for offset in crate::snapshot::list(dir)?.into_iter().rev() {
            if let Some(states) = resume_from_snapshot(dir, older, active, offset)? {
                return Ok((states, Some(offset)));
            }
        }
    }
    Ok((producer_states(dir, older, active, compacted)?, None))
}

/// The state from the snapshot at `offset` brought up to the log end by
/// scanning the batches from `offset` on; `None` when the snapshot, or the
/// `.txnindex` of a segment it lets the scan skip, is unreadable or corrupt,
/// or a transaction open in it or aborted before it began in a segment
/// since deleted (a scan dates such a transaction from its first batch
/// still in the log).
///
/// Aborted transactions with markers below `offset` are read from the
/// skipped segments' `.txnindex` files; the scan adds the later ones, and
/// every index is then reconciled as after a full scan.
pub(crate) fn resume_from_snapshot(
    dir: &Path,
    older: &[Segment],
    active: &Segment,
    offset: i64,
) -> Result<Option<ProducerStates>> {
    let Some(entries) = crate::snapshot::load(dir, offset) else {
        return Ok(None);
    };
    let segments: Vec<&Segment> = older.iter().chain(std::iter::once(active)).collect();
    let mut aborted = BTreeMap::new();
    let mut aborted_list = Vec::new();
    for segment in segments.iter().filter(|s| s.base_offset() < offset) {
        let path = format::txn_index_path(dir, segment.base_offset());
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                warn!(path = %path.display(), "transaction index unreadable, scanning the whole log: {e}");
                return Ok(None);
            }
        };
        let Some(found) = format::TxnIndexEntry::decode_all(&bytes) else {
            warn!(path = %path.display(), "transaction index corrupt, scanning the whole log");
            return Ok(None);
        };
        let kept: Vec<_> = found
            .into_iter()
            .filter(|e| e.last_offset < offset)
            .collect();
        aborted_list.extend(
            kept.iter()
                .map(|e| crate::producer_state::AbortedTxn::from(*e)),
        );
        aborted.insert(segment.base_offset(), kept);
    }
    let log_start = segments.first().map_or(0, |s| s.base_offset());
    // A scan dates a transaction from its first batch still in the log.
    let straddles = aborted_list
        .iter()
        .any(|a| a.first_offset < log_start || a.last_stable_offset < log_start);
    let mut states = ProducerStates::restore(entries, aborted_list);
    if straddles || !states.forget_below(log_start) {
        info!(dir = %dir.display(), offset, "a transaction began before the log start; scanning the whole log");
        return Ok(None);
    }
    for (i, segment) in segments.iter().enumerate() {
        let next_base = segments.get(i + 1).map(|s| s.base_offset());
        let from = if segment.base_offset() >= offset {
            0
        } else if next_base.is_none_or(|next| next > offset) {
            match segment.find_batch(offset)? {
                Some((position, _)) => position,
                None => continue,
            }
        } else {
            continue;
        };
        replay_producers(segment, from, &mut states, &mut aborted)?;
    }
    crate::txn_index::reconcile(dir, &aborted)?;
    Ok(Some(states))
}

/// Idempotent producers' state, rebuilt by reading the header of every
/// batch in the log (no record is decompressed). Every segment is scanned,
/// so a producer idle for longer than the active segment keeps its epoch
/// and sequence. In a compacted log, producers last seen in a closed
/// segment are lenient about their next sequence (see
/// [`crate::producer_state::ProducerEntry::lenient`]).
///
/// Aborted transactions are found on the way; each segment's `.txnindex`
/// is then made to agree with them (see [`crate::txn_index`]).
pub(crate) fn producer_states(
    dir: &Path,
    older: &[Segment],
    active: &Segment,
    compacted: bool,
) -> Result<ProducerStates> {
    let mut states = ProducerStates::default();
    let mut aborted = BTreeMap::new();
    for segment in older {
        replay_producers(segment, 0, &mut states, &mut aborted)?;
    }
    if compacted {
        states.mark_lenient();
    }
    replay_producers(active, 0, &mut states, &mut aborted)?;
    crate::txn_index::reconcile(dir, &aborted)?;
    Ok(states)
}

/// Feeds one segment's batches to `states`: headers alone for data
/// batches; a transaction marker's record is read to learn its type.
/// Aborted transactions are added to `aborted` under the segment's base.
fn replay_producers(
    segment: &Segment,
    from: u64,
    states: &mut ProducerStates,
    aborted: &mut BTreeMap<i64, Vec<crate::format::TxnIndexEntry>>,
) -> Result<()> {
    for item in segment.headers_from(from) {
        let (position, header) = item?;
        if header.is_control() {
            let bytes = segment.read_exact(position, header.total_len())?;
            if let Some(marker) = wharf_protocol::batch::read_marker(&bytes, &header) {
                let ended = states.end_txn(
                    header.producer_id(),
                    header.producer_epoch(),
                    header.base_offset(),
                    marker.commit,
                );
                if let Some(a) = ended {
                    aborted
                        .entry(segment.base_offset())
                        .or_default()
                        .push(a.into());
                }
            }
        } else {
            states.record(&header);
        }
    }
    Ok(())
}
