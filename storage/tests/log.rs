#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use wharf_protocol::batch::{self, build_batch, BatchHeader};
use wharf_protocol::compression::Compression;
use wharf_storage::format::{index_file_name, log_file_name};
use wharf_storage::{Log, LogConfig, StorageError};

/// A batch of `n` records with values "v0".."v{n-1}" and timestamps ts, ts+1, ...
fn batch_of(n: usize, ts: i64, codec: Compression) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{i}").into_bytes()).collect();
    let records: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (Some(&b"key"[..]), Some(&v[..]), ts + i as i64))
        .collect();
    build_batch(0, &records, codec).unwrap()
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// (base offset, last offset) of every batch in `bytes`.
fn offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    batch::batches(bytes)
        .map(|b| {
            let (h, _) = b.unwrap();
            (h.base_offset(), h.last_offset())
        })
        .collect()
}

fn read_all(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let chunk = log.read(offset, 1 << 20, true).unwrap();
        let last = batch::batches(&chunk).last().unwrap().unwrap().0;
        offset = last.next_offset();
        out.extend_from_slice(&chunk);
    }
    out
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn append_assigns_offsets_and_read_returns_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));

    let mut first = batch_of(3, 1000, Compression::None);
    let info = log.append(&mut first, 7).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.record_count),
        (0, 2, 3)
    );
    assert_eq!(info.bytes, first.len() as u64);
    assert_eq!(
        (info.max_timestamp, info.offset_of_max_timestamp),
        (1002, 2)
    );

    let mut two = [
        batch_of(2, 5000, Compression::Gzip),
        batch_of(4, 10, Compression::Zstd),
    ]
    .concat();
    let info = log.append(&mut two, 7).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.record_count),
        (3, 8, 6)
    );
    assert_eq!(
        (info.max_timestamp, info.offset_of_max_timestamp),
        (5001, 4)
    );
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(log.max_timestamp(), Some((5001, 4)));

    let bytes = log.read(0, 1 << 20, false).unwrap();
    assert_eq!(offsets(&bytes), vec![(0, 2), (3, 4), (5, 8)]);
    assert_eq!(&bytes[..first.len()], &first[..]);
    for (header, slice) in batch::batches(&bytes).map(Result::unwrap) {
        batch::validate(slice, 1 << 20).unwrap();
        assert_eq!(header.partition_leader_epoch(), 7);
    }
    assert!(log.read(9, 1 << 20, true).unwrap().is_empty());
}

#[test]
fn read_from_middle_of_batch_returns_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch_of(5, 0, Compression::None), 0)
        .unwrap();
    log.append(&mut batch_of(5, 0, Compression::Lz4), 0)
        .unwrap();
    assert_eq!(offsets(&log.read(7, 1 << 20, false).unwrap()), vec![(5, 9)]);
    assert_eq!(
        offsets(&log.read(3, 1 << 20, false).unwrap()),
        vec![(0, 4), (5, 9)]
    );
}

#[test]
fn read_honours_max_bytes_and_min_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let a = batch_of(3, 0, Compression::None);
    let len = a.len();
    for _ in 0..3 {
        log.append(&mut a.clone(), 0).unwrap();
    }
    assert_eq!(
        log.read(0, len * 2 + len / 2, false).unwrap().len(),
        len * 2
    );
    assert_eq!(log.read(0, len, false).unwrap().len(), len);
    assert!(log.read(0, len - 1, false).unwrap().is_empty());
    assert_eq!(log.read(0, 1, true).unwrap().len(), len);
    assert_eq!(offsets(&log.read(4, 0, true).unwrap()), vec![(3, 5)]);
}

#[test]
fn read_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch_of(2, 0, Compression::None), 0)
        .unwrap();
    let err = log.read(3, 100, true).unwrap_err();
    assert!(matches!(
        err,
        StorageError::OffsetOutOfRange {
            requested: 3,
            log_start: 0,
            log_end: 2
        }
    ));
    assert!(log.read(-1, 100, true).is_err());
}

