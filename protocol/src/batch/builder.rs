//! Building v2 batches: for tests, and for records the broker writes itself.

use super::records::{put_varint, put_varlong};
use super::{
    BatchError, TimestampType, ATTRIBUTES_AT, COMPRESSION_MASK, CRC_AT, DELETE_HORIZON_BIT,
    HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};
use crate::compression::{self, Compression};

/// A record to put in a batch.
#[derive(Debug, Clone, Default)]
pub struct NewRecord<'a> {
    /// Key, `None` for null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` for null.
    pub value: Option<&'a [u8]>,
    /// Timestamp in milliseconds.
    pub timestamp: i64,
    /// Headers: key and nullable value.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Batch-level fields for [`build_batch_with`]; the defaults describe a
/// plain, non-idempotent, create-time batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Codec for the records section.
    pub compression: Compression,
    /// Timestamp type bit.
    pub timestamp_type: TimestampType,
    /// Transactional bit.
    pub transactional: bool,
    /// producerId (-1 = none).
    pub producer_id: i64,
    /// producerEpoch (-1 = none).
    pub producer_epoch: i16,
    /// baseSequence (-1 = none).
    pub base_sequence: i32,
    /// partitionLeaderEpoch (-1 = unknown).
    pub partition_leader_epoch: i32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: -1,
        }
    }
}

/// A `(key, value, timestamp)` record for [`build_batch`].
pub type SimpleRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// Builds a valid batch of `(key, value, timestamp)` records starting at `base_offset`.
pub fn build_batch(
    base_offset: i64,
    records: &[SimpleRecord<'_>],
    compression: Compression,
) -> Result<Vec<u8>, BatchError> {
    let records: Vec<NewRecord<'_>> = records
        .iter()
        .map(|&(key, value, timestamp)| NewRecord {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        })
        .collect();
    let options = BatchOptions {
        compression,
        ..BatchOptions::default()
    };
    build_batch_with(base_offset, &records, &options)
}

/// Builds a valid batch with full control over the batch-level fields.
/// baseTimestamp is the first record's timestamp, maxTimestamp the largest.
pub fn build_batch_with(
    base_offset: i64,
    records: &[NewRecord<'_>],
    options: &BatchOptions,
) -> Result<Vec<u8>, BatchError> {
    build(base_offset, records, options, None)
}

/// Like [`build_batch_with`], for a batch the log cleaner has stamped with a
/// delete horizon (KIP-534): the delete-horizon attribute is set and
/// baseTimestamp holds `delete_horizon_ms`; record timestamps are encoded
/// as deltas from it, so readers still see each record's own timestamp.
pub fn build_batch_with_delete_horizon(
    base_offset: i64,
    records: &[NewRecord<'_>],
    options: &BatchOptions,
    delete_horizon_ms: i64,
) -> Result<Vec<u8>, BatchError> {
    build(base_offset, records, options, Some(delete_horizon_ms))
}

fn build(
    base_offset: i64,
    records: &[NewRecord<'_>],
    options: &BatchOptions,
    delete_horizon_ms: Option<i64>,
) -> Result<Vec<u8>, BatchError> {
    let count =
        i32::try_from(records.len()).map_err(|_| BatchError::Unencodable("too many records"))?;
    let base_timestamp =
        delete_horizon_ms.unwrap_or_else(|| records.first().map_or(-1, |r| r.timestamp));
    let max_timestamp = records.iter().map(|r| r.timestamp).max().unwrap_or(-1);

    let mut plain = Vec::new();
    let mut body = Vec::new();
    for (delta, record) in (0..count).zip(records) {
        body.clear();
        body.push(0); // record attributes
        let ts_delta = record
            .timestamp
            .checked_sub(base_timestamp)
            .ok_or(BatchError::Unencodable("timestamp delta overflows"))?;
        put_varlong(&mut body, ts_delta);
        put_varint(&mut body, delta);
        put_nullable(&mut body, record.key)?;
        put_nullable(&mut body, record.value)?;
        put_varint(&mut body, len_i32(record.headers.len())?);
        for (key, value) in &record.headers {
            put_nullable(&mut body, Some(key))?;
            put_nullable(&mut body, *value)?;
        }
        put_varint(&mut plain, len_i32(body.len())?);
        plain.extend_from_slice(&body);
    }
    let payload = compression::compress(options.compression, &plain)?;

    let mut attributes = i16::from(options.compression.id()) & COMPRESSION_MASK;
    if options.timestamp_type == TimestampType::LogAppendTime {
        attributes |= TIMESTAMP_TYPE_BIT;
    }
    if options.transactional {
        attributes |= TRANSACTIONAL_BIT;
    }
    if delete_horizon_ms.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    let total = HEADER_LEN
        .checked_add(payload.len())
        .ok_or(BatchError::Unencodable("batch too large"))?;
    let batch_length = len_i32(total - LOG_OVERHEAD)?;

    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&options.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // CRC, patched below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&(count - 1).to_be_bytes()); // lastOffsetDelta
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&options.producer_id.to_be_bytes());
    out.extend_from_slice(&options.producer_epoch.to_be_bytes());
    out.extend_from_slice(&options.base_sequence.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&payload);

    let crc = crc32c::crc32c(out.get(ATTRIBUTES_AT..).unwrap_or_default());
    if let Some(field) = out.get_mut(CRC_AT..ATTRIBUTES_AT) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}

fn len_i32(len: usize) -> Result<i32, BatchError> {
    i32::try_from(len).map_err(|_| BatchError::Unencodable("length exceeds i32"))
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), BatchError> {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, len_i32(b.len())?);
            out.extend_from_slice(b);
        }
    }
    Ok(())
}
