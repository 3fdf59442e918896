//! The v2 record batch (magic 2): Kafka's wire format and Wharf's disk format.
//!
//! Layout, all integers big-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset
//!      8     4  batchLength            (bytes after this field)
//!     12     4  partitionLeaderEpoch
//!     16     1  magic                  (2)
//!     17     4  crc                    (CRC-32C of bytes 21..end)
//!     21     2  attributes
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordsCount
//!     61     -  records (compressed as one blob when attributes say so)
//! ```
//!
//! The base offset and the partition leader epoch are outside the CRC, which
//! is what lets the broker assign offsets by rewriting them in place.
//!
//! Nothing in this module panics on any input: every read goes through
//! `get` and checked arithmetic.
#![deny(clippy::indexing_slicing)]

mod builder;
mod control;
mod recompress;
mod records;
mod stream;

use std::borrow::Cow;

use crate::compression::{self, Compression, CompressionError};

pub use builder::{
    build_batch, build_batch_with, build_batch_with_delete_horizon, BatchOptions, NewRecord,
    SimpleRecord,
};
pub use control::{build_marker, read_marker, ControlMarker};
pub use recompress::recompress;
pub use records::{records, Record, RecordHeader, RecordIter};
pub use stream::for_each_record;

/// Bytes before the batch-length field counts from: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed batch header, up to the first record.
pub const HEADER_LEN: usize = 61;
/// The only magic (format version) this module reads or writes.
pub const MAGIC_V2: i8 = 2;

const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;
/// Smallest legal batchLength: a header with no records.
const MIN_BATCH_LENGTH: usize = HEADER_LEN - LOG_OVERHEAD;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Why bytes are not a valid v2 record batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes are present than the header or batchLength requires.
    #[error("record batch truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the batch needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The buffer holds more bytes than the one batch it should contain.
    #[error("record batch declares {declared} bytes but the buffer holds {available}")]
    TrailingBytes {
        /// Total size from batchLength.
        declared: usize,
        /// Bytes present.
        available: usize,
    },
    /// batchLength is smaller than the fixed header.
    #[error("invalid batchLength {0}: a v2 batch needs at least {MIN_BATCH_LENGTH}")]
    InvalidBatchLength(i32),
    /// A message-format version other than 2 (v0/v1 message sets are not supported).
    #[error("unsupported record batch magic {0} (only magic 2 is supported)")]
    UnsupportedMagic(i8),
    /// The stored CRC-32C does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC from the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// recordsCount is negative.
    #[error("invalid recordsCount {0}")]
    InvalidRecordCount(i32),
    /// lastOffsetDelta disagrees with recordsCount.
    #[error("lastOffsetDelta {last_offset_delta} does not match recordsCount {records_count}")]
    LastOffsetDeltaMismatch {
        /// From the header.
        last_offset_delta: i32,
        /// From the header.
        records_count: i32,
    },
    /// The records section holds fewer records than recordsCount.
    #[error("batch declares {declared} records but holds only {found}")]
    MissingRecords {
        /// recordsCount.
        declared: i32,
        /// Records parsed before the data ran out.
        found: usize,
    },
    /// Bytes remain after the last declared record.
    #[error("{0} bytes follow the last record of the batch")]
    TrailingRecordBytes(usize),
    /// A record's fields are malformed.
    #[error("corrupt record {index}: {reason}")]
    CorruptRecord {
        /// Position of the record in the batch.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Record offset deltas are not 0, 1, 2, ... in order.
    #[error("record {index} has offset delta {delta}, expected {index}")]
    OffsetDeltaOutOfOrder {
        /// Position of the record in the batch.
        index: usize,
        /// The delta it carries.
        delta: i64,
    },
    /// A compression problem (unknown codec, corrupt payload, bomb).
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// A batch being built does not fit the format's 32-bit sizes or 64-bit timestamps.
    #[error("cannot build batch: {0}")]
    Unencodable(&'static str),
}

impl BatchError {
    /// True when the bytes simply ran out: a torn write rather than garbage.
    pub fn is_truncation(&self) -> bool {
        matches!(self, BatchError::Truncated { .. })
    }
}

/// How the timestamps of a batch were assigned (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker on append; every record's timestamp is the batch's maxTimestamp.
    LogAppendTime,
}

/// The fixed 61-byte header of a v2 batch, parsed without touching the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    base_offset: i64,
    batch_length: i32,
    partition_leader_epoch: i32,
    crc: u32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records_count: i32,
}

