//! Records inside a v2 batch, and the zigzag varints they are made of.
//!
//! Each record: varint length, then over exactly that many bytes:
//! attributes i8, timestampDelta varlong, offsetDelta varint, keyLength
//! varint (-1 = null), key, valueLength varint (-1 = null), value, header
//! count varint, then per header: key length varint, key, value length
//! varint (-1 = null), value.

use super::{BatchError, BatchHeader, TimestampType};

/// One record header (key, value). Kafka requires the key; the value may be null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader<'a> {
    /// Header key bytes (UTF-8 by Kafka's convention; not checked).
    pub key: &'a [u8],
    /// Header value, `None` for null.
    pub value: Option<&'a [u8]>,
}

/// One record, with absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Batch base offset + offsetDelta.
    pub offset: i64,
    /// baseTimestamp + timestampDelta, or the batch maxTimestamp under log-append time.
    pub timestamp: i64,
    /// Record attributes (unused by Kafka today).
    pub attributes: i8,
    /// Key, `None` for null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` for null (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers in order.
    pub headers: Vec<RecordHeader<'a>>,
}

/// Iterates over the records of an uncompressed records section.
///
/// `payload` is the bytes after the 61-byte header, already decompressed
/// (see [`super::records_payload`]). Yields exactly recordsCount records; an
/// error (after which iteration stops) reports malformed records, missing
/// records, or bytes left over after the last one.
pub fn records<'a>(header: &BatchHeader, payload: &'a [u8]) -> RecordIter<'a> {
    RecordIter {
        rest: payload,
        context: RecordContext::of(header),
        declared: header.records_count(),
        index: 0,
        done: false,
    }
}

/// What the records of one batch share: where their offsets and timestamps count from.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordContext {
    base_offset: i64,
    base_timestamp: i64,
    /// The batch maxTimestamp when the batch uses log-append time.
    log_append_time: Option<i64>,
}

impl RecordContext {
    pub(super) fn of(header: &BatchHeader) -> RecordContext {
        let log_append_time = match header.timestamp_type() {
            TimestampType::LogAppendTime => Some(header.max_timestamp()),
            TimestampType::CreateTime => None,
        };
        RecordContext {
            base_offset: header.base_offset(),
            base_timestamp: header.base_timestamp(),
            log_append_time,
        }
    }
}

/// See [`records`].
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
    context: RecordContext,
    declared: i32,
    index: usize,
    done: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let declared = usize::try_from(self.declared).unwrap_or(0);
        if self.index >= declared {
            self.done = true;
            if self.rest.is_empty() {
                return None;
            }
            return Some(Err(BatchError::TrailingRecordBytes(self.rest.len())));
        }
        if self.rest.is_empty() {
            self.done = true;
            return Some(Err(BatchError::MissingRecords {
                declared: self.declared,
                found: self.index,
            }));
        }
        let result = decode_record(self.rest, &self.context, self.index).map(|(record, rest)| {
            self.rest = rest;
            record
        });
        if result.is_err() {
            self.done = true;
        }
        self.index = self.index.saturating_add(1);
        Some(result)
    }
}

/// The size (length varint included) of the record starting `window`, or
/// `None` when `window` ends inside the length varint.
pub(super) fn record_extent(window: &[u8], index: usize) -> Result<Option<usize>, BatchError> {
    let bad = |reason: &'static str| BatchError::CorruptRecord { index, reason };
    let mut cursor = Cursor(window);
    match cursor.varint() {
        Some(len) => {
            let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
            let prefix = window.len().saturating_sub(cursor.0.len());
            Ok(Some(prefix.saturating_add(len)))
        }
        None if window.len() < MAX_VARINT_LEN && window.iter().all(|b| b & 0x80 != 0) => Ok(None),
        None => Err(bad("bad length varint")),
    }
}

/// Longest encoding of a 32-bit varint.
const MAX_VARINT_LEN: usize = 5;