#[test]
fn rolls_at_segment_bytes_with_named_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    let one = batch_of(4, 0, Compression::None);
    let per_segment = 1024 / one.len();
    for _ in 0..per_segment * 2 + 1 {
        log.append(&mut one.clone(), 0).unwrap();
    }
    assert_eq!(log.segment_count(), 3);
    let step = 4 * per_segment as i64;
    assert_eq!(log.segment_base_offsets(), vec![0, step, 2 * step]);
    for base in [0, step, 2 * step] {
        assert!(dir.path().join(log_file_name(base)).exists());
        assert!(dir.path().join(index_file_name(base)).exists());
    }
    assert!(file_len(&dir.path().join(log_file_name(0))) <= 1024);
    assert!(file_len(&dir.path().join(index_file_name(0))) > 0);
    // reads cross segments, and reads in the middle of old segments use the index
    assert_eq!(read_all(&log).len(), one.len() * (per_segment * 2 + 1));
    let mid = log.read(step + 5, 1 << 20, false).unwrap();
    assert_eq!(offsets(&mid)[0], (step + 4, step + 7));
}

#[test]
fn rejects_append_larger_than_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    let big = vec![b'x'; 2000];
    let mut batch = build_batch(0, &[(None, Some(&big), 0)], Compression::None).unwrap();
    assert!(matches!(
        log.append(&mut batch, 0),
        Err(StorageError::BatchTooLarge { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn reopen_recovers_same_end_offset_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let mut log = Log::open(dir.path(), small_segments()).unwrap();
        for i in 0..20 {
            log.append(
                &mut batch_of(1 + i % 4, i as i64 * 10, Compression::Snappy),
                1,
            )
            .unwrap();
        }
        (
            log.log_end_offset(),
            read_all(&log),
            log.max_timestamp(),
            log.segment_count(),
        )
    };
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.log_end_offset(), before.0);
    assert_eq!(read_all(&log), before.1);
    assert_eq!(log.max_timestamp(), before.2);
    assert_eq!(log.segment_count(), before.3);
}

#[test]
fn truncates_torn_tail_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(log_file_name(0));
    let (good_len, good_bytes) = {
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&mut batch_of(3, 0, Compression::None), 0)
            .unwrap();
        log.append(&mut batch_of(2, 0, Compression::Gzip), 0)
            .unwrap();
        let good_len = file_len(&path);
        log.append(&mut batch_of(4, 0, Compression::None), 0)
            .unwrap();
        (
            good_len,
            log.read(0, 1 << 20, false).unwrap()[..good_len as usize].to_vec(),
        )
    };
    // chop the last batch mid-way
    let torn = good_len + 30;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(torn)
        .unwrap();
    {
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(file_len(&path), good_len);
        assert_eq!(log.read(0, 1 << 20, false).unwrap(), good_bytes);
        let info = log
            .append(&mut batch_of(1, 0, Compression::None), 0)
            .unwrap();
        assert_eq!(info.base_offset, 5);
    }
    // garbage after the last valid batch
    let len = file_len(&path);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0x5A; 100])
        .unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(file_len(&path), len);
    assert_eq!(
        log.append(&mut batch_of(2, 0, Compression::None), 0)
            .unwrap()
            .base_offset,
        6
    );
    assert_eq!(
        offsets(&log.read(5, 1 << 20, false).unwrap()),
        vec![(5, 5), (6, 7)]
    );
}

#[test]
fn recovery_cuts_batch_with_bad_crc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(log_file_name(0));
    let first_len = {
        let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
        log.append(&mut batch_of(2, 0, Compression::None), 0)
            .unwrap();
        let first_len = file_len(&path);
        log.append(&mut batch_of(2, 0, Compression::None), 0)
            .unwrap();
        first_len
    };
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(file_len(&path), first_len);
}

