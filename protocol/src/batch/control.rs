//! Control batches: the transaction markers (COMMIT / ABORT) a transaction
//! coordinator writes into each partition a transaction touched.
//!
//! A marker is a batch with the control and transactional attribute bits,
//! the producer's id and epoch, and one record whose key is
//! `version: i16 = 0, type: i16` (0 = ABORT, 1 = COMMIT) and whose value is
//! `version: i16 = 0, coordinator_epoch: i32`.

use super::builder::{build_batch_with, BatchOptions, NewRecord};
use super::{
    records, records_payload, BatchError, BatchHeader, ATTRIBUTES_AT, CONTROL_BIT, CRC_AT,
};

/// Control record type of an abort marker.
const ABORT_TYPE: i16 = 0;
/// Control record type of a commit marker.
const COMMIT_TYPE: i16 = 1;

/// What a transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMarker {
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    /// The coordinator epoch written in the marker's value.
    pub coordinator_epoch: i32,
}

/// Builds a marker batch at offset 0 for `producer_id` at `producer_epoch`.
pub fn build_marker(
    producer_id: i64,
    producer_epoch: i16,
    marker: ControlMarker,
    timestamp: i64,
) -> Result<Vec<u8>, BatchError> {
    let kind = if marker.commit {
        COMMIT_TYPE
    } else {
        ABORT_TYPE
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let record = NewRecord {
        key: Some(&key),
        value: Some(&value),
        timestamp,
        headers: Vec::new(),
    };
    let options = BatchOptions {
        transactional: true,
        producer_id,
        producer_epoch,
        ..BatchOptions::default()
    };
    let mut out = build_batch_with(0, &[record], &options)?;
    let attributes_end = ATTRIBUTES_AT + 2;
    let attributes = out
        .get(ATTRIBUTES_AT..attributes_end)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(i16::from_be_bytes)
        .ok_or(BatchError::Unencodable("marker shorter than its header"))?;
    if let Some(field) = out.get_mut(ATTRIBUTES_AT..attributes_end) {
        field.copy_from_slice(&(attributes | CONTROL_BIT).to_be_bytes());
    }
    let crc = crc32c::crc32c(out.get(ATTRIBUTES_AT..).unwrap_or_default());
    if let Some(field) = out.get_mut(CRC_AT..ATTRIBUTES_AT) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    Ok(out)
}

/// Reads the marker of a control batch (`bytes` is the whole batch). `None`
/// for a batch that is not a control batch or whose record is not a
/// transaction marker of a known type.
pub fn read_marker(bytes: &[u8], header: &BatchHeader) -> Option<ControlMarker> {
    if !header.is_control() {
        return None;
    }
    let payload = records_payload(bytes, header, 1 << 20).ok()?;
    let record = records(header, &payload).next()?.ok()?;
    let key = record.key?;
    let version = i16::from_be_bytes([*key.first()?, *key.get(1)?]);
    let kind = i16::from_be_bytes([*key.get(2)?, *key.get(3)?]);
    if version != 0 {
        return None;
    }
    let commit = match kind {
        COMMIT_TYPE => true,
        ABORT_TYPE => false,
        _ => return None,
    };
    let coordinator_epoch = record
        .value
        .and_then(|v| v.get(2..6))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, i32::from_be_bytes);
    Some(ControlMarker {
        commit,
        coordinator_epoch,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::batch::validate;

    #[test]
    fn marker_round_trips_with_control_and_transactional_bits() {
        for commit in [true, false] {
            let marker = ControlMarker {
                commit,
                coordinator_epoch: 7,
            };
            let bytes = build_marker(42, 3, marker, 1_000).expect("builds");
            let header = validate(&bytes, 1 << 20).expect("valid crc");
            assert!(header.is_control());
            assert!(header.is_transactional());
            assert_eq!(header.producer_id(), 42);
            assert_eq!(header.producer_epoch(), 3);
            assert_eq!(read_marker(&bytes, &header), Some(marker));
        }
    }
}