/// Decodes the record at the start of `rest` (record `index` of its batch);
/// returns it and the bytes after it.
pub(super) fn decode_record<'a>(
    rest: &'a [u8],
    context: &RecordContext,
    index: usize,
) -> Result<(Record<'a>, &'a [u8]), BatchError> {
    let bad = |reason: &'static str| BatchError::CorruptRecord { index, reason };
    let mut cursor = Cursor(rest);
    let len = cursor.varint().ok_or_else(|| bad("bad length varint"))?;
    let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
    let body = cursor
        .take(len)
        .ok_or_else(|| bad("length runs past the batch"))?;
    let rest = cursor.0;

    let mut c = Cursor(body);
    let attributes = c.byte().ok_or_else(|| bad("missing attributes"))? as i8;
    let ts_delta = c.varlong().ok_or_else(|| bad("bad timestamp delta"))?;
    let offset_delta = c.varint().ok_or_else(|| bad("bad offset delta"))?;
    let key = c.nullable_bytes().ok_or_else(|| bad("bad key"))?;
    let value = c.nullable_bytes().ok_or_else(|| bad("bad value"))?;
    let header_count = c.varint().ok_or_else(|| bad("bad header count"))?;
    let header_count = usize::try_from(header_count).map_err(|_| bad("negative header count"))?;
    // Each header takes at least two bytes, which bounds the allocation.
    let mut headers = Vec::with_capacity(header_count.min(c.0.len() / 2));
    for _ in 0..header_count {
        let key = c
            .nullable_bytes()
            .ok_or_else(|| bad("bad header key"))?
            .ok_or_else(|| bad("null header key"))?;
        let value = c.nullable_bytes().ok_or_else(|| bad("bad header value"))?;
        headers.push(RecordHeader { key, value });
    }
    if !c.0.is_empty() {
        return Err(bad("length longer than its fields"));
    }
    let offset = context
        .base_offset
        .checked_add(i64::from(offset_delta))
        .ok_or_else(|| bad("offset overflows"))?;
    let timestamp = match context.log_append_time {
        Some(ts) => ts,
        None => context
            .base_timestamp
            .checked_add(ts_delta)
            .ok_or_else(|| bad("timestamp overflows"))?,
    };
    let record = Record {
        offset,
        timestamp,
        attributes,
        key,
        value,
        headers,
    };
    Ok((record, rest))
}

/// A read position over a byte slice; every read is checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let head = self.0.get(..n)?;
        self.0 = self.0.get(n..)?;
        Some(head)
    }

    /// Unsigned LEB128 of at most `max_bytes` bytes.
    fn unsigned(&mut self, max_bytes: u32) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn varint(&mut self) -> Option<i32> {
        let raw = u32::try_from(self.unsigned(5)?).ok()?;
        Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Option<i64> {
        let raw = self.unsigned(10)?;
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    /// varint length (-1 = null) then that many bytes.
    fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        match self.varint()? {
            -1 => Some(None),
            n => Some(Some(self.take(usize::try_from(n).ok()?)?)),
        }
    }
}

/// Appends `v` as a zigzag varint.
pub(super) fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_unsigned(out, ((v << 1) ^ (v >> 31)) as u32 as u64);
}

/// Appends `v` as a zigzag varlong.
pub(super) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_extremes() {
        for v in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert!(buf.len() <= 5);
            let mut c = Cursor(&buf);
            assert_eq!(c.varint(), Some(v));
            assert!(c.0.is_empty());
        }
        for v in [0, -1, i64::MAX, i64::MIN, 1 << 40] {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            assert!(buf.len() <= 10);
            assert_eq!(Cursor(&buf).varlong(), Some(v));
        }
    }

    #[test]
    fn zigzag_matches_kafka_encoding() {
        let mut buf = Vec::new();
        put_varint(&mut buf, -1);
        put_varint(&mut buf, 1);
        put_varint(&mut buf, 300);
        assert_eq!(buf, [0x01, 0x02, 0xd8, 0x04]);
    }

    #[test]
    fn rejects_overlong_varints() {
        assert_eq!(Cursor(&[0xff; 6]).varint(), None);
        assert_eq!(Cursor(&[0xff, 0xff, 0xff, 0xff, 0x7f]).varint(), None);
        assert_eq!(Cursor(&[0xff; 11]).varlong(), None);
        assert_eq!(Cursor(&[0x80]).varint(), None);
    }
}
