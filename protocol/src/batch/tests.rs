#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use proptest::prelude::*;

const LIMIT: usize = 1 << 20;

fn three_records(codec: Compression) -> Vec<u8> {
    build_batch(
        0,
        &[
            (Some(b"k0"), Some(b"v0"), 1000),
            (None, Some(b"v1"), 1005),
            (Some(b"k2"), None, 1002),
        ],
        codec,
    )
    .unwrap()
}

/// Recomputes the CRC after a test tampers with covered bytes.
fn fix_crc(buf: &mut [u8]) {
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
    buf[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn built_batches_validate_for_every_codec() {
    for codec in Compression::ALL {
        let batch = three_records(codec);
        let v = validate_batch(&batch, LIMIT).unwrap();
        assert_eq!(v.header.records_count(), 3);
        assert_eq!(v.header.last_offset_delta(), 2);
        assert_eq!(v.header.compression(), codec);
        assert_eq!(v.header.total_len(), batch.len());
        assert_eq!(v.header.max_timestamp(), 1005);
        assert_eq!((v.max_timestamp, v.max_timestamp_offset_delta), (1005, 1));
    }
}

#[test]
fn parses_header_fields() {
    let records = [NewRecord {
        key: Some(b"k"),
        value: Some(b"v"),
        timestamp: 42,
        headers: vec![(b"h".as_slice(), None)],
    }];
    let options = BatchOptions {
        producer_id: 7,
        producer_epoch: 3,
        base_sequence: 11,
        transactional: true,
        partition_leader_epoch: 5,
        ..BatchOptions::default()
    };
    let batch = build_batch_with(100, &records, &options).unwrap();
    let h = BatchHeader::parse(&batch).unwrap();
    assert_eq!(h.base_offset(), 100);
    assert_eq!(h.last_offset(), 100);
    assert_eq!(h.next_offset(), 101);
    assert_eq!(h.partition_leader_epoch(), 5);
    assert_eq!(h.producer_id(), 7);
    assert_eq!(h.producer_epoch(), 3);
    assert_eq!(h.base_sequence(), 11);
    assert!(h.is_transactional());
    assert!(!h.is_control());
    assert!(!h.has_delete_horizon());
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(h.base_timestamp(), 42);
}

#[test]
fn rejects_batch_with_bad_crc() {
    let mut batch = three_records(Compression::None);
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    assert!(matches!(
        validate(&batch, LIMIT),
        Err(BatchError::CrcMismatch { .. })
    ));
}

#[test]
fn rejects_old_magic() {
    let mut batch = three_records(Compression::None);
    batch[MAGIC_AT] = 1;
    assert!(matches!(
        validate(&batch, LIMIT),
        Err(BatchError::UnsupportedMagic(1))
    ));
}

#[test]
fn rejects_truncated_and_overlong_buffers() {
    let batch = three_records(Compression::None);
    for cut in [0, 10, 16, 17, 60, batch.len() - 1] {
        let err = validate(&batch[..cut], LIMIT).unwrap_err();
        assert!(err.is_truncation(), "cut at {cut}: {err}");
    }
    let mut long = batch.clone();
    long.push(0);
    assert!(matches!(
        validate(&long, LIMIT),
        Err(BatchError::TrailingBytes { .. })
    ));
}

#[test]
fn rejects_batch_length_shorter_than_header() {
    let mut batch = three_records(Compression::None);
    batch[BATCH_LENGTH_AT..LEADER_EPOCH_AT].copy_from_slice(&10i32.to_be_bytes());
    assert!(matches!(
        BatchHeader::parse(&batch),
        Err(BatchError::InvalidBatchLength(10))
    ));
}

#[test]
fn rejects_unknown_codec() {
    let mut batch = three_records(Compression::None);
    batch[ATTRIBUTES_AT + 1] |= 0x07;
    fix_crc(&mut batch);
    assert!(matches!(
        validate(&batch, LIMIT),
        Err(BatchError::Compression(CompressionError::UnknownCodec(7)))
    ));
}

#[test]
fn rejects_last_offset_delta_mismatch() {
    let mut batch = three_records(Compression::None);
    batch[LAST_OFFSET_DELTA_AT..BASE_TIMESTAMP_AT].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut batch);
    assert!(matches!(
        validate(&batch, LIMIT),
        Err(BatchError::LastOffsetDeltaMismatch { .. })
    ));
}

#[test]
fn rejects_record_count_larger_than_records() {
    let mut batch = three_records(Compression::None);
    batch[RECORDS_COUNT_AT..HEADER_LEN].copy_from_slice(&4i32.to_be_bytes());
    batch[LAST_OFFSET_DELTA_AT..BASE_TIMESTAMP_AT].copy_from_slice(&3i32.to_be_bytes());
    fix_crc(&mut batch);
    assert!(matches!(
        validate(&batch, LIMIT),
        Err(BatchError::MissingRecords {
            declared: 4,
            found: 3
        })
    ));
}

#[test]
fn rejects_record_count_smaller_than_records() {
    let mut batch = three_records(Compression::Gzip);
    batch[RECORDS_COUNT_AT..HEADER_LEN].copy_from_slice(&2i32.to_be_bytes());
    batch[LAST_OFFSET_DELTA_AT..BASE_TIMESTAMP_AT].copy_from_slice(&1i32.to_be_bytes());
    fix_crc(&mut batch);
    assert!(matches!(
        validate(&batch, LIMIT),
        Err(BatchError::TrailingRecordBytes(_))
    ));
}

#[test]
fn rejects_negative_record_count() {
    let mut batch = three_records(Compression::None);
    batch[RECORDS_COUNT_AT..HEADER_LEN].copy_from_slice(&(-2i32).to_be_bytes());
    fix_crc(&mut batch);
    assert!(matches!(
        validate(&batch, LIMIT),
        Err(BatchError::InvalidRecordCount(-2))
    ));
}

#[test]
fn rejects_out_of_order_offset_deltas() {
    // Record 0 starts at HEADER_LEN: length varint (1 byte), attributes,
    // timestampDelta 0 (1 byte), then the offset delta.
    let mut batch = three_records(Compression::None);
    batch[HEADER_LEN + 3] = 2; // zigzag 1
    fix_crc(&mut batch);
    assert!(matches!(
        validate(&batch, LIMIT),
        Err(BatchError::OffsetDeltaOutOfOrder { index: 0, delta: 1 })
    ));
}

#[test]
fn rejects_decompression_bombs() {
    let big = vec![0u8; 1 << 20];
    let batch = build_batch(0, &[(None, Some(&big), 0)], Compression::Zstd).unwrap();
    assert!(batch.len() < 4096);
    assert!(matches!(
        validate(&batch, 64 * 1024),
        Err(BatchError::Compression(
            CompressionError::LimitExceeded { .. }
        ))
    ));
    assert!(validate(&batch, 2 << 20).is_ok());
}

#[test]
fn rewrites_base_offset_and_epoch_without_breaking_crc() {
    let mut batch = three_records(Compression::Lz4);
    set_base_offset(&mut batch, 1234).unwrap();
    set_partition_leader_epoch(&mut batch, 9).unwrap();
    let h = validate(&batch, LIMIT).unwrap();
    assert_eq!(h.base_offset(), 1234);
    assert_eq!(h.last_offset(), 1236);
    assert_eq!(h.partition_leader_epoch(), 9);
    assert!(set_base_offset(&mut [0u8; 4], 1).is_err());
}

#[test]
fn iterates_records_with_absolute_offsets_and_timestamps() {
    let mut batch = three_records(Compression::Snappy);
    set_base_offset(&mut batch, 50).unwrap();
    let h = BatchHeader::parse(&batch).unwrap();
    let payload = records_payload(&batch, &h, LIMIT).unwrap();
    let got: Vec<_> = records(&h, &payload).map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(
        (got[0].offset, got[0].timestamp, got[0].key, got[0].value),
        (50, 1000, Some(&b"k0"[..]), Some(&b"v0"[..]))
    );
    assert_eq!((got[1].offset, got[1].key), (51, None));
    assert_eq!(
        (got[2].offset, got[2].timestamp, got[2].value),
        (52, 1002, None)
    );
}

#[test]
fn log_append_time_gives_every_record_the_max_timestamp() {
    let records_in = [
        NewRecord {
            timestamp: 10,
            ..NewRecord::default()
        },
        NewRecord {
            timestamp: 30,
            ..NewRecord::default()
        },
    ];
    let options = BatchOptions {
        timestamp_type: TimestampType::LogAppendTime,
        ..BatchOptions::default()
    };
    let batch = build_batch_with(0, &records_in, &options).unwrap();
    let h = validate(&batch, LIMIT).unwrap();
    let payload = records_payload(&batch, &h, LIMIT).unwrap();
    assert!(records(&h, &payload).all(|r| r.unwrap().timestamp == 30));
}

#[test]
fn stamping_log_append_time_sets_the_type_and_max_timestamp_and_keeps_the_crc_valid() {
    for codec in [Compression::None, Compression::Gzip] {
        let mut buf = [three_records(codec), three_records(codec)].concat();
        let first_len = BatchHeader::parse(&buf).unwrap().total_len();
        set_log_append_time(&mut buf, 99_999).unwrap();
        let first = &buf[..first_len];
        let h = validate(first, LIMIT).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp(), 99_999);
        assert_eq!(h.base_timestamp(), 1000);
        let payload = records_payload(first, &h, LIMIT).unwrap();
        assert!(records(&h, &payload).all(|r| r.unwrap().timestamp == 99_999));
        // The next batch is untouched.
        assert_eq!(&buf[first_len..], &three_records(codec)[..]);
    }
}