fn array_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn i16_at(buf: &[u8], at: usize) -> Option<i16> {
    array_at(buf, at).map(i16::from_be_bytes)
}
fn i32_at(buf: &[u8], at: usize) -> Option<i32> {
    array_at(buf, at).map(i32::from_be_bytes)
}
fn i64_at(buf: &[u8], at: usize) -> Option<i64> {
    array_at(buf, at).map(i64::from_be_bytes)
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks the magic, that the
    /// 61 header bytes are present, that batchLength covers the header and that
    /// the codec is known; does not require the whole batch to be present and
    /// does not check the CRC (see [`validate`]).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let truncated = || BatchError::Truncated {
            needed: HEADER_LEN,
            available: buf.len(),
        };
        let magic = buf.get(MAGIC_AT).map(|b| *b as i8).ok_or_else(truncated)?;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < HEADER_LEN {
            return Err(truncated());
        }
        let header = (|| {
            Some(BatchHeader {
                base_offset: i64_at(buf, 0)?,
                batch_length: i32_at(buf, BATCH_LENGTH_AT)?,
                partition_leader_epoch: i32_at(buf, LEADER_EPOCH_AT)?,
                crc: u32::from_be_bytes(array_at(buf, CRC_AT)?),
                attributes: i16_at(buf, ATTRIBUTES_AT)?,
                last_offset_delta: i32_at(buf, LAST_OFFSET_DELTA_AT)?,
                base_timestamp: i64_at(buf, BASE_TIMESTAMP_AT)?,
                max_timestamp: i64_at(buf, MAX_TIMESTAMP_AT)?,
                producer_id: i64_at(buf, PRODUCER_ID_AT)?,
                producer_epoch: i16_at(buf, PRODUCER_EPOCH_AT)?,
                base_sequence: i32_at(buf, BASE_SEQUENCE_AT)?,
                records_count: i32_at(buf, RECORDS_COUNT_AT)?,
            })
        })()
        .ok_or_else(truncated)?;
        if usize::try_from(header.batch_length).map_or(true, |len| len < MIN_BATCH_LENGTH) {
            return Err(BatchError::InvalidBatchLength(header.batch_length));
        }
        Compression::from_id((header.attributes & COMPRESSION_MASK) as u8)?;
        Ok(header)
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Offset of the last record (base offset + lastOffsetDelta).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
    /// The offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    /// The batchLength field: bytes after it.
    pub fn batch_length(&self) -> i32 {
        self.batch_length
    }
    /// Size of the whole batch in bytes, overhead included.
    pub fn total_len(&self) -> usize {
        // parse() guarantees batch_length >= MIN_BATCH_LENGTH > 0.
        (self.batch_length as u32 as usize).saturating_add(LOG_OVERHEAD)
    }
    /// The leader epoch stamped by the broker that appended the batch.
    pub fn partition_leader_epoch(&self) -> i32 {
        self.partition_leader_epoch
    }
    /// The stored CRC-32C.
    pub fn crc(&self) -> u32 {
        self.crc
    }
    /// Raw attributes.
    pub fn attributes(&self) -> i16 {
        self.attributes
    }
    /// The records' codec.
    pub fn compression(&self) -> Compression {
        // parse() already rejected unknown ids.
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
            .unwrap_or(Compression::None)
    }
    /// Create time or log-append time.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    /// Holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    /// baseTimestamp is a delete horizon (set by compaction).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_BIT != 0
    }
    /// lastOffsetDelta.
    pub fn last_offset_delta(&self) -> i32 {
        self.last_offset_delta
    }
    /// baseTimestamp.
    pub fn base_timestamp(&self) -> i64 {
        self.base_timestamp
    }
    /// maxTimestamp.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// producerId (-1 when not idempotent).
    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }
    /// producerEpoch.
    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }
    /// baseSequence.
    pub fn base_sequence(&self) -> i32 {
        self.base_sequence
    }
    /// recordsCount.
    pub fn records_count(&self) -> i32 {
        self.records_count
    }
}

/// What [`validate_batch`] learned while walking the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedBatch {
    /// The batch header.
    pub header: BatchHeader,
    /// The largest record timestamp (the header's maxTimestamp for an empty batch).
    pub max_timestamp: i64,
    /// Offset delta of the first record carrying `max_timestamp`.
    pub max_timestamp_offset_delta: i32,
}

/// Fully validates `buf`, which must hold exactly one batch. See [`validate_batch`].
pub fn validate(buf: &[u8], max_decompressed: usize) -> Result<BatchHeader, BatchError> {
    validate_batch(buf, max_decompressed).map(|v| v.header)
}

/// Fully validates `buf`, which must hold exactly one batch: sizes, magic,
/// CRC-32C, the record count against lastOffsetDelta, and every record
/// (decompressing at most `max_decompressed` bytes, streamed through a window
/// rather than copied whole; see [`for_each_record`]), whose offset deltas
/// must run 0, 1, 2, ... in order.
pub fn validate_batch(buf: &[u8], max_decompressed: usize) -> Result<ValidatedBatch, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let total = header.total_len();
    if buf.len() < total {
        return Err(BatchError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    if buf.len() > total {
        return Err(BatchError::TrailingBytes {
            declared: total,
            available: buf.len(),
        });
    }
    let computed = crc32c::crc32c(buf.get(ATTRIBUTES_AT..).unwrap_or_default());
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    if header.records_count < 0 {
        return Err(BatchError::InvalidRecordCount(header.records_count));
    }
    if header.records_count > 0 && header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::LastOffsetDeltaMismatch {
            last_offset_delta: header.last_offset_delta,
            records_count: header.records_count,
        });
    }
    let mut max = None::<(i64, i32)>;
    let mut index = 0usize;
    for_each_record(buf, &header, max_decompressed, |record| {
        let delta = record.offset.wrapping_sub(header.base_offset);
        let expected = i64::try_from(index).unwrap_or(i64::MAX);
        if delta != expected {
            return Err(BatchError::OffsetDeltaOutOfOrder { index, delta });
        }
        if max.is_none_or(|(ts, _)| record.timestamp > ts) {
            max = Some((record.timestamp, i32::try_from(delta).unwrap_or(i32::MAX)));
        }
        index = index.saturating_add(1);
        Ok(())
    })?;
    let (max_timestamp, max_timestamp_offset_delta) = max.unwrap_or((header.max_timestamp, 0));
    Ok(ValidatedBatch {
        header,
        max_timestamp,
        max_timestamp_offset_delta,
    })
}