#[test]
fn missing_or_corrupt_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 1,
        ..small_segments()
    };
    let expected = {
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        for i in 0..30 {
            log.append(&mut batch_of(2, i, Compression::None), 0)
                .unwrap();
        }
        assert!(log.segment_count() >= 3);
        read_all(&log)
    };
    let first_index = dir.path().join(index_file_name(0));
    let index_len = file_len(&first_index);
    std::fs::remove_file(&first_index).unwrap();
    {
        let log = Log::open(dir.path(), config.clone()).unwrap();
        assert_eq!(read_all(&log), expected);
        assert_eq!(file_len(&first_index), index_len);
    }
    std::fs::write(&first_index, [0xFF; 13]).unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(file_len(&first_index), index_len);
    assert_eq!(read_all(&log), expected);
    for offset in 0..log.log_end_offset() {
        let got = log.read(offset, 1, true).unwrap();
        let (h, _) = batch::batches(&got).next().unwrap().unwrap();
        assert!(h.base_offset() <= offset && offset <= h.last_offset());
    }
}

#[test]
fn corrupt_crc_is_rejected_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let good = batch_of(2, 0, Compression::None);
    let mut bad = batch_of(2, 0, Compression::None);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut both = [good, bad].concat();
    let err = log.append(&mut both, 0).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::CorruptBatch(batch::BatchError::CrcMismatch { .. })
        ),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(file_len(&dir.path().join(log_file_name(0))), 0);
    assert!(matches!(
        log.append(&mut [], 0),
        Err(StorageError::EmptyAppend)
    ));
    let mut empty = build_batch(0, &[], Compression::None).unwrap();
    assert!(matches!(
        log.append(&mut empty, 0),
        Err(StorageError::EmptyBatch { .. })
    ));
}

#[test]
fn offset_for_timestamp_finds_earliest_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    // offsets 0..3 at ts 100..103, 4..7 at 200..203, ...
    for i in 0..10 {
        log.append(&mut batch_of(4, 100 * (i + 1), Compression::Gzip), 0)
            .unwrap();
    }
    assert!(log.segment_count() > 1);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(102).unwrap(), Some((2, 102)));
    assert_eq!(log.offset_for_timestamp(104).unwrap(), Some((4, 200)));
    assert_eq!(log.offset_for_timestamp(1003).unwrap(), Some((39, 1003)));
    assert_eq!(log.offset_for_timestamp(1004).unwrap(), None);
    assert_eq!(log.max_timestamp(), Some((1003, 39)));
}

#[test]
fn truncate_to_drops_later_records_and_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..30 {
        log.append(&mut batch_of(2, i, Compression::None), 0)
            .unwrap();
    }
    let segments = log.segment_count();
    assert!(segments >= 3);
    log.truncate_to(7).unwrap(); // inside batch 6..7: dropped whole
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.max_timestamp(), Some((3, 5)));
    assert_eq!(
        log.append(&mut batch_of(1, 0, Compression::None), 0)
            .unwrap()
            .base_offset,
        6
    );
    drop(log);
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.log_end_offset(), 7);
    log.truncate_to(0).unwrap();
    assert!(matches!(
        log.truncate_to(-1),
        Err(StorageError::OffsetOutOfRange { requested: -1, .. })
    ));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.max_timestamp(), None);
}

#[test]
fn delete_removes_the_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("topic-0");
    let mut log = Log::open(&dir, LogConfig::default()).unwrap();
    log.append(&mut batch_of(1, 0, Compression::None), 0)
        .unwrap();
    log.flush().unwrap();
    assert_eq!(log.dir(), dir);
    log.delete().unwrap();
    assert!(!dir.exists());
}

#[test]
fn appended_headers_parse_after_offset_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut input = batch_of(3, 0, Compression::None);
    log.append(&mut input, 3).unwrap();
    log.append(&mut input, 3).unwrap(); // the same buffer again, rewritten in place
    let h = BatchHeader::parse(&input).unwrap();
    assert_eq!((h.base_offset(), h.partition_leader_epoch()), (3, 3));
}
