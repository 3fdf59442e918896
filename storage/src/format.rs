//! Every on-disk detail of a log directory, and nothing else.
//!
//! A partition's directory holds segments. A segment is named after its base
//! offset (the first offset it may hold), zero-padded to 20 digits:
//!
//! - `<base>.log`: concatenated v2 record batches, exactly as produced (with
//!   offsets and leader epoch assigned). The record format is the disk format.
//! - `<base>.index`: the sparse offset index, Kafka's layout: 8-byte entries of
//!   relative offset (offset - base, u32 BE) and byte position in the `.log`
//!   (u32 BE), both strictly increasing. An entry says "the batch starting at
//!   this position has this base offset".
//! - `<base>.timeindex`: the sparse time index, Kafka's layout: 12-byte
//!   entries of timestamp (i64 BE) and relative offset (u32 BE), both
//!   strictly increasing. An entry says "the batch with this base offset is
//!   the first in the segment whose max timestamp reaches this timestamp",
//!   so every batch before it has a smaller max timestamp.
//!
//! Beside the segments: `leader-epoch-checkpoint` ([`LEADER_EPOCH_CHECKPOINT`]),
//! where each leader epoch began (see [`crate::leader_epoch`]).

use std::path::{Path, PathBuf};

/// Extension of segment data files.
pub const LOG_SUFFIX: &str = ".log";
/// Extension of offset index files.
pub const INDEX_SUFFIX: &str = ".index";
/// Bytes per offset index entry.
pub const INDEX_ENTRY_LEN: usize = 8;
/// Extension of time index files.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Bytes per time index entry.
pub const TIME_ENTRY_LEN: usize = 12;
/// Digits in a segment file name.
const NAME_DIGITS: usize = 20;

/// Name of a partition's leader epoch checkpoint (Kafka's
/// `leader-epoch-checkpoint`): which leader epoch began at which offset.
/// Text: a version line `0`, a line with the entry count, then one
/// `<epoch> <start offset>` line per entry, oldest first.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Path of the leader epoch checkpoint in `dir`.
pub fn leader_epoch_checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(LEADER_EPOCH_CHECKPOINT)
}

/// What a file in a log directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A `.log` segment file.
    Log,
    /// An `.index` file.
    Index,
    /// A `.timeindex` file.
    TimeIndex,
}

/// `00000000000000000042.log` for base offset 42.
pub fn log_file_name(base_offset: i64) -> String {
    format!("{base_offset:0NAME_DIGITS$}{LOG_SUFFIX}")
}

/// `00000000000000000042.index` for base offset 42.
pub fn index_file_name(base_offset: i64) -> String {
    format!("{base_offset:0NAME_DIGITS$}{INDEX_SUFFIX}")
}

/// `00000000000000000042.timeindex` for base offset 42.
pub fn time_index_file_name(base_offset: i64) -> String {
    format!("{base_offset:0NAME_DIGITS$}{TIME_INDEX_SUFFIX}")
}

/// Path of the time index file in `dir`.
pub fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(time_index_file_name(base_offset))
}

/// Path of the segment data file in `dir`.
pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(log_file_name(base_offset))
}

/// Path of the index file in `dir`.
pub fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(index_file_name(base_offset))
}

/// Parses a file name written by [`log_file_name`] or [`index_file_name`];
/// `None` for anything else.
pub fn parse_file_name(name: &str) -> Option<(i64, FileKind)> {
    let (digits, kind) = if let Some(d) = name.strip_suffix(LOG_SUFFIX) {
        (d, FileKind::Log)
    } else if let Some(d) = name.strip_suffix(TIME_INDEX_SUFFIX) {
        (d, FileKind::TimeIndex)
    } else {
        (name.strip_suffix(INDEX_SUFFIX)?, FileKind::Index)
    };
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = digits.parse::<i64>().ok()?;
    Some((base, kind))
}

/// One offset index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

impl IndexEntry {
    /// The 8 bytes on disk.
    pub fn encode(self) -> [u8; INDEX_ENTRY_LEN] {
        let mut out = [0u8; INDEX_ENTRY_LEN];
        let (rel, pos) = out.split_at_mut(4);
        rel.copy_from_slice(&self.relative_offset.to_be_bytes());
        pos.copy_from_slice(&self.position.to_be_bytes());
        out
    }

    /// Reads one entry from 8 bytes.
    pub fn decode(bytes: &[u8; INDEX_ENTRY_LEN]) -> IndexEntry {
        let [a, b, c, d, e, f, g, h] = *bytes;
        IndexEntry {
            relative_offset: u32::from_be_bytes([a, b, c, d]),
            position: u32::from_be_bytes([e, f, g, h]),
        }
    }

    /// Decodes a whole index file; `None` when its length is not a multiple of 8.
    pub fn decode_all(bytes: &[u8]) -> Option<Vec<IndexEntry>> {
        let chunks = bytes.chunks_exact(INDEX_ENTRY_LEN);
        if !chunks.remainder().is_empty() {
            return None;
        }
        chunks
            .map(|c| c.try_into().ok().map(IndexEntry::decode))
            .collect()
    }
}

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// A batch's max timestamp, larger than every earlier batch's.
    pub timestamp: i64,
    /// That batch's base offset minus the segment's base offset.
    pub relative_offset: u32,
}

