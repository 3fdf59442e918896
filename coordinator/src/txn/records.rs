//! Records of the `__transaction_state` topic in Apache Kafka's schemas
//! (`TransactionLogKey` and `TransactionLogValue`), so tools reading that
//! topic understand what Wharf writes.
//!
//! Key v0: `version: i16 = 0, transactional_id: string`.
//! Value v0: `version: i16 = 0, producer_id: i64, producer_epoch: i16,
//! transaction_timeout_ms: i32, transaction_status: i8,
//! transaction_partitions: nullable [topic: string, partition_ids: [i32]],
//! transaction_last_update_timestamp_ms: i64,
//! transaction_start_timestamp_ms: i64` (all non-flexible). Wharf writes
//! v0 and reads v0; v1 (flexible, KIP-890's tagged fields) is refused.

use std::collections::BTreeSet;

use super::TxnState;
use crate::records::{put_i16, put_str, Reader, RecordError};

/// Key and value version Wharf writes.
pub const KEY_VERSION: i16 = 0;
pub const VALUE_VERSION: i16 = 0;

/// A transactional id's state as stored in `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    put_i16(&mut out, KEY_VERSION);
    put_str(&mut out, transactional_id);
    out
}

pub fn decode_key(buf: &[u8]) -> Result<String, RecordError> {
    let mut r = Reader(buf);
    match r.i16()? {
        0 => r.string(),
        v => Err(RecordError::UnknownKeyVersion(v)),
    }
}

pub fn encode_value(v: &TxnLogValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_i16(&mut out, VALUE_VERSION);
    out.extend_from_slice(&v.producer_id.to_be_bytes());
    out.extend_from_slice(&v.producer_epoch.to_be_bytes());
    out.extend_from_slice(&v.timeout_ms.to_be_bytes());
    out.push(v.state.code() as u8);
    if v.partitions.is_empty() {
        out.extend_from_slice(&(-1i32).to_be_bytes());
    } else {
        let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
        for (topic, partition) in &v.partitions {
            match by_topic.last_mut() {
                Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
                _ => by_topic.push((topic, vec![*partition])),
            }
        }
        out.extend_from_slice(&len_i32(by_topic.len()).to_be_bytes());
        for (topic, partitions) in by_topic {
            put_str(&mut out, topic);
            out.extend_from_slice(&len_i32(partitions.len()).to_be_bytes());
            for p in partitions {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
    }
    out.extend_from_slice(&v.last_update_ms.to_be_bytes());
    out.extend_from_slice(&v.start_ms.to_be_bytes());
    out
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

pub fn decode_value(buf: &[u8]) -> Result<TxnLogValue, RecordError> {
    let mut r = Reader(buf);
    let version = r.i16()?;
    if version != 0 {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = r.take(1)?.first().copied().unwrap_or(0) as i8;
    let state = TxnState::from_code(status).ok_or(RecordError::UnknownValueVersion(-1))?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    for _ in 0..topics.max(0) {
        let topic = r.string()?;
        let count = r.i32()?;
        if count < 0 {
            return Err(RecordError::NegativeLength(count));
        }
        for _ in 0..count {
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    Ok(TxnLogValue {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms: r.i64()?,
        start_ms: r.i64()?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_matches_kafka_layout_byte_for_byte() {
        assert_eq!(encode_key("tx"), vec![0, 0, 0, 2, b't', b'x']);
        assert_eq!(decode_key(&encode_key("tx")).unwrap(), "tx");
        assert!(decode_key(&[0, 1, 0, 0]).is_err());
    }

    #[test]
    fn value_round_trips_grouping_partitions_by_topic() {
        let v = TxnLogValue {
            producer_id: 7,
            producer_epoch: 2,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: BTreeSet::from([
                ("a".to_string(), 0),
                ("a".to_string(), 1),
                ("b".to_string(), 3),
            ]),
            last_update_ms: 10,
            start_ms: 5,
        };
        let bytes = encode_value(&v);
        // version, pid, epoch, timeout, status, then 2 topics.
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(bytes[16], 1);
        assert_eq!(&bytes[17..21], &[0, 0, 0, 2]);
        assert_eq!(decode_value(&bytes).unwrap(), v);
    }

    #[test]
    fn empty_partitions_are_written_as_null() {
        let v = TxnLogValue {
            producer_id: 1,
            producer_epoch: 0,
            timeout_ms: 1,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: 0,
            start_ms: -1,
        };
        let bytes = encode_value(&v);
        assert_eq!(&bytes[17..21], &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_value(&bytes).unwrap(), v);
        assert!(decode_value(&bytes[..20]).is_err());
    }
}