#[test]
fn batches_iterator_distinguishes_clean_end_from_torn_tail() {
    let a = three_records(Compression::None);
    let b = three_records(Compression::Gzip);
    let mut buf = [a.clone(), b.clone()].concat();
    let mut it = batches(&buf);
    assert_eq!(it.next().unwrap().unwrap().1, &a[..]);
    assert_eq!(it.next().unwrap().unwrap().1, &b[..]);
    assert!(it.next().is_none());
    assert_eq!(it.position(), buf.len());

    buf.truncate(buf.len() - 5);
    let mut it = batches(&buf);
    assert!(it.next().unwrap().is_ok());
    assert!(it.next().unwrap().unwrap_err().is_truncation());
    assert!(it.next().is_none());
    assert_eq!(it.position(), a.len());
}

#[test]
fn batches_iterator_reports_garbage_tail() {
    let a = three_records(Compression::None);
    let buf = [a.clone(), vec![0xAB; 100]].concat();
    let mut it = batches(&buf);
    assert!(it.next().unwrap().is_ok());
    assert!(it.next().unwrap().is_err());
    assert_eq!(it.position(), a.len());
}

#[test]
fn empty_batch_validates() {
    let batch = build_batch(0, &[], Compression::None).unwrap();
    let v = validate_batch(&batch, LIMIT).unwrap();
    assert_eq!(v.header.records_count(), 0);
    assert_eq!(v.header.total_len(), HEADER_LEN);
}