impl TimeEntry {
    /// The 12 bytes on disk.
    pub fn encode(self) -> [u8; TIME_ENTRY_LEN] {
        let mut out = [0u8; TIME_ENTRY_LEN];
        let (ts, rel) = out.split_at_mut(8);
        ts.copy_from_slice(&self.timestamp.to_be_bytes());
        rel.copy_from_slice(&self.relative_offset.to_be_bytes());
        out
    }

    /// Reads one entry from 12 bytes.
    pub fn decode(bytes: &[u8; TIME_ENTRY_LEN]) -> TimeEntry {
        let [a, b, c, d, e, f, g, h, i, j, k, l] = *bytes;
        TimeEntry {
            timestamp: i64::from_be_bytes([a, b, c, d, e, f, g, h]),
            relative_offset: u32::from_be_bytes([i, j, k, l]),
        }
    }

    /// Decodes a whole time index file; `None` when its length is not a
    /// multiple of 12.
    pub fn decode_all(bytes: &[u8]) -> Option<Vec<TimeEntry>> {
        let chunks = bytes.chunks_exact(TIME_ENTRY_LEN);
        if !chunks.remainder().is_empty() {
            return None;
        }
        chunks
            .map(|c| c.try_into().ok().map(TimeEntry::decode))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digit_zero_padded() {
        assert_eq!(log_file_name(0), "00000000000000000000.log");
        assert_eq!(index_file_name(1234), "00000000000000001234.index");
        assert_eq!(log_file_name(i64::MAX).len(), 24);
    }

    #[test]
    fn parses_only_well_formed_names() {
        assert_eq!(
            parse_file_name("00000000000000001234.log"),
            Some((1234, FileKind::Log))
        );
        assert_eq!(
            parse_file_name(&index_file_name(77)),
            Some((77, FileKind::Index))
        );
        for bad in [
            "1234.log",
            "0000000000000000123x.log",
            "00000000000000001234.tmp",
            "x",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn index_entries_use_kafka_layout() {
        let e = IndexEntry {
            relative_offset: 0x0102_0304,
            position: 0x0A0B_0C0D,
        };
        assert_eq!(e.encode(), [1, 2, 3, 4, 0xA, 0xB, 0xC, 0xD]);
        assert_eq!(IndexEntry::decode(&e.encode()), e);
        assert_eq!(IndexEntry::decode_all(&[0; 12]), None);
        assert_eq!(IndexEntry::decode_all(&e.encode()), Some(vec![e]));
    }

    #[test]
    fn time_entries_use_kafka_layout() {
        let e = TimeEntry {
            timestamp: 0x0102_0304_0506_0708,
            relative_offset: 0x0A0B_0C0D,
        };
        assert_eq!(e.encode(), [1, 2, 3, 4, 5, 6, 7, 8, 0xA, 0xB, 0xC, 0xD]);
        assert_eq!(TimeEntry::decode(&e.encode()), e);
        assert_eq!(TimeEntry::decode_all(&[0; 8]), None);
        assert_eq!(
            parse_file_name(&time_index_file_name(9)),
            Some((9, FileKind::TimeIndex))
        );
    }
}

/// Suffix of a segment's aborted-transaction index (Kafka's `.txnindex`).
pub const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Bytes per aborted-transaction index entry: version i16, then
/// producer id, first offset, last offset and last stable offset (i64s).
pub const TXN_ENTRY_LEN: usize = 34;
/// The only entry version.
const TXN_ENTRY_VERSION: i16 = 0;

/// `<dir>/<base offset, 20 digits>.txnindex`.
pub fn txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}{TXN_INDEX_SUFFIX}"))
}

/// The base offset named by a `.txnindex` file name.
pub fn parse_txn_index_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(TXN_INDEX_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One aborted transaction of a segment: its producer, first offset,
/// the offset of its ABORT marker, and the last stable offset once it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnIndexEntry {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl TxnIndexEntry {
    pub fn encode(self) -> [u8; TXN_ENTRY_LEN] {
        let mut out = [0u8; TXN_ENTRY_LEN];
        let fields = [
            self.producer_id,
            self.first_offset,
            self.last_offset,
            self.last_stable_offset,
        ];
        let (version, rest) = out.split_at_mut(2);
        version.copy_from_slice(&TXN_ENTRY_VERSION.to_be_bytes());
        for (slot, field) in rest.chunks_exact_mut(8).zip(fields) {
            slot.copy_from_slice(&field.to_be_bytes());
        }
        out
    }

    /// Every entry of a `.txnindex` file; `None` when its length or a
    /// version is wrong (the file is then rebuilt).
    pub fn decode_all(bytes: &[u8]) -> Option<Vec<TxnIndexEntry>> {
        if !bytes.len().is_multiple_of(TXN_ENTRY_LEN) {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() / TXN_ENTRY_LEN);
        for chunk in bytes.chunks_exact(TXN_ENTRY_LEN) {
            let (version, rest) = chunk.split_at(2);
            if i16::from_be_bytes(version.try_into().ok()?) != TXN_ENTRY_VERSION {
                return None;
            }
            let mut fields = rest
                .chunks_exact(8)
                .map(|b| b.try_into().ok().map(i64::from_be_bytes));
            out.push(TxnIndexEntry {
                producer_id: fields.next()??,
                first_offset: fields.next()??,
                last_offset: fields.next()??,
                last_stable_offset: fields.next()??,
            });
        }
        Some(out)
    }
}

/// Suffix of a producer-state snapshot (Kafka's `.snapshot`): the
/// idempotent producers' state as of the offset in its name, that is after
/// every batch below that offset.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// The only snapshot layout version.
const SNAPSHOT_VERSION: i16 = 1;
/// Bytes before the first producer: version i16, crc32c u32, offset i64,
/// producer count i32.
const SNAPSHOT_HEADER_LEN: usize = 18;
/// Bytes of a producer before its batches: producer id i64, epoch i16,
/// last offset i64, open transaction's first offset i64 (-1: none),
/// lenient u8, batch count u8.
const SNAPSHOT_PRODUCER_LEN: usize = 28;
/// Bytes of one remembered batch: first and last sequence (i32s), first
/// and last offset (i64s).
const SNAPSHOT_BATCH_LEN: usize = 24;

/// `<dir>/<offset, 20 digits>.snapshot`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

/// The offset named by a `.snapshot` file name.
pub fn parse_snapshot_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes a producer-state snapshot taken at `offset`. Layout, big-endian:
/// version i16 (1); crc32c (Castagnoli) u32 of every byte after it; the
/// offset i64; the producer count i32; then per producer: producer id i64,
/// epoch i16, offset of its latest batch or marker i64, first offset of its
/// open transaction i64 (-1 when none), lenient u8 (0 or 1), batch count u8
/// (at most 5), then per batch (oldest first): first sequence i32, last
/// sequence i32, first offset i64, last offset i64.
pub fn encode_producer_snapshot(
    offset: i64,
    producers: &[(i64, &crate::producer_state::ProducerEntry)],
) -> Vec<u8> {
    let mut body = Vec::with_capacity(
        SNAPSHOT_HEADER_LEN + producers.len() * (SNAPSHOT_PRODUCER_LEN + 5 * SNAPSHOT_BATCH_LEN),
    );
    body.extend_from_slice(&offset.to_be_bytes());
    let count = i32::try_from(producers.len()).unwrap_or(i32::MAX);
    body.extend_from_slice(&count.to_be_bytes());
    for (id, entry) in producers.iter().take(usize::try_from(count).unwrap_or(0)) {
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&entry.epoch.to_be_bytes());
        body.extend_from_slice(&entry.last_offset.to_be_bytes());
        body.extend_from_slice(&entry.txn_first_offset.unwrap_or(-1).to_be_bytes());
        body.push(u8::from(entry.lenient));
        let batches = entry.batches.len().min(usize::from(u8::MAX));
        body.push(u8::try_from(batches).unwrap_or(u8::MAX));
        for b in entry.batches.iter().take(batches) {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.first_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(body.len() + 6);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a snapshot: its offset and producers. `None` when the version,
/// checksum, or any length is wrong, or a field is out of range.
pub fn decode_producer_snapshot(
    bytes: &[u8],
) -> Option<(i64, Vec<(i64, crate::producer_state::ProducerEntry)>)> {
    use crate::producer_state::{BatchMeta, ProducerEntry, BATCHES_KEPT};
    if bytes.len() < SNAPSHOT_HEADER_LEN {
        return None;
    }
    let mut r = Reader(bytes);
    if r.i16()? != SNAPSHOT_VERSION {
        return None;
    }
    let crc = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
    if crc32c::crc32c(r.0) != crc {
        return None;
    }
    let offset = r.i64()?;
    let count = usize::try_from(r.i32()?).ok()?;
    // Each producer takes at least SNAPSHOT_PRODUCER_LEN bytes.
    if count > r.0.len() / SNAPSHOT_PRODUCER_LEN {
        return None;
    }
    let mut producers = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.i64()?;
        let epoch = r.i16()?;
        let last_offset = r.i64()?;
        let txn = r.i64()?;
        let lenient = match r.take(1)?.first()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let batch_count = usize::from(*r.take(1)?.first()?);
        if batch_count > BATCHES_KEPT {
            return None;
        }
        let mut entry = ProducerEntry {
            epoch,
            lenient,
            txn_first_offset: (txn >= 0).then_some(txn),
            last_offset,
            ..ProducerEntry::default()
        };
        for _ in 0..batch_count {
            entry.batches.push_back(BatchMeta {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
            });
        }
        producers.push((id, entry));
    }
    r.0.is_empty().then_some((offset, producers))
}

/// Reads big-endian fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}