/// The records section of the batch in `buf`, decompressed when the batch is
/// compressed (at most `max_decompressed` bytes), borrowed otherwise.
pub fn records_payload<'a>(
    buf: &'a [u8],
    header: &BatchHeader,
    max_decompressed: usize,
) -> Result<Cow<'a, [u8]>, BatchError> {
    let body = buf
        .get(HEADER_LEN..header.total_len())
        .ok_or(BatchError::Truncated {
            needed: header.total_len(),
            available: buf.len(),
        })?;
    match header.compression() {
        Compression::None => Ok(Cow::Borrowed(body)),
        codec => Ok(Cow::Owned(compression::decompress(
            codec,
            body,
            max_decompressed,
        )?)),
    }
}

/// Rewrites the base offset of the batch at the start of `buf` (not covered by the CRC).
pub fn set_base_offset(buf: &mut [u8], offset: i64) -> Result<(), BatchError> {
    write_field(buf, 0, &offset.to_be_bytes())
}

/// Rewrites the partition leader epoch of the batch at the start of `buf` (not covered by the CRC).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    write_field(buf, LEADER_EPOCH_AT, &epoch.to_be_bytes())
}

/// Marks the batch at the start of `buf` as log-append-time stamped at
/// `timestamp`: sets the timestamp-type attribute and maxTimestamp (which
/// readers then report as every record's timestamp) and recomputes the CRC.
pub fn set_log_append_time(buf: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    let header = BatchHeader::parse(buf)?;
    let attributes = header.attributes | TIMESTAMP_TYPE_BIT;
    write_field(buf, ATTRIBUTES_AT, &attributes.to_be_bytes())?;
    write_field(buf, MAX_TIMESTAMP_AT, &timestamp.to_be_bytes())?;
    rewrite_crc(buf, &header)
}

/// Sets the maxTimestamp of the batch at the start of `buf` (keeping its
/// timestamp type) and recomputes the CRC. Kafka stores the largest record
/// timestamp there whatever the producer wrote.
pub fn set_max_timestamp(buf: &mut [u8], timestamp: i64) -> Result<(), BatchError> {
    let header = BatchHeader::parse(buf)?;
    write_field(buf, MAX_TIMESTAMP_AT, &timestamp.to_be_bytes())?;
    rewrite_crc(buf, &header)
}

fn rewrite_crc(buf: &mut [u8], header: &BatchHeader) -> Result<(), BatchError> {
    let total = header.total_len();
    let available = buf.len();
    let covered = buf.get(ATTRIBUTES_AT..total).ok_or(BatchError::Truncated {
        needed: total,
        available,
    })?;
    let crc = crc32c::crc32c(covered);
    write_field(buf, CRC_AT, &crc.to_be_bytes())
}

fn write_field(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), BatchError> {
    let available = buf.len();
    let end = at.saturating_add(bytes.len());
    let field = buf.get_mut(at..end).ok_or(BatchError::Truncated {
        needed: end,
        available,
    })?;
    field.copy_from_slice(bytes);
    Ok(())
}

/// Iterates over the concatenated batches in `buf`; see [`Batches`].
pub fn batches(buf: &[u8]) -> Batches<'_> {
    Batches {
        buf,
        pos: 0,
        failed: false,
    }
}

/// Iterator over concatenated batches (a Produce request's records, or a
/// segment's bytes), yielding each header with the batch's exact bytes.
///
/// `None` means a clean end; an `Err` means the tail from [`Batches::position`]
/// on is truncated or not a batch, after which the iterator stops. Only the
/// header is checked here; run [`validate`] on each slice to check the rest.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl Batches<'_> {
    /// Byte position of the next batch: after an error, the end of the last good one.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = self.buf.get(self.pos..).filter(|r| !r.is_empty())?;
        let result = BatchHeader::parse(rest).and_then(|header| {
            let total = header.total_len();
            let bytes = rest.get(..total).ok_or(BatchError::Truncated {
                needed: total,
                available: rest.len(),
            })?;
            Ok((header, bytes))
        });
        match &result {
            Ok((header, _)) => self.pos = self.pos.saturating_add(header.total_len()),
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