type Rec = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

fn arb_records() -> impl Strategy<Value = Vec<Rec>> {
    let bytes = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64));
    proptest::collection::vec((bytes.clone(), bytes, -1i64..1_000_000_000_000), 0..20)
}

fn arb_codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(Compression::ALL.to_vec())
}

proptest! {
    #[test]
    fn build_validate_iterate_round_trips(
        recs in arb_records(),
        codec in arb_codec(),
        base in 0i64..1 << 40,
    ) {
        let borrowed: Vec<_> = recs
            .iter()
            .map(|(k, v, t)| (k.as_deref(), v.as_deref(), *t))
            .collect();
        let batch = build_batch(base, &borrowed, codec).unwrap();
        let h = validate(&batch, LIMIT).unwrap();
        prop_assert_eq!(h.records_count() as usize, recs.len());
        let payload = records_payload(&batch, &h, LIMIT).unwrap();
        let got: Vec<_> = records(&h, &payload).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got.len(), recs.len());
        for (i, (r, (k, v, t))) in got.iter().zip(&recs).enumerate() {
            prop_assert_eq!(r.offset, base + i as i64);
            prop_assert_eq!(r.timestamp, *t);
            prop_assert_eq!(r.key, k.as_deref());
            prop_assert_eq!(r.value, v.as_deref());
        }
    }

    #[test]
    fn validate_never_panics_on_arbitrary_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let _ = validate(&data, LIMIT);
        for item in batches(&data) {
            let _ = item;
        }
    }

    #[test]
    fn validate_never_panics_on_mutated_batches(
        recs in arb_records(),
        codec in arb_codec(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        fix in any::<bool>(),
    ) {
        let borrowed: Vec<_> = recs
            .iter()
            .map(|(k, v, t)| (k.as_deref(), v.as_deref(), *t))
            .collect();
        let mut batch = build_batch(0, &borrowed, codec).unwrap();
        for (at, byte) in flips {
            let i = at.index(batch.len());
            batch[i] ^= byte;
        }
        if fix && batch.len() >= HEADER_LEN {
            fix_crc(&mut batch);
        }
        if let Ok(h) = validate(&batch, LIMIT) {
            let payload = records_payload(&batch, &h, LIMIT).unwrap();
            for r in records(&h, &payload) {
                prop_assert!(r.is_ok());
            }
        }
    }
}
