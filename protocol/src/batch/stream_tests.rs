//! Streaming record walks and recompression.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use proptest::prelude::*;

const LIMIT: usize = 32 << 20;

fn fix_crc(buf: &mut [u8]) {
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
    buf[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
}

/// Many small records with headers and nulls, then one of 3 MiB, then more small ones.
fn mixed_batch(codec: Compression) -> (Vec<u8>, Vec<Vec<u8>>) {
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
    let mut values: Vec<Vec<u8>> = (0..500)
        .map(|i| format!("value-{i}").into_bytes())
        .collect();
    values.insert(250, big);
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewRecord {
            key: (i % 3 != 0).then_some(b"key".as_slice()),
            value: (i % 7 != 0).then_some(v.as_slice()),
            timestamp: 1_000 + i as i64,
            headers: vec![(b"h".as_slice(), Some(b"x".as_slice())), (b"n", None)],
        })
        .collect();
    let options = BatchOptions {
        compression: codec,
        producer_id: 42,
        producer_epoch: 1,
        base_sequence: 7,
        ..BatchOptions::default()
    };
    (build_batch_with(0, &records, &options).unwrap(), values)
}

/// offset, timestamp, key, value, header count.
type Owned = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, usize);

fn owned(r: &Record<'_>) -> Owned {
    (
        r.offset,
        r.timestamp,
        r.key.map(<[u8]>::to_vec),
        r.value.map(<[u8]>::to_vec),
        r.headers.len(),
    )
}

fn walk(batch: &[u8], limit: usize) -> Result<Vec<Owned>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let mut out = Vec::new();
    for_each_record(batch, &header, limit, |r| {
        out.push(owned(r));
        Ok(())
    })?;
    Ok(out)
}

fn iterate(batch: &[u8], limit: usize) -> Result<Vec<Owned>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let payload = records_payload(batch, &header, limit)?;
    records(&header, &payload)
        .map(|r| r.map(|r| owned(&r)))
        .collect()
}

#[test]
fn streamed_walk_sees_every_record_including_one_larger_than_the_window() {
    for codec in Compression::ALL {
        let (batch, values) = mixed_batch(codec);
        let walked = walk(&batch, LIMIT).unwrap();
        assert_eq!(walked.len(), values.len(), "{codec}");
        for (i, (offset, ts, key, value, headers)) in walked.iter().enumerate() {
            assert_eq!(*offset, i as i64);
            assert_eq!(*ts, 1_000 + i as i64);
            assert_eq!(key.is_some(), i % 3 != 0);
            assert_eq!(
                value.as_deref(),
                (i % 7 != 0).then_some(values[i].as_slice())
            );
            assert_eq!(*headers, 2);
        }
        assert_eq!(walked, iterate(&batch, LIMIT).unwrap(), "{codec}");
    }
}

#[test]
fn streamed_walk_enforces_the_decompression_limit() {
    for codec in Compression::ALL.into_iter().skip(1) {
        let (batch, _) = mixed_batch(codec);
        let err = walk(&batch, 1 << 20).unwrap_err();
        assert!(
            matches!(
                err,
                BatchError::Compression(CompressionError::LimitExceeded { .. })
            ),
            "{codec}: {err}"
        );
    }
}

#[test]
fn streamed_walk_reports_missing_and_trailing_records_in_compressed_batches() {
    for codec in Compression::ALL {
        let (mut batch, values) = mixed_batch(codec);
        let n = values.len() as i32;
        batch[RECORDS_COUNT_AT..HEADER_LEN].copy_from_slice(&(n + 1).to_be_bytes());
        batch[LAST_OFFSET_DELTA_AT..BASE_TIMESTAMP_AT].copy_from_slice(&n.to_be_bytes());
        fix_crc(&mut batch);
        assert!(
            matches!(validate(&batch, LIMIT), Err(BatchError::MissingRecords { found, .. }) if found == values.len()),
            "{codec}"
        );
        batch[RECORDS_COUNT_AT..HEADER_LEN].copy_from_slice(&(n - 1).to_be_bytes());
        batch[LAST_OFFSET_DELTA_AT..BASE_TIMESTAMP_AT].copy_from_slice(&(n - 2).to_be_bytes());
        fix_crc(&mut batch);
        assert!(
            matches!(
                validate(&batch, LIMIT),
                Err(BatchError::TrailingRecordBytes(_))
            ),
            "{codec}"
        );
    }
}

#[test]
fn recompresses_between_every_pair_of_codecs_keeping_records_and_fields() {
    for from in Compression::ALL {
        let (batch, _) = mixed_batch(from);
        let expected = iterate(&batch, LIMIT).unwrap();
        let before = BatchHeader::parse(&batch).unwrap();
        for to in Compression::ALL {
            let out = recompress(&batch, to, None, LIMIT).unwrap();
            let after = validate(&out, LIMIT).unwrap();
            assert_eq!(after.compression(), to, "{from} -> {to}");
            assert_eq!(after.total_len(), out.len());
            assert_eq!(iterate(&out, LIMIT).unwrap(), expected, "{from} -> {to}");
            assert_eq!(
                after.attributes() & !COMPRESSION_MASK,
                before.attributes() & !COMPRESSION_MASK
            );
            for (a, b) in [
                (after.base_offset(), before.base_offset()),
                (after.base_timestamp(), before.base_timestamp()),
                (after.max_timestamp(), before.max_timestamp()),
                (after.producer_id(), before.producer_id()),
                (
                    i64::from(after.producer_epoch()),
                    i64::from(before.producer_epoch()),
                ),
                (
                    i64::from(after.base_sequence()),
                    i64::from(before.base_sequence()),
                ),
                (
                    i64::from(after.records_count()),
                    i64::from(before.records_count()),
                ),
                (
                    i64::from(after.partition_leader_epoch()),
                    i64::from(before.partition_leader_epoch()),
                ),
            ] {
                assert_eq!(a, b, "{from} -> {to}");
            }
            if from == to {
                assert_eq!(out, batch);
            }
        }
    }
}

#[test]
fn recompression_levels_change_the_output_not_the_records() {
    let (batch, _) = mixed_batch(Compression::None);
    let expected = iterate(&batch, LIMIT).unwrap();
    for (codec, low, high) in [(Compression::Gzip, 1, 9), (Compression::Zstd, 1, 19)] {
        let fast = recompress(&batch, codec, Some(low), LIMIT).unwrap();
        let small = recompress(&batch, codec, Some(high), LIMIT).unwrap();
        assert_ne!(fast, small, "{codec}");
        assert_eq!(iterate(&fast, LIMIT).unwrap(), expected);
        assert_eq!(iterate(&small, LIMIT).unwrap(), expected);
    }
}

#[test]
fn recompress_refuses_a_batch_with_a_bad_crc_or_bad_records() {
    let (mut batch, _) = mixed_batch(Compression::Gzip);
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    assert!(matches!(
        recompress(&batch, Compression::Zstd, None, LIMIT),
        Err(BatchError::CrcMismatch { .. })
    ));
    fix_crc(&mut batch);
    assert!(recompress(&batch, Compression::Zstd, None, LIMIT).is_err());
}

#[test]
fn the_limit_bounds_decompression_not_uncompressed_input() {
    let (batch, _) = mixed_batch(Compression::None);
    let limit = 1 << 20;
    assert!(batch.len() > limit);
    let out = recompress(&batch, Compression::Lz4, None, limit).unwrap();
    assert!(recompress(&out, Compression::None, None, limit).is_err());
}

fn small_batch(codec: Compression, n: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; i * 7]).collect();
    let records: Vec<SimpleRecord<'_>> = values
        .iter()
        .map(|v| (Some(b"k".as_slice()), Some(v.as_slice()), 5))
        .collect();
    build_batch(0, &records, codec).unwrap()
}

proptest! {
    /// The fuzz-style property for the decompression path: flip bytes of a
    /// compressed batch's payload (CRC fixed so the decoders see them) and
    /// the streamed walk and the whole-payload iteration must never panic
    /// and must agree on which batches are valid.
    #[test]
    fn streamed_and_whole_payload_validation_agree_on_mutated_payloads(
        codec in proptest::sample::select(Compression::ALL.to_vec()),
        n in 1usize..40,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut batch = small_batch(codec, n);
        let payload_len = batch.len() - HEADER_LEN;
        for (at, byte) in flips {
            batch[HEADER_LEN + at.index(payload_len)] ^= byte;
        }
        fix_crc(&mut batch);
        let streamed = walk(&batch, 1 << 16);
        let whole = iterate(&batch, 1 << 16);
        prop_assert_eq!(streamed.is_ok(), whole.is_ok(), "{:?} vs {:?}", streamed.as_ref().err(), whole.as_ref().err());
        if let (Ok(a), Ok(b)) = (&streamed, &whole) {
            prop_assert_eq!(a, b);
        }
        let _ = recompress(&batch, Compression::Zstd, None, 1 << 16);
    }

    #[test]
    fn arbitrary_payloads_under_every_codec_never_panic(
        codec in proptest::sample::select(Compression::ALL.to_vec()),
        count in 0i32..5,
        payload in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut batch = build_batch(0, &[], Compression::None).unwrap();
        batch.extend_from_slice(&payload);
        let len = (batch.len() - LOG_OVERHEAD) as i32;
        batch[BATCH_LENGTH_AT..LEADER_EPOCH_AT].copy_from_slice(&len.to_be_bytes());
        batch[ATTRIBUTES_AT..LAST_OFFSET_DELTA_AT].copy_from_slice(&i16::from(codec.id()).to_be_bytes());
        batch[RECORDS_COUNT_AT..HEADER_LEN].copy_from_slice(&count.to_be_bytes());
        batch[LAST_OFFSET_DELTA_AT..BASE_TIMESTAMP_AT].copy_from_slice(&(count - 1).max(0).to_be_bytes());
        fix_crc(&mut batch);
        let _ = validate(&batch, 1 << 16);
        let _ = walk(&batch, 1 << 16);
        let _ = recompress(&batch, Compression::Gzip, None, 1 << 16);
    }
}
